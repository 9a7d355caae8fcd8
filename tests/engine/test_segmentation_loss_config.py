"""``train.loss``: a segmentation model's loss is chosen in config, takes effect, and is an error elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.config.catalog import Catalog, effective_trial, parse_overrides
from bench.config.loader import ConfigError
from bench.engine.segmentation_losses import ce_loss, tversky_loss
from bench.tasks import task_impl

ROOT = Path(__file__).resolve().parents[2]
CATALOG = Catalog(ROOT / "configs")


def trial(model: str, *sets: str):  # noqa: ANN201 - a TrialConfig
    return effective_trial(CATALOG.model(model), CATALOG.dataset("shapes"), CATALOG.profile("smoke"), seed=0,
                           overrides=parse_overrides(list(sets)))


def test_default_is_cross_entropy_and_a_set_loss_takes_effect(project: Path) -> None:
    default = trial("unet")
    assert default.train.loss is None
    cfg = trial("unet", "train.loss.name=tversky", "train.loss.params={alpha: 0.2, beta: 0.8}")
    assert (cfg.train.loss.name, cfg.train.loss.params) == ("tversky", {"alpha": 0.2, "beta": 0.8})
    assert cfg.config_hash() != default.config_hash()  # a different trial key
    torch.manual_seed(0)
    logits, target = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
    target[0, 0] = 255

    class Fixed(torch.nn.Module):  # the "model" returns the fixed logits, so the loss alone is compared
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return logits

    batch = (torch.zeros(2, 3, 8, 8), target)
    for c, expected in ((default, ce_loss(logits, target)), (cfg, tversky_loss(logits, target, alpha=0.2, beta=0.8))):
        task = task_impl(c.task)(c, project / c.dataset.root)
        assert task.loss(Fixed(), batch, torch.device("cpu")).item() == pytest.approx(expected.item(), rel=1e-6)


def test_loss_on_a_model_of_another_task_is_an_error() -> None:
    msg = ("train.loss from command line: --set train.loss.name applies to semantic_segmentation models only; "
           "resnet18 is a classification model")
    with pytest.raises(ConfigError, match=msg):
        trial("resnet18", "train.loss.name=dice")


def test_unknown_loss_and_parameter_list_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="unknown segmentation loss 'dise'; available: ce, bce, focal, dice"):
        trial("unet", "train.loss.name=dise")
    with pytest.raises(ConfigError, match="'dice': unknown parameter.s. gamma; valid: smooth, include_background"):
        trial("unet", "train.loss.name=dice", "train.loss.params.gamma=2")
    with pytest.raises(ConfigError, match="loss"):
        trial("unet", "train.loss.nam=dice")  # a typo in the key is rejected by the schema
