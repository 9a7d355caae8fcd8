"""Xception (Chollet 2017, arXiv:1610.02357): timm's ``legacy_xception`` regrouped into its flows, random init."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn


@register_model(
    "xception",
    task="classification",
    source="timm",
    paper="Chollet 2017, Xception: Deep Learning with Depthwise Separable Convolutions (arXiv:1610.02357), Fig. 5",
    description="Xception: depthwise-separable convs (no ReLU between depthwise and pointwise) in entry, middle "
                "and exit flows with residual links",
    published_params=22_855_952,
    published_ref="Chollet 2017 (arXiv:1610.02357) Table 3: Xception 22,855,952 parameters (ImageNet, 1000 classes, "
                  "no fully-connected layers)",
    ref_image_size=299,
)
def build_xception(num_classes: int, image_size: int) -> nn.Module:
    """Xception; ``image_size`` is free (total stride 32, 299 px in the paper)."""
    from bench.models.classification._xception import Xception

    return Xception(num_classes)
