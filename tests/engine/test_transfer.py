"""Transfer modes: weights from a local file only, the right parameters frozen, a new head."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.config.schema import TransferConfig
from bench.engine.transfer import TransferError, apply_transfer, freeze_frozen_norms, stage_names
from bench.models import build_model


def _pretrained(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """A 1000-class ResNet-18 saved as a checkpoint, as a user would bring one."""
    torch.manual_seed(1)
    src = build_model("resnet18", 1000, 64, {})
    path = tmp_path / "r18.pt"
    torch.save({"model": src.state_dict()}, path)
    return path, src.state_dict()


def _trainable(model: torch.nn.Module) -> set[str]:
    return {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}


def test_frozen_trains_only_a_new_head(tmp_path: Path) -> None:
    path, src = _pretrained(tmp_path)
    torch.manual_seed(2)
    model = build_model("resnet18", 3, 64, {})
    info = apply_transfer(model, TransferConfig(mode="frozen", weights=str(path)), tmp_path)
    assert _trainable(model) == {"fc"} and info["trainable"] == ["fc"]
    assert torch.equal(model.layer3[0].conv1.weight, src["layer3.0.conv1.weight"])
    assert model.fc.weight.shape == (3, 512)  # new head, the 1000-class one is skipped
    model.train()
    freeze_frozen_norms(model)
    assert not model.bn1.training and model.fc.training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 64, 64)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    opt.step()
    after = model.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"fc"}  # running BN statistics of the frozen backbone did not move either


def test_finetune_last_stages(tmp_path: Path) -> None:
    path, _ = _pretrained(tmp_path)
    model = build_model("resnet18", 3, 64, {})
    assert stage_names(model)[-2:] == ["layer3", "layer4"]
    apply_transfer(model, TransferConfig(mode="finetune", weights="r18.pt", finetune_stages=2), tmp_path)
    assert _trainable(model) == {"fc", "layer3", "layer4"}


def test_missing_weights_file_is_named(tmp_path: Path) -> None:
    model = build_model("resnet18", 3, 64, {})
    with pytest.raises(TransferError, match=r"nope\.pt does not exist.*never downloads"):
        apply_transfer(model, TransferConfig(mode="frozen", weights="nope.pt"), tmp_path)
    with pytest.raises(TransferError, match="needs transfer.weights"):
        apply_transfer(model, TransferConfig(mode="finetune"), tmp_path)
    with pytest.raises(TransferError, match="has 6 stages"):
        path, _ = _pretrained(tmp_path)
        apply_transfer(model, TransferConfig(mode="finetune", weights=str(path), finetune_stages=9), tmp_path)


def test_scratch_is_the_default_and_trains_everything(tmp_path: Path) -> None:
    model = build_model("resnet18", 3, 64, {})
    assert apply_transfer(model, TransferConfig(), tmp_path) == {"mode": "scratch"}
    assert all(p.requires_grad for p in model.parameters())
