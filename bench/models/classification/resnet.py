"""ResNet v1 (He et al., 2015, arXiv:1512.03385) from torchvision, random init."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn


@register_model(
    "resnet18",
    task="classification",
    source="torchvision",
    paper="He et al. 2015, Deep Residual Learning (arXiv:1512.03385), Table 1",
    description="18-layer ResNet v1: basic residual blocks, post-activation, H(x) = F(x) + x",
)
def build_resnet18(num_classes: int, image_size: int, zero_init_residual: bool = False) -> nn.Module:
    """ResNet-18 with a ``num_classes`` head.  ``image_size`` only needs to be >= 32 (stride 32)."""
    from torchvision.models import resnet18

    if image_size < 32:
        raise ValueError(f"resnet18 needs image_size >= 32 (total stride 32), got {image_size}")
    return resnet18(weights=None, num_classes=num_classes, zero_init_residual=zero_init_residual)
