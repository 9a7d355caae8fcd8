"""``bench sync``: push records that never reached the tracking server."""

from __future__ import annotations

import typer

from bench.cli.common import console, err_console, user_errors

HELP = """\
Push every record of the results store ($BENCH_RESULTS, else results/results.db) that never
reached MLflow ($MLFLOW_TRACKING_URI, else ./mlflow.db): trials that landed while the tracking
server was down, or runs made with it unreachable. Each goes under its run's parent run (created
when missing). Exit code 1 when some record still could not be pushed.

\b
Examples:
  bench sync
  MLFLOW_TRACKING_URI=http://HOST:5000 bench sync
"""


def sync_command() -> None:
    with user_errors():
        from bench.cli.common import open_store, open_tracking
        from bench.paths import project_root
        from bench.tracking.sync import sync_pending

        root = project_root()
        store = open_store(root)
        pending = len(store.unsynced())
        if not pending:
            console.print(f"nothing to sync: every record in {store.path} is in MLflow")
            return
        writer = open_tracking(root)

        def done(trial_id: str, run_id: str | None, error: str | None) -> None:
            if error:
                err_console.print(f"[red]{trial_id}: {error}[/]", highlight=False)
            else:
                console.print(f"{trial_id} -> MLflow run {run_id}")

        left = sync_pending(store, writer, done)
        console.print(f"synced {pending - left} of {pending} record(s) to {writer.uri}")
        if left:
            raise typer.Exit(1)
