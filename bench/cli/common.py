"""Shared CLI plumbing: consistent error exits and the project catalog."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console

from bench.config.catalog import Catalog
from bench.config.loader import ConfigError
from bench.datasets.versioning import DataVersionError
from bench.paths import configs_dir, project_root
from bench.registry import RegistryError

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

