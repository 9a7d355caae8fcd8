"""Shared CLI plumbing: consistent error exits, the project catalog, the results store and MLflow."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, overload

import typer
from rich.console import Console

from bench.config.catalog import Catalog
from bench.config.loader import ConfigError
from bench.datasets.versioning import DataVersionError
from bench.paths import configs_dir, project_root
from bench.registry import RegistryError

if TYPE_CHECKING:  # MLflow is imported only by the commands that track
    from bench.results.store import ResultsStore
    from bench.tracking.mlflow_writer import MlflowWriter

console = Console()
err_console = Console(stderr=True)

# Errors a user can fix from the message alone: shown in one line, exit code 2, no traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError, RegistryError, FileNotFoundError, FileExistsError, ValueError, DataVersionError,
)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn user-fixable errors into ``error: ...`` on stderr and exit code 2."""
    try:
        yield
    except USER_ERRORS as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def catalog() -> tuple[Path, Catalog]:
    """The project root and its configs catalog."""
    root = project_root()
    return root, Catalog(configs_dir(root))


def open_store(root: Path) -> ResultsStore:
    """The results store (``$BENCH_RESULTS`` or ``<project>/results/results.db``), or exit 2 naming the path."""
    from bench.results.store import ResultsStore, StoreVersionError, default_path

    path = default_path(root)
    try:
        return ResultsStore(path)
    except StoreVersionError as exc:  # names the file and the fix itself
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # noqa: BLE001 - sqlite3 and OS errors alike: name the file and stop
        err_console.print(f"[bold red]error:[/] cannot open the results store {path}: {type(exc).__name__}: {exc}. "
                          "Set BENCH_RESULTS to a writable file.", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@overload
def open_tracking(root: Path) -> MlflowWriter: ...
@overload
def open_tracking(root: Path, required: bool) -> MlflowWriter | None: ...
def open_tracking(root: Path, required: bool = True) -> MlflowWriter | None:
    """The MLflow writer.  When the tracking store cannot be reached: exit 2 with the URI, or, not
    ``required`` (``bench run``), a warning and None (records then wait in the results store)."""
    from bench.tracking.mlflow_writer import MlflowWriter, tracking_uri

    try:
        return MlflowWriter(root)
    except Exception as exc:  # noqa: BLE001 - MLflow raises several unrelated types for "unreachable"
        why = f"cannot use MLflow at {tracking_uri(root)}: {type(exc).__name__}: {str(exc)[:300]}"
        if not required:
            err_console.print(f"[bold yellow]warning:[/] {why}. The run goes on: every record is kept in the "
                              "results store, and `bench sync` pushes them once the server is reachable.",
                              highlight=False, soft_wrap=True)
            return None
        err_console.print(f"[bold red]error:[/] {why}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
