"""``bench report``: leaderboards from typed trial records (``--output`` files of ``bench run``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bench.cli.common import console, err_console, user_errors

HELP = """\
Write reports/leaderboard.md and a self-contained, interactive reports/leaderboard.html from trial
records: one table per task, dataset and profile, one row per model (its seeds aggregated), best
first.  The records are the JSON files `bench run --output FILE` writes; each file is one run,
named after the file.

\b
Examples:
  bench run all --output runs/all.json
  bench report --results runs/all.json
  bench report --results a.json --results b.json --out /tmp/lb
"""


def report_command(
    results: Annotated[list[Path], typer.Option(help="a `bench run --output` JSON file (repeatable)")],
    out: Annotated[Path | None, typer.Option(help="output folder [default: <project>/reports]")] = None,
) -> None:
    with user_errors():
        from bench.paths import project_root
        from bench.reports.leaderboard import ReportEntry, write_report
        from bench.results.record import read_results

        entries = [ReportEntry(rec, run=path.stem) for path in results for rec in read_results(path)]
        if not entries:
            err_console.print("[bold red]error:[/] no trial records in " + ", ".join(map(str, results)))
            raise typer.Exit(2)
        source = ", ".join(str(p) for p in results)
        paths = write_report(entries, out or project_root() / "reports", title="Leaderboard",
                             source=f"{len(entries)} trial record(s) from {source}")
        for p in paths:
            console.print(f"wrote {p}")
