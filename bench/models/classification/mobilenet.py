"""MobileNet v1 (Howard et al. 2017, written here) and MobileNet v2 (Sandler et al. 2018, torchvision), random init.

Both scale with the paper's width multiplier alpha (``params.width``) and resolution multiplier
rho (``train.image_size``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn


@register_model(
    "mobilenet_v1",
    task="classification",
    source="bench",
    paper="Howard et al. 2017, MobileNets (arXiv:1704.04861), Table 1",
    description="MobileNet v1: 13 depthwise-separable layers (3x3 depthwise + 1x1 pointwise, BN + ReLU after each); "
                "width multiplier alpha = params.width, resolution multiplier via image_size",
    published_params=4.2e6,
    published_ref="Howard et al. 2017 (arXiv:1704.04861) Table 8 (and Tables 4, 6): 1.0 MobileNet-224 4.2M parameters",
    ref_image_size=224,
)
def build_mobilenet_v1(num_classes: int, image_size: int, width: float = 1.0) -> nn.Module:
    """MobileNet v1 with width multiplier ``width`` = alpha in (0, 1]; total stride 32."""
    from bench.models.classification._mobilenet_v1 import MobileNetV1

    if not 0 < width <= 1:
        raise ValueError(f"mobilenet_v1: params.width is the width multiplier alpha in (0, 1], got {width}")
    return MobileNetV1(num_classes, width)


@register_model(
    "mobilenet_v2",
    task="classification",
    source="torchvision",
    paper="Sandler et al. 2018, MobileNetV2: Inverted Residuals and Linear Bottlenecks (arXiv:1801.04381), Table 2",
    description="MobileNet v2: inverted residual blocks (expand 1x1, depthwise 3x3, linear 1x1 bottleneck), "
                "residual on stride-1 blocks; width multiplier = params.width",
    published_params=3.47e6,
    published_ref="Sandler et al. 2018 (arXiv:1801.04381) Table 4 prints 3.4M; the implementation it releases "
                  "(tensorflow/models research/slim/nets/mobilenet/README.md) lists mobilenet_v2_1.0_224 at 3.47M",
    ref_image_size=224,
)
def build_mobilenet_v2(num_classes: int, image_size: int, width: float = 1.0) -> nn.Module:
    """torchvision's MobileNet v2, ``width`` = width multiplier (the paper uses 0.35 to 1.4)."""
    from torchvision.models import mobilenet_v2

    if width <= 0:
        raise ValueError(f"mobilenet_v2: params.width is the width multiplier (> 0), got {width}")
    model = mobilenet_v2(weights=None, num_classes=num_classes, width_mult=width)
    model.bench_head = "classifier.1"
    model.bench_stages = tuple(f"features.{i}" for i in range(len(model.features)))
    return model
