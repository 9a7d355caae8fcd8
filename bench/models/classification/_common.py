"""Helpers shared by the classification builders (no torch import: registry modules use them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def require_min_size(name: str, image_size: int, stride: int) -> None:
    """Raise unless ``image_size`` survives the network's total ``stride`` (last map at least 1x1)."""
    if image_size < stride:
        raise ValueError(f"{name} needs image_size >= {stride} (total stride {stride}), got {image_size}")


def tag_transfer(model: Any, head: str, stages: Sequence[str] | None = None) -> Any:
    """Set the transfer-mode attributes of ``model`` (see ``bench.models``) and return it.

    ``head``: module path of the final classifier; ``stages``: module paths of the backbone stages,
    input to output, where the top-level children are not the natural stages.
    """
    model.bench_head = head
    if stages is not None:
        model.bench_stages = tuple(stages)
    return model


def fan_in_head(linear: Any) -> None:
    """Re-initialise a classifier ``nn.Linear``: weights uniform in +-1/sqrt(fan_in) (PyTorch's
    ``nn.Linear`` bound), bias zero, so the initial logits are O(1) and the initial loss ~ ln K.

    Reference inits scaled for 1000 ImageNet classes start a 3- or 10-class head far from that:
    EfficientNet's uniform +-1/sqrt(num_classes), Inception v3's (auxiliary) truncated normal with
    std 0.1.  Used for EfficientNet's classifier and Inception v3's auxiliary one.
    """
    import torch

    bound = 1.0 / linear.in_features ** 0.5
    with torch.no_grad():
        linear.weight.uniform_(-bound, bound)
        if linear.bias is not None:
            linear.bias.zero_()
