"""YOLOv5 (Ultralytics, v6.0+ layout): CSP backbone with C3 blocks, SPPF, PAN neck, the v5 Detect head and loss.

Follows ``models/yolov5{n,s,m,l,x}.yaml``, ``models/common.py``, ``models/yolo.py`` and ``utils/loss.py`` of
ultralytics/yolov5 (v6.0, Oct 2021, and later):

* ``Conv`` = conv (no bias) + BN (eps 1e-3, momentum 0.03) + SiLU; the stem is a 6x6 stride-2 conv (v6.0
  replaced the Focus layer by it);
* ``C3`` = two 1x1 branches of half the width, ``n`` bottlenecks on one, concat, 1x1; bottlenecks add their
  input (shortcut) in the backbone, not in the head;
* ``SPPF`` = 1x1, three chained 5x5 max pools (= SPP's 5/9/13 windows), concat of the four, 1x1;
* the PAN neck: top-down (1x1, nearest upsample, concat, C3) then bottom-up (3x3 stride-2, concat, C3);
* ``Detect``: a 1x1 conv per scale (P3/8, P4/16, P5/32) with ``na * (5 + C)`` outputs, 3 anchors per scale.

Width and depth multipliers apply as in ``parse_model``: channels ``ceil(c * width / 8) * 8``, repeats
``max(round(n * depth), 1)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from bench.models.detection import _yolo_common
from bench.models.detection._losses import bce_loss, box_loss

STRIDES = (8, 16, 32)
# models/yolov5*.yaml (v6.0+): the COCO anchors (w, h) in pixels at 640, smallest three on P3.
V5_ANCHORS_640 = ((10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119), (116, 90), (156, 198), (373, 326))
# (depth_multiple, width_multiple) of yolov5n/s/m/l/x.yaml.
VARIANTS = {"n": (0.33, 0.25), "s": (0.33, 0.50), "m": (0.67, 0.75), "l": (1.0, 1.0), "x": (1.33, 1.25)}
# utils/loss.py: per-scale objectness weights P3, P4, P5 (small objects' maps have more cells).
OBJ_BALANCE = (4.0, 1.0, 0.4)
# build_targets: a GT also goes to the 2 neighbouring cells whose shared edge is nearest its centre.
NEIGHBOUR_OFFSETS = ((0, 0), (1, 0), (0, 1), (-1, 0), (0, -1))

Target = dict[str, torch.Tensor]


def make_divisible(x: float, divisor: int = 8) -> int:
    """The smallest multiple of ``divisor`` >= ``x`` (yolov5's ``make_divisible``)."""
    return math.ceil(x / divisor) * divisor


def repeats(n: int, depth: float) -> int:
    """A block's repeat count under ``depth`` (``parse_model``: ``max(round(n * gd), 1) if n > 1 else n``)."""
    return max(round(n * depth), 1) if n > 1 else n


class Conv(nn.Sequential):
    """Conv (no bias, 'same' padding for odd kernels) + BN + SiLU: ``[B, c1, H, W] -> [B, c2, H/s, W/s]``."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None) -> None:
        super().__init__(nn.Conv2d(c1, c2, k, s, k // 2 if p is None else p, bias=False),
                         nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03),  # yolov5's initialize_weights
                         nn.SiLU(inplace=True))


class Bottleneck(nn.Module):
    """1x1 then 3x3 (same width: ``e = 1.0`` inside C3), plus the input when ``shortcut`` and widths agree."""

    def __init__(self, c1: int, c2: int, shortcut: bool = True, e: float = 1.0) -> None:
        super().__init__()
        hidden = int(c2 * e)
        self.cv1, self.cv2 = Conv(c1, hidden, 1), Conv(hidden, c2, 3)
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    """CSP bottleneck with 3 convs: ``cv3(cat(m(cv1(x)), cv2(x)))``, ``[B, c1, H, W] -> [B, c2, H, W]``."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, e: float = 0.5) -> None:
        super().__init__()
        hidden = int(c2 * e)
        self.cv1, self.cv2, self.cv3 = Conv(c1, hidden, 1), Conv(c1, hidden, 1), Conv(2 * hidden, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, e=1.0) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained ``k x k`` stride-1 max pools (the receptive fields of SPP's
    5, 9 and 13 windows), concat with their input, 1x1: ``[B, c1, H, W] -> [B, c2, H, W]``."""

    def __init__(self, c1: int, c2: int, k: int = 5) -> None:
        super().__init__()
        hidden = c1 // 2
        self.cv1, self.cv2 = Conv(c1, hidden, 1), Conv(hidden * 4, c2, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))


class Widths:
    """Channel and repeat counts of the v5 yaml under the multipliers."""

    def __init__(self, depth: float, width: float) -> None:
        self.depth, self.width = depth, width

    def c(self, base: int) -> int:
        return make_divisible(base * self.width, 8)

    def n(self, base: int) -> int:
        return repeats(base, self.depth)


class Backbone(nn.Module):
    """yolov5 backbone (layers 0-9): ``x [B, 3, S, S] -> (C3 [B, c256, S/8], C4 [B, c512, S/16],
    SPPF [B, c1024, S/32])``, with ``cN`` the yaml's N channels under the width multiplier."""

    def __init__(self, w: Widths) -> None:
        super().__init__()
        c = w.c
        self.stem = Conv(3, c(64), 6, 2, 2)  # 0-P1/2
        self.stage2 = nn.Sequential(Conv(c(64), c(128), 3, 2), C3(c(128), c(128), w.n(3)))  # 1-2, P2/4
        self.stage3 = nn.Sequential(Conv(c(128), c(256), 3, 2), C3(c(256), c(256), w.n(6)))  # 3-4, P3/8
        self.stage4 = nn.Sequential(Conv(c(256), c(512), 3, 2), C3(c(512), c(512), w.n(9)))  # 5-6, P4/16
        self.stage5 = nn.Sequential(Conv(c(512), c(1024), 3, 2), C3(c(1024), c(1024), w.n(3)),  # 7-8, P5/32
                                    SPPF(c(1024), c(1024), 5))  # 9

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p3 = self.stage3(self.stage2(self.stem(x)))
        p4 = self.stage4(p3)
        return p3, p4, self.stage5(p4)


class PANNeck(nn.Module):
    """yolov5 head layers 10-23: top-down FPN then bottom-up PAN, C3 blocks without shortcut.
    ``(C3, C4, C5) -> (P3 [B, c256, S/8], P4 [B, c512, S/16], P5 [B, c1024, S/32])``."""

    def __init__(self, w: Widths) -> None:
        super().__init__()
        c, n = w.c, w.n(3)
        self.lateral5 = Conv(c(1024), c(512), 1)  # 10
        self.up = nn.Upsample(scale_factor=2, mode="nearest")  # 11, 15
        self.top_down4 = C3(2 * c(512), c(512), n, shortcut=False)  # 12-13
        self.lateral4 = Conv(c(512), c(256), 1)  # 14
        self.out3 = C3(2 * c(256), c(256), n, shortcut=False)  # 16-17 (P3/8-small)
        self.down3 = Conv(c(256), c(256), 3, 2)  # 18
        self.out4 = C3(2 * c(256), c(512), n, shortcut=False)  # 19-20 (P4/16-medium)
        self.down4 = Conv(c(512), c(512), 3, 2)  # 21
        self.out5 = C3(2 * c(512), c(1024), n, shortcut=False)  # 22-23 (P5/32-large)

    def forward(self, feats: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> list[torch.Tensor]:
        c3, c4, c5 = feats
        h10 = self.lateral5(c5)
        h14 = self.lateral4(self.top_down4(torch.cat((self.up(h10), c4), 1)))
        p3 = self.out3(torch.cat((self.up(h14), c3), 1))
        p4 = self.out4(torch.cat((self.down3(p3), h14), 1))
        p5 = self.out5(torch.cat((self.down4(p4), h10), 1))
        return [p3, p4, p5]


class Detect(nn.Module):
    """Three 1x1 convs (bias on), one per scale, ``na * (5 + C)`` channels each: per anchor x, y, w, h,
    objectness, C class logits.  ``[P3, P4, P5] -> [[B, na, H_i, W_i, 5 + C]]``."""

    def __init__(self, channels: Sequence[int], num_classes: int, na: int) -> None:
        super().__init__()
        self.na, self.no = na, 5 + num_classes
        self.m = nn.ModuleList(nn.Conv2d(c, na * self.no, 1) for c in channels)
        self.reset_biases(num_classes)

    @torch.no_grad()
    def reset_biases(self, num_classes: int) -> None:
        """yolov5's ``_initialize_biases`` (added to the default conv bias): objectness ``log(8 / (640 / s)^2)``
        (about 8 objects per 640 px image spread over each scale's cells), classes ``log(0.6 / (C - 0.99))``."""
        for conv, s in zip(self.m, STRIDES, strict=True):
            if conv.bias is None or conv.bias.is_meta:
                continue
            b = conv.bias.view(self.na, -1)
            b[:, 4] += math.log(8 / (640 / s) ** 2)
            b[:, 5:] += math.log(0.6 / (num_classes - 0.99))

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for conv, f in zip(self.m, feats, strict=True):
            y = conv(f)
            b, _, h, w = y.shape
            out.append(y.view(b, self.na, self.no, h, w).permute(0, 1, 3, 4, 2).contiguous())
        return out


def build_targets(targets: torch.Tensor, anchors: torch.Tensor, shape: tuple[int, int], anchor_t: float) -> tuple[
        torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """yolov5's target assignment on one scale.

    ``targets [T, 6]`` = (image index, class 0..C-1, cx, cy, w, h) in this scale's grid units; ``anchors
    [na, 2]`` (w, h) in grid units; ``shape`` = (H, W) of the map.  A (GT, anchor) pair is kept when the
    larger of w/a_w, a_w/w, h/a_h, a_h/h is below ``anchor_t`` (a shape test, not IoU); each kept pair goes
    to the GT's own cell and the two neighbours (left or right, up or down) whose shared edge is nearest
    the centre, i.e. 3 cells (fewer at the border).  Returns ``(b, a, gj, gi, tbox [P, 4], tcls [P])``:
    per positive its image, anchor, row, column, target (cx, cy) relative to the cell's corner (in
    -0.5..1.5) with (w, h), and its class.
    """
    na, device = anchors.shape[0], targets.device
    a_idx = torch.arange(na, device=device).view(na, 1).expand(na, len(targets))
    t = torch.cat((targets[None].expand(na, -1, -1), a_idx[..., None].to(targets.dtype)), 2)  # [na, T, 7]
    r = t[..., 4:6] / anchors[:, None]
    t = t[torch.max(r, 1 / r).max(2).values < anchor_t]  # [P0, 7]
    gxy = t[:, 2:4]
    gxi = torch.tensor([shape[1], shape[0]], device=device, dtype=t.dtype) - gxy  # distance from the far edges
    g = 0.5
    left, up = ((gxy % 1 < g) & (gxy > 1)).T
    right, down = ((gxi % 1 < g) & (gxi > 1)).T
    pick = torch.stack((torch.ones_like(left), left, up, right, down))  # [5, P0]
    off = torch.tensor(NEIGHBOUR_OFFSETS, device=device, dtype=t.dtype) * g
    offsets = off[:, None].expand(-1, len(t), -1)[pick]
    t = t[None].expand(5, -1, -1)[pick]
    gxy = t[:, 2:4]
    gij = (gxy - offsets).long()
    gi, gj = gij[:, 0].clamp(0, shape[1] - 1), gij[:, 1].clamp(0, shape[0] - 1)
    tbox = torch.cat((gxy - gij, t[:, 4:6]), 1)
    return t[:, 0].long(), t[:, 6].long(), gj, gi, tbox, t[:, 1].long()


def cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    """``[..., 4]`` (cx, cy, w, h) -> ``[..., 4]`` xyxy."""
    return torch.cat((b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2), -1)


class YoloV5Detector(nn.Module):
    """YOLOv5: backbone + PAN neck + Detect, the v5 loss in train mode, decoded detections in eval mode.

    Train: ``model(images, targets) -> {loss_yolo5_box, loss_yolo5_obj, loss_yolo5_cls}``; eval:
    ``model(images) -> [{boxes [M, 4] xyxy image px, scores [M], labels [M] 1..K}]``.  Images are resized to
    ``image_size`` (a multiple of 32).
    """

    def __init__(self, num_classes: int, image_size: int, anchors: Sequence[tuple[float, float]], depth: float,
                 width: float, *, anchor_t: float = 4.0, box_loss_name: str = "ciou", box_gain: float = 0.05,
                 obj_gain: float = 1.0, cls_gain: float = 0.5, obj_balance: Sequence[float] = OBJ_BALANCE,
                 score_thresh: float = 0.001, nms_iou: float = 0.6, detections_per_img: int = 100) -> None:
        super().__init__()
        if len(anchors) % len(STRIDES):
            raise ValueError(f"yolo_v5: {len(anchors)} anchors cannot be split evenly over the 3 scales P3-P5")
        w = Widths(depth, width)
        self.num_classes, self.image_size = num_classes, image_size
        self.na = len(anchors) // len(STRIDES)
        self.backbone, self.neck = Backbone(w), PANNeck(w)
        self.detect = Detect((w.c(256), w.c(512), w.c(1024)), num_classes, self.na)
        # Sorted by area so the smallest go to P3 (yolov5's check_anchor_order); pixels at image_size.
        ordered = sorted(((float(a), float(b)) for a, b in anchors), key=lambda wh: wh[0] * wh[1])
        # A saved buffer: a checkpoint carries the anchors its weights were trained for.
        self.register_buffer("anchors", torch.tensor(ordered).view(len(STRIDES), self.na, 2))
        self.anchor_t, self.box_loss = anchor_t, box_loss(box_loss_name)
        self.obj_balance = tuple(obj_balance)
        # utils/loss.py / train.py: gains scaled to 3 layers, the image size (obj) and the class count (cls).
        nl = len(STRIDES)
        self.box_gain = box_gain * 3 / nl
        self.obj_gain = obj_gain * (image_size / 640) ** 2 * 3 / nl
        self.cls_gain = cls_gain * num_classes / 80 * 3 / nl
        self.score_thresh, self.nms_iou, self.detections_per_img = score_thresh, nms_iou, detections_per_img

    def head_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x [B, 3, S, S] -> [[B, na, S/s, S/s, 5 + C]]`` raw outputs for strides 8, 16, 32."""
        return self.detect(self.neck(self.backbone(x)))

    def forward(self, images: Sequence[torch.Tensor], targets: Sequence[Target] | None = None) -> (
            dict[str, torch.Tensor] | list[Target]):
        if self.training:
            if targets is None:
                raise ValueError("yolo_v5: train mode needs targets (boxes [N, 4] xyxy, labels [N] 1..K)")
            x, scaled, _ = _yolo_common.square_batch(images, self.image_size, targets)
            return self.loss(self.head_outputs(x), scaled)
        x, _, scales = _yolo_common.square_batch(images, self.image_size)
        return self.decode(self.head_outputs(x), scales)

    def flat_targets(self, targets: Sequence[Target], device: torch.device) -> torch.Tensor:
        """``[T, 6]`` = (image index, class 0..C-1, cx, cy, w, h) in input pixels."""
        rows = []
        for i, t in enumerate(targets):
            b = t["boxes"].float().to(device)
            cxcywh = torch.cat(((b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]), 1)
            idx = torch.full((len(b), 1), float(i), device=device)
            rows.append(torch.cat((idx, (t["labels"].to(device).float() - 1)[:, None], cxcywh), 1))
        return torch.cat(rows) if rows else torch.zeros(0, 6, device=device)

    def assigned(self, targets: Sequence[Target]) -> list[torch.Tensor]:
        """Which ground truths training gives at least one positive (``build_targets`` on each scale at
        ``image_size``): ``[N_b] bool`` per image, ``targets`` in input px as the loss takes them.  v5 keeps every
        (GT, anchor) pair that passes the shape test, in 3 cells each, and no GT overwrites another's."""
        device = self.anchors.device
        flat = self.flat_targets(targets, device)
        flat[:, 1] = torch.arange(len(flat), device=device, dtype=flat.dtype)  # the class column carries the row
        hit = torch.zeros(len(flat), dtype=torch.bool, device=device)
        for i, stride in enumerate(STRIDES):
            grid_t = torch.cat((flat[:, :2], flat[:, 2:] / stride), 1)
            side = -(-self.image_size // stride)
            hit[build_targets(grid_t, self.anchors[i] / stride, (side, side), self.anchor_t)[5]] = True
        return list(hit.split([len(t["boxes"]) for t in targets]))

    def loss(self, outputs: list[torch.Tensor], targets: Sequence[Target]) -> dict[str, torch.Tensor]:
        """The v5 loss (``utils/loss.py``'s ComputeLoss), without its final ``x batch size``.

        Per scale: box = mean over positives of ``1 - CIoU``; objectness = BCE over every (cell, anchor),
        target the (detached, clamped) CIoU at positives and 0 elsewhere, weighted by ``obj_balance``; classes
        = mean BCE over positives x classes (one-hot targets; none for a single class).  Summed over scales,
        times the gains.  All three are means, so the loss does not grow with the batch: v5 multiplies
        the total by the batch size (then SGD at lr 0.01); here the optimiser's lr absorbs that factor.
        """
        device = outputs[0].device
        flat = self.flat_targets(targets, device)
        zero = outputs[0].new_zeros((), dtype=torch.float32)
        lbox, lobj, lcls = zero.clone(), zero.clone(), zero.clone()
        for i, (p, stride) in enumerate(zip(outputs, STRIDES, strict=True)):
            p = p.float()  # the losses in fp32 under autocast
            anchors = self.anchors[i] / stride
            grid_t = torch.cat((flat[:, :2], flat[:, 2:] / stride), 1)
            b, a, gj, gi, tbox, tcls = build_targets(grid_t, anchors, (p.shape[2], p.shape[3]), self.anchor_t)
            tobj = torch.zeros(p.shape[:4], device=device)
            if len(b):
                pos = p[b, a, gj, gi]  # [P, 5 + C]
                pxy = pos[:, :2].sigmoid() * 2 - 0.5
                pwh = (pos[:, 2:4].sigmoid() * 2) ** 2 * anchors[a]
                pbox = cxcywh_to_xyxy(torch.cat((pxy, pwh), 1))
                per_box = self.box_loss(pbox, cxcywh_to_xyxy(tbox), reduction="none")
                lbox = lbox + per_box.mean()
                tobj[b, a, gj, gi] = (1 - per_box.detach()).clamp(0).to(tobj.dtype)  # the CIoU, as v5 (gr = 1)
                if self.num_classes > 1:
                    tc = torch.zeros_like(pos[:, 5:])
                    tc[torch.arange(len(b), device=device), tcls] = 1.0
                    lcls = lcls + bce_loss(pos[:, 5:], tc, reduction="mean")
            lobj = lobj + self.obj_balance[i] * bce_loss(p[..., 4], tobj, reduction="mean")
        return {"loss_yolo5_box": lbox * self.box_gain, "loss_yolo5_obj": lobj * self.obj_gain,
                "loss_yolo5_cls": lcls * self.cls_gain}

    def decode(self, outputs: list[torch.Tensor], scales: torch.Tensor) -> list[Target]:
        """``xy = (2 sigma - 0.5 + cell) * stride``, ``wh = (2 sigma)^2 * anchor``; class confidence =
        objectness x class probability (objectness alone for one class, as v5's NMS); per-class NMS."""
        boxes, scores = [], []
        for i, (p, stride) in enumerate(zip(outputs, STRIDES, strict=True)):
            y = p.float().sigmoid()
            bsz, na, h, w, _ = y.shape
            gy, gx = torch.meshgrid(torch.arange(h, device=y.device), torch.arange(w, device=y.device),
                                    indexing="ij")
            grid = torch.stack((gx, gy), -1).view(1, 1, h, w, 2).to(y.dtype)
            xy = (y[..., :2] * 2 - 0.5 + grid) * stride
            wh = (y[..., 2:4] * 2) ** 2 * self.anchors[i].view(1, na, 1, 1, 2)
            boxes.append(cxcywh_to_xyxy(torch.cat((xy, wh), -1)).view(bsz, -1, 4))
            conf = y[..., 4:5] if self.num_classes == 1 else y[..., 4:5] * y[..., 5:]
            scores.append(conf.reshape(bsz, -1, self.num_classes))
        return _yolo_common.postprocess(torch.cat(boxes, 1), torch.cat(scores, 1), scales, self.score_thresh,
                                        self.nms_iou, self.detections_per_img, self.image_size)
