"""``bench data``: the DVC-pinned datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bench.cli.common import console, user_errors

app = typer.Typer(
    help="Fetch and check the DVC-pinned datasets (datasets.dvc).\n\n"
    "\b\nExamples:\n  bench data pull\n  bench data status\n  bench data pull --force   # restore modified files",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _pin() -> tuple[Path, object]:
    from bench.datasets.versioning import read_pin
    from bench.paths import project_root

    root = project_root()
    return root, read_pin(root / "datasets.dvc")


@app.command("pull")
def pull(
    force: Annotated[bool, typer.Option("--force", help="overwrite local changes with the pinned version")] = False,
) -> None:
    """Fetch the pinned data through DVC (offline from the repo's local remote, or S3/GCS if configured)."""
    from bench.datasets.versioning import pull as dvc_pull

    with user_errors():
        root, pin = _pin()
        version = dvc_pull(root, pin, force=force)  # type: ignore[arg-type]
        console.print(f"{root / pin.path}: {version} (matches {pin.dvc_file.name})")  # type: ignore[attr-defined]


@app.command("status")
def status() -> None:
    """Check the data on disk against datasets.dvc (exit 1 when it differs), then show `dvc status`."""
    from bench.datasets.versioning import DataVersionError, dvc, verify

    with user_errors():
        root, pin = _pin()
        try:
            version = verify(root, pin)  # type: ignore[arg-type]
        except DataVersionError as exc:
            console.print(f"[red]{exc}[/]", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        console.print(f"{root / pin.path}: {version}, clean")  # type: ignore[attr-defined]
        console.print(dvc(root, "status").stdout.strip())


@app.command("generate")
def generate(
    out: Annotated[Path, typer.Option(help="empty folder to write")] = Path("datasets/shapes"),
    seed: Annotated[int, typer.Option(help="generator seed")] = 20261125,
) -> None:
    """Regenerate the procedural `shapes` dataset (deliberate: then `dvc add datasets && dvc push`)."""
    from bench.datasets.shapes import ShapesSpec
    from bench.datasets.shapes import generate as gen

    with user_errors():
        gen(out, ShapesSpec(seed=seed))
        console.print(f"wrote {out}; version it with `dvc add datasets && dvc push` and commit datasets.dvc")
