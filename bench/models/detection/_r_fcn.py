"""R-FCN's detection head (Dai et al. 2016, arXiv:1605.06409): position-sensitive score maps, position-sensitive
RoI pooling and voting, fitted into torchvision's ``RoIHeads`` (box_roi_pool -> box_head -> box_predictor)."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn
from torchvision.models import resnet
from torchvision.ops import ps_roi_align, ps_roi_pool

from bench.models.detection import _rpn


class DilatedBody(nn.Module):
    """conv1..res5 of a ResNet with res5 dilated (stride 16 kept, the paper's "hole algorithm"):
    ``{"res4": [B, C4, H/16, W/16], "res5": [B, C5, H/16, W/16]}``; the RPN reads res4, the score maps res5."""

    def __init__(self, trunk: resnet.ResNet) -> None:
        super().__init__()
        self.c4 = _rpn.C4Body(trunk)
        self.layer4 = _rpn.dilate_stage(trunk.layer4)
        self.out_channels = _rpn.stage_channels(trunk)[3]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """x: [B, 3, H, W] normalised -> res4 and res5 maps, both at stride 16."""
        res4 = self.c4(x)["res4"]
        return OrderedDict(res4=res4, res5=self.layer4(res4))


def ps_pool(maps: Tensor, boxes: list[Tensor], k: int, stride: int, op: str, sampling_ratio: int) -> Tensor:
    """Position-sensitive RoI pooling: maps [B, G*k*k, h, w] (channel g*k*k + i*k + j is group g's score for
    bin (i, j), i the row) -> [R, G, k, k]; bin (i, j) of an RoI pools only its own channel of each group,
    averaged over the bin (``pool``: integer cells, the paper; ``align``: bilinear samples)."""
    if op == "pool":
        return ps_roi_pool(maps, boxes, k, 1.0 / stride)
    return ps_roi_align(maps, boxes, k, 1.0 / stride, sampling_ratio)


class PositionSensitiveScores(nn.Module):
    """The fully convolutional part, run once per image: a 1x1 conv res5 -> ``reduce_channels`` (+ ReLU),
    then ``k^2 (C+1)`` class score maps and ``4 k^2`` class-agnostic box maps; each RoI is pooled
    position-sensitively on both (one call: the groups are stacked, C+1 class groups then 4 box groups)."""

    def __init__(self, in_channels: int, reduce_channels: int, num_classes_bg: int, k: int, op: str,
                 sampling_ratio: int, feature: str = "res5") -> None:
        super().__init__()
        if op not in ("pool", "align"):
            raise ValueError(f"r_fcn: ps_op must be 'pool' (ps_roi_pool, the paper) or 'align' (ps_roi_align), "
                             f"got {op!r}")
        self.reduce = nn.Conv2d(in_channels, reduce_channels, 1)
        self.cls_maps = nn.Conv2d(reduce_channels, k * k * num_classes_bg, 1)
        self.box_maps = nn.Conv2d(reduce_channels, k * k * 4, 1)
        _rpn.kaiming(self.reduce)
        _rpn.init_normal(self.cls_maps, self.box_maps)  # scores start near 0: cross-entropy near ln(K+1)
        self.k, self.op, self.sampling_ratio, self.feature = k, op, sampling_ratio, feature

    def forward(self, features: dict[str, Tensor], proposals: list[Tensor], image_shapes: list) -> Tensor:
        """proposals: per image [P_i, 4] xyxy -> [sum P_i, (C+1) + 4, k, k] pooled bins."""
        h = torch.relu(self.reduce(features[self.feature]))
        maps = torch.cat([self.cls_maps(h), self.box_maps(h)], dim=1)
        return ps_pool(maps, proposals, self.k, _rpn.C4_STRIDE, self.op, self.sampling_ratio)


class Vote(nn.Module):
    """Voting: each RoI's score for a group is the average of its k x k position-sensitive bins."""

    def forward(self, x: Tensor) -> Tensor:
        """x: [R, G, k, k] -> [R, G]."""
        return x.mean(dim=(2, 3))


class RFCNPredictor(nn.Module):
    """Splits the voted vector into (C+1) class logits (softmax in ``RoIHeads``) and the 4 class-agnostic box
    deltas.  ``RoIHeads`` expects per-class deltas, so the agnostic 4 are repeated for every class: the smooth L1
    on the GT class's slot is then exactly the class-agnostic loss, and every class decodes the same box."""

    def __init__(self, num_classes_bg: int) -> None:
        super().__init__()
        self.num_classes_bg = num_classes_bg

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: [R, (C+1) + 4] -> (logits [R, C+1], deltas [R, 4 (C+1)])."""
        logits, deltas = x[:, : self.num_classes_bg], x[:, self.num_classes_bg:]
        return logits, deltas.repeat(1, self.num_classes_bg)
