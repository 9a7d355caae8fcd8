"""PANet (Liu et al. 2018, arXiv:1803.01534) on torchvision's Mask R-CNN: its three additions.

* ``BottomUpPath`` (paper Sec. 3.1, Fig. 2b): N2 = P2; N_{i+1} = ReLU(conv3x3(ReLU(conv3x3/2(N_i)) + P_{i+1})).
* ``AdaptiveRoIAlign`` (Sec. 3.2, Fig. 6): every RoI is pooled from *every* level; the heads pass each
  level's grid through one layer with its own weights (box head: fc1; mask head: conv1), then fuse
  the levels element-wise (max, or sum) and continue on the fused features.
* ``FusedMaskPredictor`` (Sec. 3.3, Fig. 4): a class-agnostic fully-connected mask from conv3 of the
  mask head (conv4_fc, conv5_fc with half the channels, fc to M x M), added to the FCN's per-class masks.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign, roi_align

from bench.models.detection import _rpn
from bench.models.detection._mask_rcnn import (
    BOX_POOL,
    LEVELS,
    Heads,
    check_mask_size,
    init_mask_logits,
)

FUSIONS = ("max", "sum")


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    """A 3x3 conv drawn as torchvision's Mask R-CNN head convs are (Kaiming fan-out for ReLU, zero bias)."""
    conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    nn.init.zeros_(conv.bias)
    return conv


def fuse(levels: list[Tensor], fusion: str) -> Tensor:
    """Element-wise max (the paper's choice) or sum over the per-level tensors, all of one shape."""
    out = levels[0]
    for x in levels[1:]:
        out = torch.maximum(out, x) if fusion == "max" else out + x
    return out


class BottomUpPath(nn.Module):
    """An FPN backbone followed by PANet's augmented bottom-up path.

    ``fpn(x)``: ``OrderedDict`` P2..P5 (keys "0".."3") + "pool"; returns N2..N5 under the same keys
    plus "pool" = stride-2 max-pool of N5 (the extra RPN level, as FPN makes P6 from P5; the authors'
    code does the same on N5).  All levels ``[B, C, H/2^k, W/2^k]`` with ``C = fpn.out_channels``.
    """

    def __init__(self, fpn: nn.Module) -> None:
        super().__init__()
        self.fpn = fpn
        self.out_channels: int = fpn.out_channels
        c, steps = self.out_channels, len(LEVELS) - 1
        self.down = nn.ModuleList(conv3x3(c, c, stride=2) for _ in range(steps))  # N_i -> H/2
        self.fuse = nn.ModuleList(conv3x3(c, c) for _ in range(steps))  # after adding P_{i+1}

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        p = self.fpn(x)
        n = [p[LEVELS[0]]]  # N2 is P2 itself, no processing
        for down, fuse_conv, name in zip(self.down, self.fuse, LEVELS[1:], strict=True):
            n.append(F.relu(fuse_conv(F.relu(down(n[-1])) + p[name])))
        out = OrderedDict(zip(LEVELS, n, strict=True))
        out["pool"] = F.max_pool2d(n[-1], kernel_size=1, stride=2)
        return out


def level_scale(feature: Tensor, image_hw: tuple[int, int]) -> float:
    """The level's stride as a scale 2^-k (feature height / image height, rounded in log2)."""
    return 2.0 ** round(math.log2(feature.shape[-2] / image_hw[0]))


class AdaptiveRoIAlign(MultiScaleRoIAlign):
    """RoIAlign of every box on every level in ``featmap_names``: a list of L ``[R, C, S, S]`` grids (R =
    all boxes of the batch in order).  torchvision's parent pools each box from one level only.

    A subclass so that torchvision's ``MaskRCNN`` accepts it; it keeps the parent's arguments.  A list,
    not one stacked tensor: the heads take each level apart again, and the backward pass of stacking
    and slicing a [R, L, C, S, S] tensor (a zero-filled copy per level, then sums) cost a third of a
    training step on CPU (measured: 0.9 s of 3.6 s at the cpu profile).
    """

    def forward(self, x: dict[str, Tensor], boxes: list[Tensor],
                image_shapes: list[tuple[int, int]]) -> list[Tensor]:
        """``x``: feature maps by name; ``boxes``: per image ``[N_i, 4]`` xyxy in image pixels;
        ``image_shapes``: the images' (h, w) before padding (the largest sets the scales, as in the parent)."""
        rois = torch.cat([torch.cat([torch.full_like(b[:, :1], i), b], dim=1) for i, b in enumerate(boxes)])
        hw = (max(h for h, _ in image_shapes), max(w for _, w in image_shapes))
        return [roi_align(x[name], rois, self.output_size, spatial_scale=level_scale(x[name], hw),
                          sampling_ratio=self.sampling_ratio, aligned=False)  # as the parent (and Detectron)
                for name in self.featmap_names]


class AdaptiveBoxHead(nn.Module):
    """The 2-fc box head with adaptive feature pooling: fc1 per level (own weights) + ReLU, fuse, fc2 + ReLU.

    L x ``[R, C, S, S] -> [R, representation_size]``.
    """

    def __init__(self, in_features: int, representation_size: int, levels: int, fusion: str) -> None:
        super().__init__()
        self.fusion = fusion
        self.fc1 = nn.ModuleList(nn.Linear(in_features, representation_size) for _ in range(levels))
        self.fc2 = nn.Linear(representation_size, representation_size)

    def forward(self, x: list[Tensor]) -> Tensor:
        per_level = [F.relu(fc(grid.flatten(1))) for fc, grid in zip(self.fc1, x, strict=True)]
        return F.relu(self.fc2(fuse(per_level, self.fusion)))


class AdaptiveMaskHead(nn.Module):
    """Mask-head convs 1-3 with adaptive feature pooling: conv1 per level (own weights) + ReLU, fuse,
    conv2, conv3 (+ ReLU each).  L x ``[R, C, S, S] -> [R, D, S, S]`` (conv3, where the FC path branches)."""

    def __init__(self, in_channels: int, channels: int, levels: int, fusion: str) -> None:
        super().__init__()
        self.fusion = fusion
        self.conv1 = nn.ModuleList(conv3x3(in_channels, channels) for _ in range(levels))
        self.conv2 = conv3x3(channels, channels)
        self.conv3 = conv3x3(channels, channels)

    def forward(self, x: list[Tensor]) -> Tensor:
        fused = fuse([F.relu(conv(grid)) for conv, grid in zip(self.conv1, x, strict=True)], self.fusion)
        return F.relu(self.conv3(F.relu(self.conv2(fused))))


class FusedMaskPredictor(nn.Module):
    """conv4 + the FCN's upsampling and per-class logits, plus the fully-connected fusion path.

    ``[R, D, S, S] -> [R, K + 1, M, M]`` logits (M = 2S): FCN: conv4 -> 2x2 deconv -> ReLU -> 1x1 conv to
    one mask per class.  FC: conv4_fc (D) -> conv5_fc (D/2) -> fc to M*M, one class-agnostic mask
    reshaped to M x M and added to every class's mask.
    """

    def __init__(self, channels: int, num_classes: int, pool_size: int, mask_size: int) -> None:
        super().__init__()
        self.mask_size = mask_size
        self.conv4 = conv3x3(channels, channels)
        self.fcn = MaskRCNNPredictor(channels, channels, num_classes)
        init_mask_logits(self.fcn.mask_fcn_logits)
        self.conv4_fc = conv3x3(channels, channels)
        self.conv5_fc = conv3x3(channels, channels // 2)
        self.fc = nn.Linear(channels // 2 * pool_size**2, mask_size**2)
        # The fc also ends in mask logits: drawn like the FCN's logits layer so the sum starts at ~0.
        # (The authors' code draws it with std 0.01 and puts a ReLU after it; the paper has neither.)
        init_mask_logits(self.fc)

    def forward(self, x: Tensor) -> Tensor:
        fcn = self.fcn(F.relu(self.conv4(x)))
        fc_path = F.relu(self.conv5_fc(F.relu(self.conv4_fc(x))))
        agnostic = self.fc(fc_path.flatten(1)).view(-1, 1, self.mask_size, self.mask_size)
        return fcn + agnostic


def panet_heads(channels: int, num_classes: int, representation_size: int, mask_size: int,
                mask_head_channels: int, sampling_ratio: int, fusion: str) -> Heads:
    """PANet's RoI heads on a ``channels``-wide pyramid; ``num_classes`` includes the background."""
    if fusion not in FUSIONS:
        raise ValueError(f"panet: unknown fusion {fusion!r}; choose one of {', '.join(FUSIONS)}")
    pool = check_mask_size("panet", mask_size)
    levels = len(LEVELS)
    return Heads(
        box_roi_pool=AdaptiveRoIAlign(list(LEVELS), output_size=BOX_POOL, sampling_ratio=sampling_ratio),
        box_head=AdaptiveBoxHead(channels * BOX_POOL**2, representation_size, levels, fusion),
        box_predictor=_rpn.box_predictor(representation_size, num_classes),
        mask_roi_pool=AdaptiveRoIAlign(list(LEVELS), output_size=pool, sampling_ratio=sampling_ratio),
        mask_head=AdaptiveMaskHead(channels, mask_head_channels, levels, fusion),
        mask_predictor=FusedMaskPredictor(mask_head_channels, num_classes, pool, mask_size),
    )
