"""FCN-32s, FCN-16s and FCN-8s on VGG16 (Long, Shelhamer & Darrell 2015), written here (``_fcn.py``).

torchvision's ``fcn_resnet50`` is not the paper's FCN (a dilated ResNet, no skips, no deconvolution).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn

_PAPER = "Long, Shelhamer & Darrell 2015, Fully Convolutional Networks for Semantic Segmentation (arXiv:1411.4038)"
# Table 1 gives FCN-VGG16 134M parameters.  Counted here at 21 classes: the VGG16 convs, fc6 and fc7 are
# 134.26M; FCN-32s adds score_fr and its 64x64 x 21 x 21 deconvolution (136.15M, +1.6%), FCN-16s and -8s
# the skip scores and their deconvolutions (134.82M and 134.49M; the fixed x16 one is 32x32 x 21 x 21).
_REF = "Long et al. 2015, Table 1: FCN-VGG16, 134M parameters (PASCAL VOC, 21 classes)"
_SKIPS = {32: "no skip", 16: "pool4 skip", 8: "pool4 and pool3 skips"}


def _register(name: str, stride: int) -> None:
    @register_model(
        name,
        task="semantic_segmentation",
        source="bench",
        paper=_PAPER,
        description=f"FCN-{stride}s: VGG16 convs (first padded 100 px), fc6/fc7 as convs, {_SKIPS[stride]}, "
                    "bilinear-initialised deconvolutions (the x2 ones learnable), Caffe's crops",
        published_params=134e6,
        published_ref=_REF,
        ref_num_classes=21,
        ref_image_size=500,
    )
    def build(num_classes: int, image_size: int, width: float = 1.0, fc_dim: int = 4096,
              batch_norm: bool = False, dropout: float = 0.5) -> nn.Module:
        """``[B, 3, S, S] -> [B, num_classes, S, S]`` logits (``_fcn.FCN``); any S >= 1."""
        from bench.models.segmentation._fcn import FCN

        if width <= 0 or fc_dim < 1:
            raise ValueError(f"{name}: width must be > 0 and fc_dim >= 1, got {width}, {fc_dim}")
        return FCN(num_classes, stride, width=width, fc_dim=fc_dim, batch_norm=batch_norm, dropout=dropout)


for _name, _stride in (("fcn32s", 32), ("fcn16s", 16), ("fcn8s", 8)):
    _register(_name, _stride)
