"""Resume: a trial stopped after an epoch and started again ends exactly where an unbroken run ends.

The stop is real (an exception out of the loop after that epoch's checkpoint, as when the process
dies); the second call is a fresh model, optimiser and loader that go on from ``last.pt``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.config.catalog import Catalog, TrialConfig, effective_trial
from bench.engine.checkpoint import CheckpointDir, CheckpointError
from bench.engine.trainer import train_and_test


class Killed(Exception):
    """Stands for the process dying right after an epoch's checkpoint was written."""


def _cfg(project: Path, model: str = "simple_cnn", **train: object) -> TrialConfig:
    cat = Catalog(project / "configs")
    cfg = effective_trial(cat.model(model), cat.dataset("shapes"), cat.profile("smoke"), seed=3)
    # Augmentation, shuffling, momentum and a cosine schedule: everything a resume must restore.
    update = {"epochs": 3, "batch_size": 4, "max_train_images": 16, "max_eval_images": 8,
              "time_limit_s": None, "scheduler": "cosine", "warmup_iters": 2, **train}
    return cfg.model_copy(update={"train": cfg.train.model_copy(update=update)})


def _kill_after(epoch: int):  # noqa: ANN202 - a progress callback
    def progress(event: dict) -> None:
        if event.get("event") == "epoch" and event["epoch"] == epoch:
            raise Killed

    return progress


@pytest.mark.parametrize("location", ["path", "url"])
def test_resumed_run_equals_an_unbroken_one(project: Path, tmp_path: Path, location: str) -> None:
    cfg = _cfg(project)
    root = project / cfg.dataset.root
    whole = train_and_test(cfg, root, tmp_path / "whole", lambda e: None, project)
    broken = tmp_path / "broken"
    ckpt = CheckpointDir(broken.as_uri() if location == "url" else str(broken))  # file:// goes through fsspec
    with pytest.raises(Killed):
        train_and_test(cfg, root, ckpt, _kill_after(2), project, resume=True)
    assert torch.load(broken / "last.pt", weights_only=True)["epoch"] == 2
    events: list[dict] = []
    resumed = train_and_test(cfg, root, ckpt, events.append, project, resume=True)
    assert resumed.resumed_from_epoch == 2 and whole.resumed_from_epoch is None
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [3]  # only the epoch left was trained
    assert [h.train_loss for h in resumed.history] == [h.train_loss for h in whole.history]
    assert [h.lr for h in resumed.history] == [h.lr for h in whole.history]
    assert resumed.metrics == whole.metrics
    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    b = torch.load(broken / "last.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert resumed.training == whole.training


def test_without_resume_the_checkpoint_is_not_read(project: Path, tmp_path: Path) -> None:
    cfg = _cfg(project, epochs=2)
    root = project / cfg.dataset.root
    with pytest.raises(Killed):
        train_and_test(cfg, root, tmp_path, _kill_after(1), project)
    out = train_and_test(cfg, root, tmp_path, lambda e: None, project)
    assert out.resumed_from_epoch is None and len(out.history) == 2


def test_a_checkpoint_of_another_model_is_refused_with_its_file(project: Path, tmp_path: Path) -> None:
    cfg = _cfg(project, epochs=1)
    train_and_test(cfg, project / cfg.dataset.root, tmp_path, lambda e: None, project)
    other = _cfg(project, model="resnet18", epochs=1)
    with pytest.raises(CheckpointError, match=r"last\.pt: this checkpoint was written by model 'simple_cnn', "
                                              r"not 'resnet18'.*delete it"):
        train_and_test(other, project / other.dataset.root, tmp_path, lambda e: None, project, resume=True)
