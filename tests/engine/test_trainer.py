"""Budgeted training: the LR schedule is stretched over the time budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.config.catalog import Catalog, effective_trial
from bench.engine.trainer import lr_factor

ROOT = Path(__file__).resolve().parents[2]


def _cfg(**train: object) -> object:
    cat = Catalog(ROOT / "configs")
    cfg = effective_trial(cat.model("resnet18"), cat.dataset("shapes"), cat.profile("cpu"), seed=0)
    return cfg.model_copy(update={"train": cfg.train.model_copy(update=train)})


def test_budget_drives_the_cosine_schedule() -> None:
    cfg = _cfg(time_limit_s=100.0, warmup_iters=0, scheduler="cosine")
    assert lr_factor(10, 10_000, cfg, elapsed_s=0.0) == pytest.approx(1.0, abs=1e-3)
    assert lr_factor(10, 10_000, cfg, elapsed_s=50.0) == pytest.approx(0.5, abs=1e-3)  # half the budget spent
    assert lr_factor(10, 10_000, cfg, elapsed_s=100.0) == pytest.approx(0.0, abs=1e-9)
    assert lr_factor(9_000, 10_000, cfg, elapsed_s=1.0) < 0.03  # iterations still count when they run out first


def test_without_budget_iterations_drive_it() -> None:
    cfg = _cfg(time_limit_s=None, warmup_iters=0, scheduler="cosine")
    assert lr_factor(5_000, 10_000, cfg, elapsed_s=1e6) == pytest.approx(0.5, abs=1e-3)
