"""Budgeted training: the LR schedule is stretched over the time budget."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

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


def test_precise_bn_recomputes_running_stats_from_training_batches() -> None:
    from torch import nn

    from bench.engine.trainer import precise_bn

    class Task:  # the two things precise_bn uses: the trial's amp flag and a loss over a batch
        cfg = _cfg()

        def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], device: torch.device) -> None:
            return model(batch[0]).sum()

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).train()
    batches = [(torch.randn(8, 3, 5, 5) * 3 + 1, torch.zeros(8)) for _ in range(4)]
    model[1].running_mean.fill_(100.0)  # stale statistics, as after a fast-moving schedule
    precise_bn(model, batches, Task(), torch.device("cpu"), batches=3)
    with torch.no_grad():
        feats = [model[0](x) for x, _ in batches[:3]]
    expected = torch.stack([f.mean(dim=(0, 2, 3)) for f in feats]).mean(0)
    assert torch.allclose(model[1].running_mean, expected, atol=1e-5)
    assert model[1].momentum == 0.1  # restored


def test_checkpoints_share_the_best_epoch_and_keep_it(tmp_path: Path) -> None:
    """best.pt is last.pt's file while the last epoch is best, and keeps its weights after."""
    from bench.engine.trainer import save_checkpoint

    save_checkpoint({"epoch": 1}, tmp_path, is_best=True)
    assert (tmp_path / "best.pt").stat().st_ino == (tmp_path / "last.pt").stat().st_ino
    save_checkpoint({"epoch": 2}, tmp_path, is_best=False)
    assert torch.load(tmp_path / "best.pt")["epoch"] == 1
    assert torch.load(tmp_path / "last.pt")["epoch"] == 2
    save_checkpoint({"epoch": 3}, tmp_path, is_best=True)
    assert torch.load(tmp_path / "best.pt")["epoch"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]


def test_time_limit_cut_is_recorded_with_the_fraction_of_the_epoch(project: Path, tmp_path: Path) -> None:
    """A budget spent after the first step stops at 1 of 4 iterations: 0.25 of 2 epochs, by time limit;
    the epoch still logs its training accuracy (counted in the loss's forward) and the test set size."""
    from bench.engine.trainer import train_and_test

    cat = Catalog(project / "configs")
    cfg = effective_trial(cat.model("simple_cnn"), cat.dataset("shapes"), cat.profile("smoke"), seed=0)
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(
        update={"epochs": 2, "batch_size": 2, "time_limit_s": 1e-9, "checkpoint": False})})
    events: list[dict] = []
    out = train_and_test(cfg, project / cfg.dataset.root, tmp_path, events.append, project)
    assert out.training is not None
    assert (out.training.epochs_planned, out.training.epochs_done, out.training.stopped_by) == (2, 0.25, "time_limit")
    acc = out.history[0].train_acc
    assert len(out.history) == 1 and acc in (0.0, 0.5, 1.0)  # one batch of 2 images
    assert events[0]["train_acc"] == acc and events[-1]["event"] == "time_limit"
    assert out.test_images == sum(sum(r) for r in out.metrics["confusion_matrix"]) == 8  # smoke: 8 test images
    assert out.baseline is not None and out.baseline.metric == "top1"
