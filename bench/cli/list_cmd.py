"""``bench list``: what is registered and configured.  Imports no torch."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from bench.cli.common import catalog, console, user_errors

HELP = """\
List registered models (name, task, source, config), datasets, suites and profiles.

\b
Examples:
  bench list
  bench list --task detection
"""


def list_command(
    task: Annotated[str | None, typer.Option("--task", "-t", help="only models of this task")] = None,
) -> None:
    with user_errors():
        from bench.models import MODELS
        from bench.registry import unknown_name_message
        from bench.tasks import TASKS

        if task is not None and task not in TASKS:
            raise ValueError(unknown_name_message("task", task, TASKS.names()))
        _, cat = catalog()
        models = Table(title="models")
        for col in ("name", "task", "source", "config"):
            models.add_column(col)
        def shown(builder_task: str) -> bool:  # --task also lists the models that rank on it (Mask R-CNN)
            return not task or task in (builder_task, *TASKS.get(builder_task).meta.also_ranks_on)

        for entry in MODELS.entries():
            if not shown(entry.meta.task):
                continue
            has_cfg = f"models/{entry.name}.yaml" if entry.name in cat.model_files else "— (no config)"
            models.add_row(entry.name, entry.meta.task, entry.meta.source, has_cfg)
        # Named variants: configs of another model's builder (faster_rcnn_fpn is the faster_rcnn builder).
        for name in cat.model_files:
            builder = cat.model(name).builder
            if builder != name and shown(MODELS.get(builder).meta.task):
                meta = MODELS.get(builder).meta
                models.add_row(name, meta.task, meta.source, f"models/{name}.yaml (builder {builder})")
        console.print(models)
        if task:
            return
        for title, files in (("datasets", cat.dataset_files), ("suites", cat.suite_files),
                             ("profiles", cat.profile_files)):
            table = Table(title=title)
            table.add_column("name")
            table.add_column("file")
            for name, path in files.items():
                table.add_row(name, str(path.relative_to(cat.root.parent)) if cat.root.parent in path.parents
                              else str(path))
            console.print(table)
        tasks = Table(title="tasks")
        for col in ("name", "primary metric", "description"):
            tasks.add_column(col)
        for entry in TASKS.entries():
            tasks.add_row(entry.name, entry.meta.primary_metric, entry.meta.description)
        console.print(tasks)
