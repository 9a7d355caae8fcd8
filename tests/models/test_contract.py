"""Contract tests, parametrised over the model registry: every model, present and future, gets them.

Each model, at its ``smoke`` configuration on real ``shapes`` batches: builds; produces outputs of
the right shape; reduces its training loss over a few steps on a fixed batch; evaluates to its
task's metric keys; round-trips a checkpoint.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.config.catalog import Catalog, effective_trial
from bench.engine.data import make_loader
from bench.models import MODELS
from bench.tasks import TASKS, task_impl

ROOT = Path(__file__).resolve().parents[2]
CATALOG = Catalog(ROOT / "configs")


@dataclass
class Subject:
    """One model under test: its task, the model built at the smoke profile, a fixed training batch."""

    task: Any
    model: torch.nn.Module
    batch: Any


def setup(name: str, project: Path) -> Subject:
    """The task, the model at the smoke profile and a fixed batch of training images.

    4 images, in file order; for Siamese losses 8 shuffled ones, which need same-class and
    different-class pairs inside the batch.
    """
    torch.manual_seed(0)
    cfg = effective_trial(CATALOG.model(name), CATALOG.dataset("shapes"), CATALOG.profile("smoke"), seed=0)
    task = task_impl(cfg.task)(cfg, project / cfg.dataset.root)
    size = 8 if cfg.task == "verification" else 4
    loader = make_loader(task.dataset("train", train=False), size, shuffle=cfg.task == "verification", seed=0,
                         num_workers=0,
                         collate=task.collate)
    return Subject(task, task.build_model(), next(iter(loader)))


# One build per model for all its checks (building VGG or EfficientNet-B7 takes seconds): the fixture
# is module-scoped, so pytest runs a model's tests together, and the xdist group keeps them on one
# worker.  The loss test trains the shared model, so it runs last (definition order).
@pytest.fixture(scope="module", params=[pytest.param(n, marks=pytest.mark.xdist_group(f"model-{n}"))
                                        for n in MODELS.names()])
def subject(request: pytest.FixtureRequest, project: Path) -> Subject:
    return setup(request.param, project)


def outputs_of(task: Any, model: torch.nn.Module, batch: Any) -> Any:
    model.eval()
    with torch.no_grad():
        return task.predict(model, batch, torch.device("cpu"))


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_has_a_config(name: str) -> None:
    assert name in CATALOG.model_files, f"configs/models/{name}.yaml is missing"


def test_forward_shape(subject: Subject) -> None:
    task, model, batch = subject.task, subject.model, subject.batch
    out = outputs_of(task, model, batch)
    n = len(batch[0])
    if task.cfg.task == "classification":
        assert out.shape == (n, task.num_classes)
        assert torch.allclose(out.sum(1), torch.ones(n), atol=1e-5)
    elif task.cfg.task == "verification":  # unit-norm embeddings
        assert out.ndim == 2 and out.shape[0] == n
        assert torch.allclose(out.norm(dim=1), torch.ones(n), atol=1e-4)
    elif task.cfg.task == "semantic_segmentation":
        assert out.shape == batch[1].shape
        assert int(out.max()) < task.num_classes
    else:
        assert len(out) == n
        for det in out:
            assert det["boxes"].shape[1:] == (4,) and len(det["scores"]) == len(det["labels"])


def test_evaluates_to_task_metrics(subject: Subject) -> None:
    task, model, batch = subject.task, subject.model, subject.batch
    evaluator = task.evaluator("val")
    task.update(evaluator, batch, outputs_of(task, model, batch))
    metrics = evaluator.compute()
    spec = TASKS.get(task.cfg.task).meta
    assert set(spec.headline_metrics) <= set(metrics)
    assert metrics["spec"].startswith("bench-metrics/")


def test_checkpoint_round_trip(subject: Subject) -> None:
    task, model, batch = subject.task, subject.model, subject.batch
    buf = io.BytesIO()
    torch.save({"model": model.state_dict()}, buf)
    buf.seek(0)
    torch.manual_seed(123)  # a differently initialised twin
    twin = task.build_model()
    twin.load_state_dict(torch.load(buf)["model"])
    a, b = outputs_of(task, model, batch), outputs_of(task, twin, batch)
    if isinstance(a, list):
        for da, db in zip(a, b, strict=True):
            assert torch.equal(da["boxes"], db["boxes"]) and torch.equal(da["scores"], db["scores"])
    else:
        assert torch.equal(a, b)


def test_training_reduces_loss_on_fixed_batch(subject: Subject) -> None:
    task, model, batch = subject.task, subject.model, subject.batch
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)  # one pass over VGG's 130M weights
    model.train()
    losses = []
    for _ in range(8):
        loss = task.loss(model, batch, torch.device("cpu"))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert min(losses[-3:]) < losses[0], losses
