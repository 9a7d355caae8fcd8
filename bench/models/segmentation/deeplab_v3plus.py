"""DeepLab v3+ (Chen, Zhu, Papandreou, Schroff & Adam 2018), segmentation-models-pytorch's ``DeepLabV3Plus``
(``_deeplab_v3plus.py``: what was verified in smp's code)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn

_PAPER = ("Chen et al. 2018, Encoder-Decoder with Atrous Separable Convolution for Semantic Image Segmentation "
          "(arXiv:1802.02611)")
# The paper gives mIoU and multiply-adds (Tables 3-5), no parameter counts, and smp documents none for the
# whole model; third-party counts (e.g. MMSegmentation's DeepLabV3+ R-101, a 512-channel head with an FCN aux
# head) describe other layouts, so no figure would check this one.
_REF = ("none: the paper reports mIoU and multiply-adds (its ResNet-101 and Xception tables), no parameter counts; smp "
        "publishes no whole-model count; "
        "other implementations' figures are of different heads")


@register_model(
    "deeplab_v3plus",
    task="semantic_segmentation",
    source="smp",
    paper=_PAPER,
    description="DeepLab v3+: ResNet-101 encoder (output stride 16), separable ASPP at rates 6/12/18 with image "
                "pooling, decoder fusing 48-channel stride-4 features, x4 upsampling (segmentation-models-pytorch)",
    published_params=None,
    published_ref=_REF,
    ref_num_classes=21,
    ref_image_size=512,
)
def build_deeplab_v3plus(num_classes: int, image_size: int, encoder_name: str = "resnet101",
                         output_stride: Literal[8, 16] = 16, decoder_channels: int = 256,
                         encoder_kwargs: dict[str, Any] | None = None) -> nn.Module:
    """``[B, 3, S, S] -> [B, num_classes, S, S]`` logits; S a multiple of ``output_stride``.  The ASPP rates
    follow ``output_stride`` (16: 6, 12, 18; 8: 12, 24, 36); ``encoder_name``: any smp encoder (random init);
    ``encoder_kwargs``: passed to a timm (``tu-``) encoder's constructor (e.g. ``channels`` of a narrow ResNet)."""
    from bench.models.segmentation._deeplab_v3plus import DeepLabV3Plus

    if image_size % output_stride:
        raise ValueError(f"deeplab_v3plus: image_size {image_size} must be a multiple of output_stride "
                         f"{output_stride} (smp checks the input; the decoder concatenates stride-4 features)")
    return DeepLabV3Plus(num_classes, encoder_name=encoder_name, encoder_output_stride=output_stride,
                         decoder_channels=decoder_channels, encoder_kwargs=encoder_kwargs)
