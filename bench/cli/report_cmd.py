"""``bench report``: leaderboards from MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bench.cli.common import console, err_console, user_errors

HELP = """\
Write reports/leaderboard.md and a self-contained reports/leaderboard.html from the MLflow runs of
the latest `bench run` (or of --run-id): one table per task and dataset, best first.

\b
Examples:
  bench report
  bench report --out /tmp/lb --run-id 3f2a...
  MLFLOW_TRACKING_URI=http://HOST:5000 bench report
"""


def report_command(
    out: Annotated[Path | None, typer.Option(help="output folder [default: <project>/reports]")] = None,
    run_id: Annotated[str | None, typer.Option(help="MLflow parent run id (default: latest)")] = None,
) -> None:
    with user_errors():
        from bench.paths import project_root
        from bench.reports.leaderboard import write_report
        from bench.tracking.mlflow_writer import tracking_uri

        try:
            root = project_root()
            paths = write_report(tracking_uri(root), out or root / "reports", run_id)
        except LookupError as exc:
            err_console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(2) from None
        for p in paths:
            console.print(f"wrote {p}")
