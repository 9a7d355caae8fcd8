"""Shared fixtures: the project root and a pinned-data check."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def project() -> Path:
    """The repository root, with the pinned data present (pulled through DVC when missing)."""
    from bench.datasets.versioning import ensure, read_pin

    ensure(ROOT, read_pin(ROOT / "datasets.dvc"))
    return ROOT
