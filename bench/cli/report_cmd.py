"""``bench report``: leaderboards from the results store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from bench.cli.common import console, err_console, user_errors

HELP = """\
Write reports/leaderboard.md and one self-contained reports/leaderboard.html from the results
store ($BENCH_RESULTS, else results/results.db): for each (task, dataset, profile) the latest
result of each model (every seed of the newest run that trained or reused it), the trials of one
run with --run, or the records of `bench run --output FILE` files with --results (no store).
Metrics show mean ± 95% CI across seeds, or the bootstrap CI of one seed.

\b
Examples:
  bench report
  bench report --profile cpu --out /tmp/lb
  bench report --run all-20261202-101500
  bench report --results out/base.json --results out/cand.json
"""


def report_command(
    out: Annotated[Path | None, typer.Option(help="output folder [default: <project>/reports]")] = None,
    run: Annotated[str | None, typer.Option(help="a run name (see `bench runs`) instead of the latest results")]
    = None,
    profile: Annotated[list[str] | None, typer.Option(help="only these profiles (repeatable)")] = None,
    results: Annotated[list[Path] | None, typer.Option(help="a `bench run --output` file instead of the store "
                                                            "(repeatable; each is a run named after the file)")]
    = None,
) -> None:
    with user_errors():
        from bench.cli.common import open_store
        from bench.paths import project_root

        root = project_root()
        try:
            if results:
                paths = write_files(results, out or root / "reports")
            else:
                paths = write_latest(open_store(root), out or root / "reports", run, profile)
        except LookupError as exc:
            err_console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(2) from None
        for p in paths:
            console.print(f"wrote {p}")


def write_files(files: list[Path], out_dir: Path) -> list[Path]:
    """The leaderboard of the records in ``bench run --output`` files (of any bench version)."""
    from bench.reports.leaderboard import ReportEntry, write_report
    from bench.results.record import read_results

    try:
        entries = [ReportEntry(r, f.stem) for f in files for r in read_results(f)]
    except ValueError as exc:
        raise LookupError(str(exc)) from None
    names = ", ".join(str(f) for f in files)
    return write_report(entries, out_dir, title=f"results {names}", source=f"records of {names}")


def write_latest(store: Any, out_dir: Path, run: str | None = None, profiles: list[str] | None = None) -> list[Path]:
    """The leaderboard of the store's latest results (or of ``run``) under ``out_dir``."""
    from bench.reports.leaderboard import ReportEntry, write_report

    if run is not None:
        if store.run_info(run) is None:
            from bench.registry import unknown_name_message

            raise LookupError(unknown_name_message("run", run, [r.name for r in store.runs()][:20]))
        stored, title, source = store.members(run), f"run {run}", f"run `{run}` of {store.path}"
    else:
        stored = store.latest(profiles)
        title, source = "latest results", f"latest result of each model in {store.path}"
    if not stored:
        raise LookupError(f"no trial records in {store.path}; run `bench run all` first")
    entries = [ReportEntry(s.record, s.run, s.cached) for s in stored]
    return write_report(entries, out_dir, title=title, source=source)
