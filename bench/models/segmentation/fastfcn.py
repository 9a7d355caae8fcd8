"""FastFCN (Wu, Zhang, Huang, Liang & Yu 2019): ResNet-50 + Joint Pyramid Upsampling + FCN head, written here
(``_fastfcn.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn

_PAPER = ("Wu et al. 2019, FastFCN: Rethinking Dilated Convolution in the Backbone for Semantic Segmentation "
          "(arXiv:1903.11816)")
# The paper compares speed (FPS, Tables 1/3) and mIoU, not parameters; the authors' README lists mIoU and FPS.
_REF = "none found: the paper and the authors' README report mIoU and FPS, no parameter count"


@register_model(
    "fastfcn",
    task="semantic_segmentation",
    source="bench",
    paper=_PAPER,
    description="FastFCN: undilated ResNet-50 (output stride 32), JPU on C3-C5 (3x3 convs to 512, separable convs "
                "at dilations 1/2/4/8) to stride 8, FCN head, bilinear upsampling",
    published_params=None,
    published_ref=_REF,
    ref_num_classes=21,
    ref_image_size=480,
    train_only_modules=("aux_head",),
)
def build_fastfcn(num_classes: int, image_size: int,
                  backbone: Literal["resnet18", "resnet34", "resnet50", "resnet101"] = "resnet50",
                  backbone_width: float = 1.0, jpu_width: int = 512, aux_loss: bool = True,
                  aux_weight: float = 0.2) -> nn.Module:
    """``[B, 3, S, S] -> [B, num_classes, S, S]`` logits (``_fastfcn.FastFCN``); ``jpu_width``: the paper's C;
    ``aux_loss``: the authors' training-only FCN head on C4 (``{"out", "aux"}`` in train mode, weight 0.2)."""
    from bench.models.segmentation._fastfcn import FastFCN

    return FastFCN(num_classes, backbone=backbone, backbone_width=backbone_width, jpu_width=jpu_width,
                   aux_loss=aux_loss, aux_weight=aux_weight)
