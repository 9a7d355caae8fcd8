"""U-Net (Ronneberger et al., 2015), written here with padded convolutions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import RefVariant, register_model

if TYPE_CHECKING:
    from torch import nn


@register_model(
    "unet",
    task="semantic_segmentation",
    source="bench",
    paper="Ronneberger et al. 2015, U-Net (arXiv:1505.04597), Fig. 1",
    description="4 encoder blocks (2x conv3x3 + maxpool), bottleneck, 4 decoder blocks (up-conv 2x, concat, "
    "2x conv3x3), 1x1 output conv; padded convs",
    # The paper prints no count.  The default configuration (RGB input, BN) is this harness's, not the paper's,
    # so the reference is not checked; the paper's own network (Fig. 1: 1 input channel, 2 classes, no BN, conv
    # biases) is the `original` variant.  The paper's convolutions are unpadded (572 -> 388 px) and ours padded:
    # padding changes the feature maps' sizes, never a kernel, so the count is the same.
    published_ref="none published for the default (RGB, BN) configuration; the paper's own network is the "
                  "`original` reference variant",
    ref_num_classes=2,
    ref_image_size=576,  # the paper's 572 px tile rounded to a multiple of 16 (padded convs); no effect on the count
    ref_variants=(RefVariant(
        "original", {"in_channels": 1, "batch_norm": False}, 31_030_658,
        "issue 13's table: the original U-Net (Ronneberger et al. 2015 Fig. 1: 1 input channel, 2 classes, no BN), "
        "31,030,658 parameters, counted layer by layer from Fig. 1 (the paper prints no count)",
        num_classes=2),),
)
def build_unet(
    num_classes: int, image_size: int, base_channels: int = 64, batch_norm: bool = True, in_channels: int = 3
) -> nn.Module:
    """U-Net with ``base_channels`` filters in the first block, doubling per level (64 -> 1024 in the paper).

    ``batch_norm`` adds BN after each conv (the paper predates BN; it makes random-init training
    stable at small batch).  ``image_size`` must be divisible by 16 (four 2x poolings).
    ``in_channels``: 3 for the harness's RGB images; 1 builds the paper's grey-scale network (its
    parameter count; the engine feeds RGB, so such a model is for counting, not for training here).
    """
    from bench.models.segmentation._unet import UNet

    if image_size % 16:
        raise ValueError(f"unet needs image_size divisible by 16 (four 2x2 poolings), got {image_size}")
    if base_channels < 1:
        raise ValueError(f"unet: base_channels must be positive, got {base_channels}")
    if in_channels < 1:
        raise ValueError(f"unet: in_channels must be positive, got {in_channels}")
    return UNet(in_channels=in_channels, num_classes=num_classes, base=base_channels, batch_norm=batch_norm)
