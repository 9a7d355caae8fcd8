"""Where the project lives: configs, the DVC-tracked data, the default MLflow store."""

from __future__ import annotations

import os
from pathlib import Path

_MARKERS = ("datasets.dvc", "configs")


def project_root(start: Path | None = None) -> Path:
    """The directory holding ``datasets.dvc`` and ``configs/``.

    Order: ``$BENCH_ROOT``; the first ancestor of ``start`` (default: cwd) with both markers, which
    is what ``ray job submit --working-dir .`` gives the entrypoint; the source checkout this
    package was imported from (editable installs).
    """
    env = os.environ.get("BENCH_ROOT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for cand in (here, *here.parents):
        if all((cand / m).exists() for m in _MARKERS):
            return cand
    pkg_parent = Path(__file__).resolve().parent.parent
    if all((pkg_parent / m).exists() for m in _MARKERS):
        return pkg_parent
    raise FileNotFoundError(
        f"no bench project found above {here}: expected a directory holding {' and '.join(_MARKERS)}. "
        "Run bench from the repository checkout or set BENCH_ROOT."
    )


def configs_dir(root: Path | None = None) -> Path:
    """``$BENCH_CONFIGS`` or ``<root>/configs``."""
    env = os.environ.get("BENCH_CONFIGS")
    return Path(env).resolve() if env else (root or project_root()) / "configs"
