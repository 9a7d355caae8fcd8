"""GoogLeNet (Inception v1) and Inception v3 networks: torchvision's classes, checked input sizes.

Both networks return ``(logits, aux...)`` in train mode (torchvision's namedtuples, which are
tuples) and plain logits ``[B, K]`` in eval mode, the protocol ``bench.models`` describes.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torchvision.models.googlenet import BasicConv2d, GoogLeNet, Inception, InceptionAux
from torchvision.models.inception import Inception3

from bench.models.classification._common import fan_in_head

# Auxiliary loss weights.  GoogLeNet: "the loss of the auxiliary classifiers was weighted by 0.3"
# (Szegedy et al. 2014, Sec. 5).  Inception v3's paper gives none; 0.4 is what its reference
# implementation (TF-slim train_image_classifier.py, `AuxLogits` loss) uses.
GOOGLENET_AUX_WEIGHT = 0.3
INCEPTION_V3_AUX_WEIGHT = 0.4

# GoogLeNet's auxiliary heads pool the 4a/4d maps to a 4x4 grid (paper: 5x5/3 average pooling of
# the 14x14 map at 224 px; torchvision: adaptive pooling to 4x4).  Below a 4x4 map the pooling can
# only repeat cells, and the 4*4*128 -> 1024 FC layer then sees copies, not the paper's grid.
GOOGLENET_AUX_GRID = 4

# Inception v3 (torchvision/TF-slim layout): the valid 3x3 convolutions and poolings of the stem
# and of the grid reductions need >= 75 px; the auxiliary head (5x5/3 average pool, then a valid
# 5x5 conv) needs the 17x17 Mixed_6e map of the reference 299 px input.
INCEPTION_V3_MIN_SIZE = 75
INCEPTION_V3_AUX_MIN_SIZE = 299


class Inception5x5(Inception):
    """torchvision's Inception module with the paper's 5x5 convolution in the third branch.

    torchvision builds that branch with a 3x3 kernel (pytorch/vision#906, kept for its pretrained
    weights); GoogLeNet (Szegedy et al. 2014, Fig. 2b and Table 1 "#5x5") uses 5x5, padding 2.
    """

    def __init__(
        self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int, pool_proj: int,
        conv_block: type[nn.Module] | None = None,
    ) -> None:
        super().__init__(in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, conv_block)
        self.branch3[1] = (conv_block or BasicConv2d)(ch5x5red, ch5x5, kernel_size=5, padding=2)


def _maxpool_ceil(side: int, kernel: int = 3, stride: int = 2) -> int:
    """Output side of an unpadded max-pool with ``ceil_mode=True`` (GoogLeNet's pools)."""
    return math.ceil((side - kernel) / stride) + 1


def googlenet_4a_side(image_size: int) -> int:
    """Side of the inception 4a/4d maps (where the auxiliary heads attach) for a square input.

    conv1 7x7/2 (pad 3), then three 3x3/2 ceil-mode max-pools; 14 at 224 px.
    """
    side = (image_size + 1) // 2
    for _ in range(3):
        side = _maxpool_ceil(side)
    return side


def googlenet(num_classes: int, image_size: int, aux_logits: bool) -> nn.Module:
    """GoogLeNet with the paper's dropout (40% main, 70% auxiliary) and 5x5 branches.

    Input ``[B, 3, S, S]``; train mode returns ``(logits, aux2, aux1)`` when ``aux_logits``.
    """
    side = googlenet_4a_side(image_size)
    if side < 1:
        raise ValueError(f"inception_v1 needs image_size >= 15 (its stride-16 4a map vanishes), got {image_size}")
    if aux_logits and side < GOOGLENET_AUX_GRID:
        raise ValueError(
            f"inception_v1: the auxiliary classifiers pool the inception 4a/4d maps to a "
            f"{GOOGLENET_AUX_GRID}x{GOOGLENET_AUX_GRID} grid, which needs a map of at least that size, i.e. "
            f"image_size >= 63 (224 px gives 14x14); image_size {image_size} gives {side}x{side}. "
            "Use image_size >= 63 or set params.aux_logits: false"
        )
    model = GoogLeNet(
        num_classes=num_classes, aux_logits=aux_logits, transform_input=False, init_weights=True,
        blocks=[BasicConv2d, Inception5x5, InceptionAux], dropout=0.4, dropout_aux=0.7,
    )
    model.aux_loss_weight = GOOGLENET_AUX_WEIGHT
    model.bench_head = "fc"
    model.bench_stages = (
        "conv1", "conv2", "conv3", "inception3a", "inception3b",
        "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "inception5a", "inception5b",
    )
    return model


def inception_v3(num_classes: int, image_size: int, aux_logits: bool, dropout: float = 0.5) -> nn.Module:
    """torchvision's Inception v3 (Szegedy et al. 2015).  Input ``[B, 3, S, S]``, S >= 75.

    Train mode returns ``(logits, aux)`` when ``aux_logits`` (which needs S >= 299).
    """
    if image_size < INCEPTION_V3_MIN_SIZE:
        raise ValueError(
            f"inception_v3 needs image_size >= {INCEPTION_V3_MIN_SIZE} (its valid 3x3 convolutions and "
            f"stride-2 grid reductions leave no map below that), got {image_size}"
        )
    if aux_logits and image_size < INCEPTION_V3_AUX_MIN_SIZE:
        raise ValueError(
            f"inception_v3: the auxiliary classifier needs image_size >= {INCEPTION_V3_AUX_MIN_SIZE} (a 5x5/3 "
            f"average pool and a valid 5x5 conv on the 17x17 Mixed_6e map), got {image_size}. "
            f"Use image_size >= {INCEPTION_V3_AUX_MIN_SIZE} or set params.aux_logits: false"
        )
    model = Inception3(num_classes=num_classes, aux_logits=aux_logits, transform_input=False, init_weights=True,
                       dropout=dropout)
    # torchvision initialises every Linear as truncated normal with std 0.1 (its ImageNet init): on
    # 2048 features the logits start with std ~4 (measured first-epoch loss 3.47 on 3 classes).  Even
    # a fan-in init starts above ln K (measured 1.25 at init vs ln 3 = 1.10: the pooled ReLU features
    # are all positive, so the logits share an offset), and the first epoch's mean loss stayed above
    # ln 3 (1.19).  A zero classifier starts at exactly ln K and still learns at once (its gradient
    # is features x (p - y)); the convolutions keep the reference init.
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.zero_()
    if aux_logits:
        fan_in_head(model.AuxLogits.fc)
    model.aux_loss_weight = INCEPTION_V3_AUX_WEIGHT
    model.bench_head = "fc"
    model.bench_stages = (
        "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
        "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
        "Mixed_7a", "Mixed_7b", "Mixed_7c",
    )
    return model
