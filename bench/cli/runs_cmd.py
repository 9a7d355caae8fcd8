"""``bench runs``: the runs in the results store, newest first."""

from __future__ import annotations

from typing import Annotated

import typer

from bench.cli.common import console, user_errors

HELP = """\
List the runs of the results store ($BENCH_RESULTS, else results/results.db), newest first:
name, target, profile, start, status, trials (of which cached), git SHA and MLflow parent run.
A run name is what `bench report --run` and `bench compare` take.

\b
Examples:
  bench runs
  bench runs --limit 5
"""


def runs_command(limit: Annotated[int, typer.Option(help="show at most this many runs")] = 20) -> None:
    with user_errors():
        from rich.table import Table

        from bench.cli.common import open_store
        from bench.paths import project_root

        store = open_store(project_root())
        table = Table(title=f"runs in {store.path}")
        for col in ("run", "target", "profile", "started", "status", "trials (cached)", "git", "mlflow parent"):
            table.add_column(col)
        for r in store.runs()[:limit]:
            members = store.members(r.name)
            table.add_row(r.name, r.target, r.profile, r.started_at, r.status,
                          f"{len(members)} ({sum(m.cached for m in members)})", r.git_sha[:12],
                          r.mlflow_parent_id or "—")
        console.print(table)
