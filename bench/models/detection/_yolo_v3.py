"""YOLOv3 (Redmon & Farhadi 2018, "YOLOv3: An Incremental Improvement"; darknet's ``yolov3.cfg``).

Two parts, kept apart so YOLOv4 (CSPDarknet53 + SPP + PANet) can reuse the second:

* ``YoloV3Features``: Darknet-53 (52 convolutions with residual shortcuts; the 53rd layer is the classifier,
  absent here) and the v3 neck: at stride 32 a "5-conv set" (1x1, 3x3, 1x1, 3x3, 1x1) and a 3x3 conv before
  the prediction; from the set's output a 1x1 reduction, a x2 upsample, a concat with the stride-16 route, the
  next set; the same again onto the stride-8 route.  Returns ``[P3, P4, P5]`` (strides 8, 16, 32), the last
  layer before each 1x1 prediction conv.
* ``YoloV3Detector``: the three 1x1 prediction convs (``A (4 + 1 + K)`` channels each, ``A = 3`` anchors per
  scale, the three smallest anchors on stride 8), the v3 target assignment, the v3 loss and decoding.

Box encoding (the paper's section 2.1): ``b_x = σ(t_x) + c_x``, ``b_y = σ(t_y) + c_y`` (in cells),
``b_w = p_w e^{t_w}``, ``b_h = p_h e^{t_h}`` (``p`` the anchor, input px).  Objectness and each class score
are independent logistic outputs trained with BCE.

Target assignment (darknet's ``yolo_layer.c``): each ground-truth box goes to the one anchor, of all nine,
whose shape (w, h, both centred) has the best IoU with it, at that anchor's scale, in the cell that holds its
centre.  Every other prediction is a no-object example unless its decoded box overlaps some ground truth by
more than ``ignore_thresh`` (0.5), in which case it is not penalised at all.

Loss normalisation (the paper gives none; darknet sums everything and divides the learning rate by the
batch).  Here each term is a mean, so its size does not depend on the image size or the number of objects
(what the contract's initial-loss check needs), with weights to balance them:

* ``loss_yolo3_obj``: the BCE of objectness averaged over the positives (target 1), plus, for each scale, the
  BCE averaged over that scale's counted negatives (target 0), summed over the three scales (per scale so that
  stride 8, with 16x the cells of stride 32, does not swamp the others, as YOLOv5 balances them).  The
  objectness bias starts at the prior ``obj_prior`` (0.01), which is what makes training fast: on the
  contract's overfitting batch (measured, mAP_50 after 20 Adam steps) darknet's single average over every
  counted cell scored 0.35 from a zero bias and 0.93 from the prior; positives and negatives averaged apart,
  from the prior, 0.98.  Averaging them apart (as YOLO v1 keeps object and no-object terms apart) also makes
  the initial value independent of the number of objects: ``-ln 0.01 - 3 ln 0.99``;
* ``loss_yolo3_cls``: the BCE of the K class scores, averaged over positives x K;
* ``loss_yolo3_box``: averaged over positives.  ``box_loss``: ``mse`` (the paper's sum-squared error on
  ``σ(t_x), σ(t_y)`` against the in-cell offsets and on ``t_w, t_h`` against ``log(w / p_w)``, scaled by
  ``2 - w h`` (w, h relative to the input) so small boxes weigh more, as darknet does); ``bce`` (the same,
  but BCE of ``t_x, t_y`` against the offsets: darknet applies its ``t - σ(t_x)`` delta straight to the
  logit, which is BCE's gradient); ``giou`` / ``ciou`` (``1 -`` GIoU / CIoU of the decoded box, YOLOv4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_iou

from bench.models.detection import _losses as losses
from bench.models.detection import _yolo_common

#: yolov3.cfg's COCO anchors (w, h) at 416 px, sorted by area: three per scale, stride 8 first.
COCO_ANCHORS_416: tuple[tuple[float, float], ...] = (
    (10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119), (116, 90), (156, 198), (373, 326))
STRIDES = (8, 16, 32)
#: Darknet-53's residual blocks per stage (strides 2, 4, 8, 16, 32), its stem width and stage widths.
DARKNET53_BLOCKS = (1, 2, 8, 8, 4)
DARKNET53_WIDTHS = (32, 64, 128, 256, 512, 1024)
BOX_LOSS_NAMES = ("mse", "bce", "giou", "ciou")
# Predictions are clamped so e^{t_w} stays finite in float16 and early steps cannot produce inf boxes.
MAX_LOG_WH = 8.0


#: Strides of the three output maps P3, P4, P5.
STRIDES = (8, 16, 32)


def default_anchors(image_size: int) -> list[tuple[float, float]]:
    """yolov3.cfg's COCO anchors scaled from 416 px to ``image_size`` (used when no k-means anchors are given)."""
    s = image_size / 416
    return [(w * s, h * s) for w, h in COCO_ANCHORS_416]


def conv_bn(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    """darknet's ``[convolutional]`` with ``batch_normalize=1``: conv (no bias) + BN + leaky ReLU (0.1)."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.LeakyReLU(0.1, inplace=True))


class Residual(nn.Module):
    """Darknet-53's block: ``x + conv3x3(conv1x1(x))`` (1x1 halves the channels, 3x3 restores them)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels // 2, 1), conv_bn(channels // 2, channels, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def scaled(n: int, mult: float, minimum: int = 1) -> int:
    """``n x mult`` rounded, at least ``minimum`` (widths and block counts under the width/depth knobs)."""
    return max(minimum, round(n * mult))


class Darknet53(nn.Module):
    """Darknet-53 without its classifier: ``x [B, 3, S, S] -> (C3, C4, C5)`` at strides 8, 16, 32.

    ``width`` multiplies every channel count (even numbers, so the residual 1x1 can halve them), ``depth`` every
    stage's block count (at least one): 1.0 / 1.0 is the paper's network (52 convolutions).
    """

    def __init__(self, width: float = 1.0, depth: float = 1.0) -> None:
        super().__init__()
        ch = [scaled(c, width / 2, 4) * 2 for c in DARKNET53_WIDTHS]
        self.stem = conv_bn(3, ch[0], 3)
        self.stages = nn.ModuleList(
            nn.Sequential(conv_bn(ch[i], ch[i + 1], 3, 2), *[Residual(ch[i + 1]) for _ in range(scaled(n, depth))])
            for i, n in enumerate(DARKNET53_BLOCKS))
        self.out_channels = tuple(ch[3:])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs[2:]


def conv_set(cin: int, mid: int) -> nn.Sequential:
    """yolov3.cfg's five alternating convolutions before each output: 1x1 mid, 3x3 2mid, ×2, 1x1 mid."""
    return nn.Sequential(conv_bn(cin, mid, 1), conv_bn(mid, 2 * mid, 3), conv_bn(2 * mid, mid, 1),
                         conv_bn(mid, 2 * mid, 3), conv_bn(2 * mid, mid, 1))


class YoloV3Features(nn.Module):
    """Darknet-53 + the v3 neck: ``x [B, 3, S, S] -> [P3, P4, P5]``, ``[B, c_i, S/s, S/s]`` for s = 8, 16, 32.

    P5 = 3x3(set(C5)); P4 = 3x3(set(concat(up(1x1(set(C5))), C4))); P3 likewise from P4's set and C3.  Channels
    ``out_channels`` = twice each set's width (256, 512, 1024 at full width).
    """

    def __init__(self, width: float = 1.0, depth: float = 1.0) -> None:
        super().__init__()
        self.backbone = Darknet53(width, depth)
        c3, c4, c5 = self.backbone.out_channels
        m5, m4, m3 = c5 // 2, c4 // 2, c3 // 2  # 512, 256, 128 at full width
        self.set5, self.out5 = conv_set(c5, m5), conv_bn(m5, 2 * m5, 3)
        self.reduce5 = conv_bn(m5, m4, 1)
        self.set4, self.out4 = conv_set(m4 + c4, m4), conv_bn(m4, 2 * m4, 3)
        self.reduce4 = conv_bn(m4, m3, 1)
        self.set3, self.out3 = conv_set(m3 + c3, m3), conv_bn(m3, 2 * m3, 3)
        self.out_channels = (2 * m3, 2 * m4, 2 * m5)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c3, c4, c5 = self.backbone(x)
        r5 = self.set5(c5)
        r4 = self.set4(torch.cat([F.interpolate(self.reduce5(r5), scale_factor=2.0, mode="nearest"), c4], 1))
        r3 = self.set3(torch.cat([F.interpolate(self.reduce4(r4), scale_factor=2.0, mode="nearest"), c3], 1))
        return [self.out3(r3), self.out4(r4), self.out5(r5)]


class YoloV3Detector(nn.Module):
    """The YOLOv3 head on any ``features`` giving ``[P3, P4, P5]`` (strides 8, 16, 32; ``feature_channels``).

    ``anchors``: ``3 A`` (w, h) in input px at ``image_size``, sorted by area (``A`` per scale, the smallest
    ``A`` on P3).  ``num_classes`` = K foreground classes.  Train mode: ``model(images, targets)`` -> dict of
    ``loss_yolo3_box``, ``loss_yolo3_obj``, ``loss_yolo3_cls``; eval mode: ``model(images)`` -> per-image
    ``{boxes [M, 4] xyxy image px, scores [M], labels [M] 1..K}``.
    """

    def __init__(self, features: nn.Module, feature_channels: Sequence[int], num_classes: int,
                 anchors: Sequence[tuple[float, float]], image_size: int, *, box_loss: str = "mse",
                 box_weight: float = 1.0, obj_weight: float = 1.0, cls_weight: float = 1.0,
                 ignore_thresh: float = 0.5, score_thresh: float = 0.001, nms_iou: float = 0.45,
                 detections_per_img: int = 100, obj_prior: float = 0.01, pred_init_std: float = 0.01) -> None:
        super().__init__()
        if image_size % 32:
            raise ValueError(f"YOLOv3: image_size {image_size} must be a multiple of 32 (the stride of P5)")
        if len(feature_channels) != 3:
            raise ValueError(f"YOLOv3: features give [P3, P4, P5]; got {len(feature_channels)} channel counts")
        if len(anchors) % 3 or not anchors:
            raise ValueError(f"YOLOv3: {len(anchors)} anchors cannot be split evenly over 3 scales")
        if box_loss not in BOX_LOSS_NAMES:
            raise ValueError(f"YOLOv3: unknown box_loss {box_loss!r}; choose one of {', '.join(BOX_LOSS_NAMES)}")
        self.features, self.num_classes, self.image_size = features, num_classes, image_size
        self.num_per_scale = len(anchors) // 3
        order = sorted(range(len(anchors)), key=lambda i: anchors[i][0] * anchors[i][1])
        self.register_buffer("anchors", torch.tensor([anchors[i] for i in order], dtype=torch.float32))
        self.box_loss, self.ignore_thresh = box_loss, ignore_thresh
        self.weights = {"box": box_weight, "obj": obj_weight, "cls": cls_weight}
        self.score_thresh, self.nms_iou, self.detections_per_img = score_thresh, nms_iou, detections_per_img
        self.heads = nn.ModuleList(nn.Conv2d(c, self.num_per_scale * (5 + num_classes), 1) for c in feature_channels)
        for head in self.heads:
            # Small weights: boxes start at their anchors and class logits near 0 (BCE ln 2 each).  The objectness
            # bias starts at the prior logit(obj_prior) (RetinaNet's and YOLOv5's initialisation): from 0, Adam's
            # ~lr-sized steps take thousands of iterations to bring the bias of ~99% negative cells down, and the
            # objectness of the few positives cannot rise above that background meanwhile.
            nn.init.normal_(head.weight, std=pred_init_std)
            nn.init.zeros_(head.bias)
            with torch.no_grad():
                head.bias.view(self.num_per_scale, 5 + num_classes)[:, 4] = math.log(obj_prior / (1 - obj_prior))

    # ---- layout -------------------------------------------------------------------------------------------
    def raw_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The three prediction maps ``[B, A (5 + K), S/s, S/s]``, darknet's N x N x [3 (4 + 1 + K)] layout."""
        return [head(f) for head, f in zip(self.heads, self.features(x), strict=True)]

    def split(self, raw: torch.Tensor) -> torch.Tensor:
        """``[B, A (5 + K), H, W] -> [B, A, H, W, 5 + K]`` (t_x, t_y, t_w, t_h, objectness, K class logits)."""
        b, _, h, w = raw.shape
        return raw.view(b, self.num_per_scale, 5 + self.num_classes, h, w).permute(0, 1, 3, 4, 2).float()

    def decode_boxes(self, p: torch.Tensor, scale: int) -> torch.Tensor:
        """``p [B, A, H, W, 5 + K]`` of scale ``scale`` (0..2) -> boxes ``[B, A, H, W, 4]`` xyxy input px."""
        _, _, h, w, _ = p.shape
        stride = STRIDES[scale]
        gy, gx = torch.meshgrid(torch.arange(h, device=p.device), torch.arange(w, device=p.device), indexing="ij")
        cx = (p[..., 0].sigmoid() + gx) * stride
        cy = (p[..., 1].sigmoid() + gy) * stride
        anchors = self.scale_anchors(scale).view(1, -1, 1, 1, 2)
        wh = anchors * p[..., 2:4].clamp(max=MAX_LOG_WH).exp()
        return torch.stack([cx - wh[..., 0] / 2, cy - wh[..., 1] / 2, cx + wh[..., 0] / 2, cy + wh[..., 1] / 2], -1)

    def scale_anchors(self, scale: int) -> torch.Tensor:
        """The ``A`` anchors ``[A, 2]`` (w, h input px) of scale ``scale`` (0 = stride 8)."""
        return self.anchors[scale * self.num_per_scale:(scale + 1) * self.num_per_scale]

    # ---- forward ------------------------------------------------------------------------------------------
    def forward(self, images: Sequence[torch.Tensor], targets: Sequence[dict[str, torch.Tensor]] | None = None
                ) -> dict[str, torch.Tensor] | list[dict[str, torch.Tensor]]:
        x, scaled_targets, scales = _yolo_common.square_batch(images, self.image_size, targets)
        preds = [self.split(r) for r in self.raw_outputs(x)]
        if self.training:
            if scaled_targets is None:
                raise ValueError("YOLOv3: train mode needs targets (list of {boxes, labels} per image)")
            return self.loss(preds, scaled_targets)
        return self.detect(preds, scales)

    def detect(self, preds: list[torch.Tensor], scales: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Boxes and class confidences (objectness x class score) of every prediction, then per-class NMS."""
        boxes = torch.cat([self.decode_boxes(p, s).flatten(1, 3) for s, p in enumerate(preds)], 1)
        scores = torch.cat([(p[..., 4:5].sigmoid() * p[..., 5:].sigmoid()).flatten(1, 3) for p in preds], 1)
        return _yolo_common.postprocess(boxes, scores, scales, self.score_thresh, self.nms_iou,
                                        self.detections_per_img, self.image_size)

    # ---- targets ------------------------------------------------------------------------------------------
    def assign(self, targets: Sequence[dict[str, torch.Tensor]], grids: Sequence[int]) -> list[dict[str, torch.Tensor]]:
        """v3's assignment: one anchor (best shape IoU of all 3 A) per ground truth, at its scale, in its cell.

        ``targets``: boxes ``[N, 4]`` xyxy input px, labels ``[N]`` 1..K; ``grids``: each scale's cells per side.
        Returns per scale a dict of 1-D tensors over its positives: ``b`` (image), ``a`` (anchor in scale),
        ``j``, ``i`` (cell row, column), ``txy [P, 2]`` (centre offsets in the cell, 0..1), ``twh [P, 2]``
        (``log(w / p_w), log(h / p_h)``), ``box [P, 4]`` (the ground truth, xyxy), ``label [P]`` (0..K-1),
        ``n [P]`` (the ground truth's index in its image's boxes).
        A later box that lands on an occupied (scale, anchor, cell) replaces the earlier one, as in darknet.
        """
        device = self.anchors.device
        per_scale: list[dict[str, list[torch.Tensor]]] = [{} for _ in grids]
        for b, t in enumerate(targets):
            boxes = t["boxes"].to(device, torch.float32)
            if not len(boxes):
                continue
            wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-3)
            best = shape_iou(wh, self.anchors).argmax(1)  # [N] of 0..3A-1
            centre = (boxes[:, :2] + boxes[:, 2:]) / 2
            for s, grid in enumerate(grids):
                sel = torch.nonzero(best // self.num_per_scale == s).squeeze(1)
                if not len(sel):
                    continue
                a = best[sel] % self.num_per_scale
                cell = centre[sel] / (self.image_size / grid)
                ij = cell.floor().clamp(0, grid - 1)
                found = {"b": torch.full_like(a, b), "a": a, "j": ij[:, 1].long(), "i": ij[:, 0].long(),
                         "txy": (cell - ij).clamp(0, 1), "twh": torch.log(wh[sel] / self.scale_anchors(s)[a]),
                         "box": boxes[sel], "label": t["labels"].to(device)[sel].long() - 1, "n": sel}
                for key, value in found.items():
                    per_scale[s].setdefault(key, []).append(value)
        return [dedupe({k: torch.cat(v) for k, v in d.items()}, grid, self.num_per_scale) if d else {}
                for d, grid in zip(per_scale, grids, strict=True)]

    def assigned(self, targets: Sequence[dict[str, torch.Tensor]]) -> list[torch.Tensor]:
        """Which ground truths training gives a positive (``assign``, after the overwrites): ``[N_b] bool`` per
        image, ``targets`` in input px as ``loss`` takes them.  Two objects in one cell are both learnt unless
        they also share the best anchor (of 3 x 3)."""
        grids = [-(-self.image_size // stride) for stride in STRIDES]  # the maps' sides (416 -> 52, 26, 13)
        found = [torch.zeros(len(t["boxes"]), dtype=torch.bool, device=self.anchors.device) for t in targets]
        for pos in self.assign(targets, grids):
            for b, n in zip(pos.get("b", []), pos.get("n", []), strict=True):
                found[int(b)][int(n)] = True
        return found

    # ---- loss ---------------------------------------------------------------------------------------------
    def loss(self, preds: list[torch.Tensor], targets: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The three named loss terms (see the module docstring for their normalisation)."""
        assigned = self.assign(targets, [p.shape[2] for p in preds])
        gt_boxes = [t["boxes"].to(self.anchors.device, torch.float32) for t in targets]
        zero = preds[0].sum() * 0
        box_terms, cls_terms, obj_terms, noobj = [], [], [], zero
        for s, (p, pos) in enumerate(zip(preds, assigned, strict=True)):
            noobj = noobj + self.noobject_loss(p, s, pos, gt_boxes)
            if not pos:
                continue
            cell = p[pos["b"], pos["a"], pos["j"], pos["i"]]  # [P, 5 + K]
            box_terms.append(self.box_term(cell, pos, s))
            obj_terms.append(losses.bce_loss(cell[:, 4], torch.ones_like(cell[:, 4]), reduction="none"))
            onehot = F.one_hot(pos["label"], self.num_classes).to(cell.dtype)
            cls_terms.append(losses.bce_loss(cell[:, 5:], onehot, reduction="none").mean(1))
        box, obj, cls = (torch.cat(t).mean() if t else zero for t in (box_terms, obj_terms, cls_terms))
        w = self.weights
        return {"loss_yolo3_box": w["box"] * box, "loss_yolo3_obj": w["obj"] * (obj + noobj),
                "loss_yolo3_cls": w["cls"] * cls}

    def noobject_loss(self, p: torch.Tensor, scale: int, pos: dict[str, torch.Tensor],
                      gt_boxes: Sequence[torch.Tensor]) -> torch.Tensor:
        """Mean BCE (target 0) of objectness over this scale's negatives: predictions that are not positives and
        do not overlap any ground truth by more than ``ignore_thresh``."""
        counted = torch.ones_like(p[..., 4], dtype=torch.bool)
        with torch.no_grad():
            boxes = self.decode_boxes(p, scale)  # [B, A, H, W, 4]
            for b, gt in enumerate(gt_boxes):
                if len(gt):
                    best = box_iou(boxes[b].reshape(-1, 4), gt).max(1).values.view(counted.shape[1:])
                    counted[b] = best <= self.ignore_thresh
        if pos:
            counted[pos["b"], pos["a"], pos["j"], pos["i"]] = False
        logits = p[..., 4][counted]
        return losses.bce_loss(logits, torch.zeros_like(logits), reduction="mean")

    def box_term(self, cell: torch.Tensor, pos: dict[str, torch.Tensor], scale: int) -> torch.Tensor:
        """Per-positive box loss ``[P]`` of the predictions ``cell [P, 5 + K]`` against their assignments."""
        if self.box_loss in ("giou", "ciou"):
            stride = STRIDES[scale]
            centre = (cell[:, :2].sigmoid() + torch.stack([pos["i"], pos["j"]], 1)) * stride
            wh = self.scale_anchors(scale)[pos["a"]] * cell[:, 2:4].clamp(max=MAX_LOG_WH).exp()
            pred = torch.cat([centre - wh / 2, centre + wh / 2], 1)
            return losses.box_loss(self.box_loss)(pred, pos["box"], reduction="none")
        gt_wh = pos["box"][:, 2:] - pos["box"][:, :2]
        weight = (2 - gt_wh.prod(1) / self.image_size**2).unsqueeze(1)  # darknet's 2 - w h: small boxes weigh more
        if self.box_loss == "mse":
            xy = losses.sum_squared_loss(cell[:, :2].sigmoid(), pos["txy"], weight, reduction="none")
        else:  # bce: darknet's delta on the logit
            xy = weight * losses.bce_loss(cell[:, :2], pos["txy"], reduction="none")
        wh = losses.sum_squared_loss(cell[:, 2:4], pos["twh"], weight, reduction="none")
        return (xy + wh).sum(1)


def shape_iou(wh: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """IoU of boxes ``wh [N, 2]`` with anchors ``[M, 2]``, all centred on one point -> ``[N, M]``."""
    inter = torch.minimum(wh[:, None], anchors[None]).prod(-1)
    return inter / (wh.prod(1)[:, None] + anchors.prod(1)[None] - inter)


def dedupe(pos: dict[str, torch.Tensor], grid: int, per_scale: int) -> dict[str, torch.Tensor]:
    """Keep one assignment per (image, anchor, cell): the last one, as darknet's later ground truth overwrites."""
    key = ((pos["b"] * per_scale + pos["a"]) * grid + pos["j"]) * grid + pos["i"]
    order = torch.arange(len(key), device=key.device)
    last = torch.full((int(key.max()) + 1,), -1, dtype=torch.long, device=key.device).scatter_reduce(
        0, key, order, reduce="amax")
    keep = torch.unique(last[key])
    return {k: v[keep] for k, v in pos.items()}

