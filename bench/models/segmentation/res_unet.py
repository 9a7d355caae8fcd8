"""Deep Residual U-Net (Zhang, Liu & Wang 2018), written here (``_res_unet.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn

# The paper (Sec. II) states 7.8M parameters for its road-extraction net (224 px, 1 output channel).  Table I's
# 14 3x3 convs, their BNs and the 1x1 output conv alone are 7,789,378 at 2 classes, 0.1% from 7.8M
# (tests/models/test_unet_family.py checks it): the 7.8M leaves out the shortcuts.  But every unit of Table I
# changes width or resolution (the decoder's inputs are concatenations), so an identity shortcut cannot be added
# anywhere; the 1x1 conv + BN projections that make the units residual add 434,496 (+5.6%).  The fidelity test
# therefore checks the layer-by-layer count of Table I with those projections.
_REF = ("layer-by-layer count of Zhang et al. 2018 Table I (224 px, 2 classes) with 1x1 conv + BN projection "
        "shortcuts: 8,223,874; the paper's text says 7.8M, which is Table I's convs and BNs without the "
        "projections (7,789,378; the projections add 5.6%, see res_unet.py)")


@register_model(
    "res_unet",
    task="semantic_segmentation",
    source="bench",
    paper="Zhang, Liu & Wang 2018, Road Extraction by Deep Residual U-Net (arXiv:1711.10684), Sec. II, Table I",
    description="ResUNet: pre-activation residual units (BN-ReLU-conv, identity / 1x1 projection shortcuts), "
                "3-unit encoder with strided convs, bridge, 3 upsample + concat + unit decoder levels, 1x1 head",
    published_params=8_223_874,
    published_ref=_REF,
    ref_num_classes=2,
    ref_image_size=224,
)
def build_res_unet(num_classes: int, image_size: int, width: float = 1.0,
                   block: Literal["basic", "bottleneck"] = "basic") -> nn.Module:
    """ResUNet ``[B, 3, S, S] -> [B, num_classes, S, S]``, S divisible by 8 (three stride-2 units).

    ``width`` scales Table I's filters (64, 128, 256, bridge 512); ``block``: ``basic`` (the paper's two 3x3
    convs per unit) or ``bottleneck`` (1x1 -> 3x3 at width/4 -> 1x1, He et al. 2016).
    """
    from bench.models.segmentation._res_unet import ResUNet

    if image_size % 8:
        raise ValueError(f"res_unet needs image_size divisible by 8 (three stride-2 units), got {image_size}")
    if width <= 0:
        raise ValueError(f"res_unet: width must be > 0, got {width}")
    return ResUNet(in_channels=3, num_classes=num_classes, width=width, block=block)
