"""Shared fixtures: the project root and a pinned-data check."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tests never write the repository's results store (results/results.db) nor reuse its trials.
os.environ.setdefault("BENCH_RESULTS", str(Path(tempfile.mkdtemp(prefix="bench-test-results-")) / "results.db"))
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `pytest -n 2` on two cores: one OpenMP thread per worker.  With torch's default of one thread
    # per core, the two workers (plus the e2e tests' Ray trials) oversubscribe the cores and OpenMP's
    # spin-waiting turns that into 10-25x slower steps (measured: a contract test at 1.6 s alone
    # took 42 s in the suite).  Set before torch is imported, so it takes effect.
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def project() -> Path:
    """The repository root, with the pinned ``shapes`` and ``shapes_small`` data present (pulled through DVC
    when missing).

    Only those two: the tests train on them (``shapes_small`` is the binary view ``threshold_otsu`` needs), and
    pulling MNIST's 70k files would cost minutes; tests on MNIST skip when it was not pulled.
    """
    from bench.datasets.versioning import ensure, read_pin

    for name in ("shapes", "shapes_small"):
        ensure(ROOT, read_pin(ROOT / "datasets.dvc", f"datasets/{name}", ROOT))
    return ROOT


def copy_project(src: Path, dst: Path, with_data: bool, datasets: tuple[str, ...] = ("shapes",)) -> Path:
    """A checkout of the tracked metadata (configs, .dvc, the local remote), data optional.

    ``with_data`` copies only the ``datasets`` directories named (each has its own pin), not all of
    ``datasets/``.
    """
    dst.mkdir()
    for name in ("configs", ".dvc"):
        shutil.copytree(src / name, dst / name, ignore=shutil.ignore_patterns("cache", "tmp", "config.local"))
    shutil.copy(src / "datasets.dvc", dst)
    (dst / "data-remote").symlink_to(src / "data-remote")
    if with_data:
        for name in datasets:
            shutil.copytree(src / "datasets" / name, dst / "datasets" / name)
    subprocess.run(["git", "init", "-q"], cwd=dst, check=True)
    return dst


def heavy_imports_after(code: str, heavy: tuple[str, ...] = ("torch", "matplotlib")) -> list[str]:
    """Run ``code`` in a fresh interpreter; return which of ``heavy`` it ended up importing."""
    probe = f"{code}\nimport sys as _s; print([m for m in {heavy!r} if m in _s.modules])"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 - our own printed list
