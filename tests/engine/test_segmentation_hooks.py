"""The segmentation engine's hooks: auxiliary heads weighted by the model's ``aux_weight``, a model's
``postprocess`` (the dense CRF) in prediction, given the images back in RGB [0, 1], and a model's own training
objective (``segmentation_loss(x, y)``, mask_rcnn_semantic's) in place of the criterion."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from bench.config.catalog import Catalog, effective_trial, parse_overrides
from bench.engine.data import MEAN, STD
from bench.engine.dense_crf import CrfParams, CrfPostprocessor, dense_crf
from bench.engine.segmentation_losses import ce_loss
from bench.tasks import task_impl

CPU = torch.device("cpu")


def unet_task(project: Path, *sets: str):  # noqa: ANN201 - the SegmentationTask
    cat = Catalog(project / "configs")
    cfg = effective_trial(cat.model("unet"), cat.dataset("shapes"), cat.profile("smoke"), seed=0,
                          overrides=parse_overrides(list(sets)))
    return task_impl(cfg.task)(cfg, project / cfg.dataset.root)


class TwoHeads(nn.Module):
    """A 1x1 conv as the main head and another as the auxiliary one (torchvision's ``{out, aux}`` dict)."""

    def __init__(self, aux_weight: float | None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.main, self.side = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1)
        if aux_weight is not None:
            self.aux_weight = aux_weight

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.main(x), "aux": self.side(x)}


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    y = torch.randint(0, 4, (2, 8, 8))
    y[0, 0] = 255
    return torch.randn(2, 3, 8, 8), y


def test_aux_head_is_weighted_by_the_model(project: Path) -> None:
    task, model, (x, y) = unet_task(project), TwoHeads(0.4), batch()
    expected = ce_loss(model.main(x), y) + 0.4 * ce_loss(model.side(x), y)
    assert task.loss(model, (x, y), CPU).item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.equal(task.predict(model, (x, y), CPU), model.main(x).argmax(1))  # prediction: the main head
    with pytest.raises(ValueError, match=r"returns auxiliary outputs \['aux'\] in training but sets no aux_weight"):
        task.loss(TwoHeads(None), (x, y), CPU)


def test_postprocess_gets_the_rgb_images(project: Path) -> None:
    """An image dark left, bright right; a blurred score map with its boundary 5 px off: the model's CRF
    post-processor moves the predicted boundary to the edge, argmax alone does not."""
    task = unet_task(project)
    rgb = torch.full((1, 3, 8, 40), 0.1)
    rgb[..., 20:] = 0.9
    fg = torch.sigmoid((torch.arange(40.0) - 14) / 3).expand(1, 8, 40)
    logits = torch.stack([(1 - fg).log(), fg.log()], 1)  # [1, 2, 8, 40]

    class Fixed(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return logits

    model = Fixed()
    x = (rgb - MEAN) / STD  # what the dataset hands the model
    plain = task.predict(model, (x, None), CPU)
    params = CrfParams(w_app=5.0, theta_alpha=10.0, theta_beta=10.0, w_smooth=1.0, theta_gamma=1.0)
    model.postprocess = CrfPostprocessor(params)
    sharp = task.predict(model, (x, None), CPU)
    assert (plain[0] == 0).sum(1).float().mean() == 15 and (sharp[0] == 0).sum(1).float().mean() == 20
    assert torch.equal(sharp[0], dense_crf(torch.softmax(logits[0], 0), rgb[0], params).argmax(0))


class OwnObjective(nn.Module):
    """A model with its own training objective: named terms from the images and the labels; no train-mode forward."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(2.0))

    def segmentation_loss(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss_a": self.w * x.mean(), "loss_b": (y == 1).float().mean()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the task must not call forward in training when the model has segmentation_loss")


def test_model_objective_replaces_the_criterion(project: Path) -> None:
    """``segmentation_loss``'s terms are summed (gradients flow through them), no training pixel accuracy is
    counted (the model predicts no pixels in training), and a configured ``train.loss`` is an error, not ignored."""
    task, model, (x, y) = unet_task(project), OwnObjective(), batch()
    loss = task.loss(model, (x, y), CPU)
    assert loss.item() == pytest.approx((2.0 * x.mean() + (y == 1).float().mean()).item(), rel=1e-6)
    loss.backward()
    assert model.w.grad is not None and model.w.grad.item() == pytest.approx(x.mean().item(), rel=1e-5)
    assert task.pop_train_counts() is None
    model.segmentation_loss = lambda x, y: 3.0 * x.sum()  # a scalar is taken as it is
    assert task.loss(model, (x, y), CPU).item() == pytest.approx(3.0 * x.sum().item(), rel=1e-6)
    with pytest.raises(ValueError, match=r"trains on its own loss \(its segmentation_loss\); train.loss='dice'"):
        unet_task(project, "train.loss.name=dice").loss(OwnObjective(), (x, y), CPU)
