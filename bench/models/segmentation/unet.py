"""U-Net (Ronneberger et al., 2015), written here with padded convolutions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn


@register_model(
    "unet",
    task="semantic_segmentation",
    source="bench",
    paper="Ronneberger et al. 2015, U-Net (arXiv:1505.04597), Fig. 1",
    description="4 encoder blocks (2x conv3x3 + maxpool), bottleneck, 4 decoder blocks (up-conv 2x, concat, "
    "2x conv3x3), 1x1 output conv; padded convs",
    published_ref="none published: the U-Net paper gives the layer table (Fig. 1) but no parameter count",
)
def build_unet(num_classes: int, image_size: int, base_channels: int = 64, batch_norm: bool = True) -> nn.Module:
    """U-Net with ``base_channels`` filters in the first block, doubling per level (64 -> 1024 in the paper).

    ``batch_norm`` adds BN after each conv (the paper predates BN; it makes random-init training
    stable at small batch).  ``image_size`` must be divisible by 16 (four 2x poolings).
    """
    from bench.models.segmentation._unet import UNet

    if image_size % 16:
        raise ValueError(f"unet needs image_size divisible by 16 (four 2x2 poolings), got {image_size}")
    if base_channels < 1:
        raise ValueError(f"unet: base_channels must be positive, got {base_channels}")
    return UNet(in_channels=3, num_classes=num_classes, base=base_channels, batch_norm=batch_norm)
