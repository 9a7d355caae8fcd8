"""SSDLite's MobileNetV3-Large extractor and depthwise-separable head, torchvision's parts at random init
(``torchvision.models.detection.ssdlite``), with the width multiplier exposed."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from torch import nn
from torchvision.models import mobilenet_v3_large
from torchvision.models.detection.ssdlite import SSDLiteFeatureExtractorMobileNet, SSDLiteHead, _normal_init


def backbone_and_head(num_classes: int, num_anchors: Sequence[int], width_mult: float,
                      reduced_tail: bool) -> tuple[nn.Module, nn.Module]:
    """(extractor -> six maps: C4's expansion layer (stride 16), C5 (stride 32) and four extra
    depthwise-separable stride-2 blocks, head) for ``num_classes`` including the background.

    BatchNorm eps 0.001, momentum 0.03 (torchvision's SSDLite; trainable: random init), N(0, 0.03) conv init.
    """
    norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
    trunk = mobilenet_v3_large(weights=None, norm_layer=norm, reduced_tail=reduced_tail, width_mult=width_mult)
    _normal_init(trunk)
    features = trunk.features
    c4_pos = [i for i, block in enumerate(features) if getattr(block, "_is_cn", False)][-1]  # the last stride-2 block
    backbone = SSDLiteFeatureExtractorMobileNet(features, c4_pos, norm, width_mult=width_mult)
    head = SSDLiteHead(out_channels(backbone), list(num_anchors), num_classes, norm)
    return backbone, head


def out_channels(backbone: nn.Module) -> list[int]:
    """The six maps' widths, read off the modules (no forward pass: works on the meta device)."""
    first = backbone.features[0][-1]  # C4's expansion Conv2dNormActivation
    c5 = backbone.features[1][-1]  # the trunk's last 1x1 Conv2dNormActivation
    widths = [first.out_channels, c5.out_channels]
    widths += [block[-1].out_channels for block in backbone.extra]
    return widths

