"""YOLOv2 (Redmon & Farhadi 2017, "YOLO9000: Better, Faster, Stronger"), laid out as darknet's ``cfg/yolov2.cfg``.

* **Darknet-19** (the paper's Table 6 without its classifier): 3x3 convs doubling the channels after each
  2x2 max-pool, 1x1 convs halving them in between, every conv followed by BatchNorm (the conv then has no bias)
  and leaky ReLU (0.1).  A 416 px input ends at 13x13x1024 (stride 32).
* **Detection head** (yolov2.cfg after the backbone): two 3x3x1024 convs on the 13x13 map; the
  **passthrough layer** takes the 26x26x512 map (the last conv before the fifth max-pool), reduces it with a
  1x1 conv to 64 channels and **reorganises** it (space-to-depth, stride 2) to 13x13x256, concatenated in
  front of the 13x13x1024 map (``[route] -1,-4``) -> 1280 channels; a 3x3x1024 conv and a 1x1 conv to
  ``A (5 + K)`` outputs (bias, linear).
* **Output layout**: ``[B, A (5 + K), S, S]``, anchor-major as darknet's region layer stores it: channels
  ``a (5 + K) + [tx, ty, tw, th, to, c_1 .. c_K]`` for anchor ``a``.
* **Direct location prediction**: ``b_x = σ(t_x) + c_x``, ``b_y = σ(t_y) + c_y``, ``b_w = p_w e^{t_w}``,
  ``b_h = p_h e^{t_h}`` (grid units; ``p_w, p_h`` the anchor), objectness ``σ(t_o)``, a softmax over the K
  classes per anchor; a detection's score is ``σ(t_o) · softmax_k``.
* **Region loss** (darknet's ``forward_region_layer``): see :meth:`YoloV2.region_loss`.

Anchors come in input pixels at ``image_size`` (k-means on the training boxes, filled by the detection task,
or the published COCO anchors); internally they are grid units at the current input size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_iou

from bench.models.detection import _yolo_common
from bench.models.detection._losses import ce_loss, sum_squared_loss

Target = dict[str, torch.Tensor]

STRIDE = 32  # Darknet-19's five 2x2 max-pools
LEAKY_SLOPE = 0.1  # darknet's "leaky" activation
PASSTHROUGH_CHANNELS = 64  # yolov2.cfg: [route] -9 -> [convolutional] 1x1, 64 filters -> [reorg] stride 2
MAX_LOG_SCALE = 6.0  # e^6 ~ 400 anchors: exp(t_w) clamped when decoding, so an untrained head cannot overflow

#: yolov2.cfg's ``[region] anchors`` (COCO), (w, h) in units of the 13x13 grid cell (x 32 = pixels at 416).
#: Source: pjreddie/darknet cfg/yolov2.cfg; the paper's k = 5 dimension clusters on COCO.
YOLOV2_COCO_ANCHORS: tuple[tuple[float, float], ...] = (
    (0.57273, 0.677385), (1.87446, 2.06253), (3.33843, 5.47434), (7.88282, 3.52778), (9.77052, 9.16828))

# Darknet-19 as yolov2.cfg writes it: "M" a 2x2 max-pool; (channels, kernel) a conv + BN + leaky.  The
# passthrough branches off after ``DARKNET19_C4`` (26x26x512 at 416 px); ``DARKNET19_C5`` ends at 13x13x1024.
Layer = tuple[int, int] | str
DARKNET19_C4: tuple[Layer, ...] = (
    (32, 3), "M", (64, 3), "M", (128, 3), (64, 1), (128, 3), "M", (256, 3), (128, 1), (256, 3), "M",
    (512, 3), (256, 1), (512, 3), (256, 1), (512, 3))
DARKNET19_C5: tuple[Layer, ...] = ("M", (1024, 3), (512, 1), (1024, 3), (512, 1), (1024, 3))


def scaled(channels: int, width: float) -> int:
    """``channels`` times the width multiplier, at least 8 (``width`` 1 is the paper's network)."""
    return max(8, round(channels * width))


class ConvBNLeaky(nn.Sequential):
    """darknet's ``[convolutional] batch_normalize=1 activation=leaky``: conv (no bias: BN's beta is the bias),
    BatchNorm, leaky ReLU 0.1; ``padding = k // 2`` keeps the spatial size."""

    def __init__(self, cin: int, cout: int, k: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.LeakyReLU(LEAKY_SLOPE, inplace=True))


def _stack(layout: Sequence[Layer], cin: int, width: float) -> tuple[nn.Sequential, int]:
    """The layers of ``layout`` (see ``DARKNET19_C4``) from ``cin`` channels -> (module, out channels)."""
    layers: list[nn.Module] = []
    for spec in layout:
        if isinstance(spec, str):
            layers.append(nn.MaxPool2d(2, 2))
        else:
            cout = scaled(spec[0], width)
            layers.append(ConvBNLeaky(cin, cout, spec[1]))
            cin = cout
    return nn.Sequential(*layers), cin


class Darknet19(nn.Module):
    """Darknet-19's 18 convs (the classifier's final 1x1x1000 conv and pooling left out, as in yolov2.cfg).

    ``forward(x [B, 3, H, W]) -> (c4 [B, 512w, H/16, W/16], c5 [B, 1024w, H/32, W/32])``: the passthrough's
    source and the top of the backbone.
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.c4, self.c4_channels = _stack(DARKNET19_C4, 3, width)
        self.c5, self.c5_channels = _stack(DARKNET19_C5, self.c4_channels, width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c4 = self.c4(x)
        return c4, self.c5(c4)


def reorg(x: torch.Tensor, stride: int = 2) -> torch.Tensor:
    """Space-to-depth: ``[B, C, H, W] -> [B, C s^2, H / s, W / s]``, each ``s x s`` block of a channel stacked
    into ``s^2`` channels (the paper: "stacking adjacent features into different channels").

    darknet's ``reorg`` kernel orders the moved elements differently (a fixed bijection of the same tensor,
    same shape); the conv that follows sees the same information either way.
    """
    if x.shape[-1] % stride or x.shape[-2] % stride:
        raise ValueError(f"reorg: map {tuple(x.shape[-2:])} is not divisible by the stride {stride}")
    return F.pixel_unshuffle(x, stride)


class YoloV2Head(nn.Module):
    """yolov2.cfg after Darknet-19: ``forward(c4, c5) -> [B, A (5 + K), S, S]`` raw outputs (S = H / 32)."""

    def __init__(self, c4_channels: int, c5_channels: int, num_anchors: int, num_classes: int,
                 width: float = 1.0) -> None:
        super().__init__()
        wide = scaled(1024, width)
        self.top = nn.Sequential(ConvBNLeaky(c5_channels, wide, 3), ConvBNLeaky(wide, wide, 3))
        self.passthrough = ConvBNLeaky(c4_channels, scaled(PASSTHROUGH_CHANNELS, width), 1)
        self.fuse = ConvBNLeaky(4 * scaled(PASSTHROUGH_CHANNELS, width) + wide, wide, 3)
        self.predict = nn.Conv2d(wide, num_anchors * (5 + num_classes), 1)
        # Drawn small (std 0.01, zero bias) rather than darknet's uniform init: every output starts near 0, so
        # σ(t_o) ~ 0.5, the class softmax ~ 1/K and each box is its anchor at its cell's centre -- the state the
        # initial-loss check derives its expectations from (tests/models/test_contract.py).
        nn.init.normal_(self.predict.weight, std=0.01)
        nn.init.zeros_(self.predict.bias)

    def forward(self, c4: torch.Tensor, c5: torch.Tensor) -> torch.Tensor:
        fine = reorg(self.passthrough(c4))  # [B, 4 * 64w, S, S]
        return self.predict(self.fuse(torch.cat([fine, self.top(c5)], dim=1)))  # route -1,-4: reorg first


def paired_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of paired boxes ``a, b [N, 4] xyxy -> [N]``."""
    lt, rb = torch.maximum(a[:, :2], b[:, :2]), torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = (a[:, 2:] - a[:, :2]).prod(-1) + (b[:, 2:] - b[:, :2]).prod(-1) - inter
    return inter / union.clamp(min=1e-9)


def cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    """``[..., 4]`` (cx, cy, w, h) -> (x1, y1, x2, y2)."""
    return torch.cat([b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2], dim=-1)


def best_anchor(wh: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """For boxes ``wh [N, 2]`` and ``anchors [A, 2]`` (same units), the anchor of highest IoU with the two boxes
    centred together (darknet's ``bias_match``) -> ``[N]``; ties go to the lower index."""
    inter = torch.minimum(wh[:, None], anchors[None]).prod(-1)
    iou = inter / (wh.prod(-1)[:, None] + anchors.prod(-1)[None] - inter)
    return iou.argmax(1)


class Assignment:
    """The region layer's targets for a batch, on the ``[B, A, S, S]`` prediction grid (grid units).

    ``responsible [B, A, S, S]`` bool: the slot of some GT's cell and best anchor (when two GTs share one, the
    later GT wins, as darknet's later delta overwrites the earlier); at those slots ``box [B, A, S, S, 4]``
    holds ``(t_x, t_y, t_w, t_h)`` targets -- ``(σ(t_x), σ(t_y))`` should equal the centre's offset in its
    cell, ``t_w = ln(w / p_w)`` --, ``gt [.., 4]`` the GT box xyxy (grid units), ``scale`` darknet's
    ``coord_scale (2 - w h)`` (w, h as fractions of the image) and ``label`` 0..K-1.
    """

    def __init__(self, shape: tuple[int, int, int], device: torch.device) -> None:
        b, a, s = shape
        self.responsible = torch.zeros(b, a, s, s, dtype=torch.bool, device=device)
        self.box = torch.zeros(b, a, s, s, 4, device=device)
        self.gt = torch.zeros(b, a, s, s, 4, device=device)
        self.scale = torch.zeros(b, a, s, s, device=device)
        self.label = torch.zeros(b, a, s, s, dtype=torch.long, device=device)


def gt_slots(boxes: torch.Tensor, anchors: torch.Tensor, grid: int) -> tuple[torch.Tensor, ...]:
    """``boxes [N, 4]`` xyxy and ``anchors [A, 2]`` in grid units -> ``(anchor [N], cell [N, 2] (col, row),
    centre [N, 2], wh [N, 2])``: the cell holding each centre and the anchor of best shape IoU."""
    wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-6)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    return best_anchor(wh, anchors), centre.floor().long().clamp(0, grid - 1), centre, wh


def slot_keepers(anchor: torch.Tensor, cell: torch.Tensor, grid: int) -> torch.Tensor:
    """``[N] bool``: which GTs keep their (anchor, cell) slot.  ``anchor [N]``, ``cell [N, 2]`` (col, row).
    Darknet handles GTs in order, a later one overwriting an earlier one's slot: each slot keeps its last GT."""
    slot = (anchor * grid + cell[:, 1]) * grid + cell[:, 0]
    later_same = slot[None, :] == slot[:, None]  # [N, N]: [i, k] = GTs i and k share a slot
    return ~torch.triu(later_same, diagonal=1).any(1)


def assign_targets(targets: Sequence[Target], anchors: torch.Tensor, grid: int, stride: float,
                   coord_scale: float = 1.0) -> Assignment:
    """Which cell and which anchor answer for each GT, and its box targets (darknet's region layer).

    ``targets[b]["boxes"] [N, 4]`` xyxy in input pixels, ``labels [N]`` 1..K; ``anchors [A, 2]`` grid units;
    ``grid`` S; ``stride`` input pixels per cell.  The GT's centre picks the cell ``(floor(c_x), floor(c_y))``;
    the anchor is the one of highest IoU with the GT when both are centred together.
    """
    device = anchors.device
    out = Assignment((len(targets), len(anchors), grid), device)
    for b, t in enumerate(targets):
        boxes = t["boxes"].to(device=device, dtype=torch.float32) / stride  # grid units
        if not len(boxes):
            continue
        n, cell, centre, wh = gt_slots(boxes, anchors, grid)
        last = slot_keepers(n, cell, grid).nonzero().squeeze(1)
        n, i, j = n[last], cell[last, 0], cell[last, 1]
        out.responsible[b, n, j, i] = True
        out.box[b, n, j, i] = torch.cat([centre[last] - cell[last].float(), torch.log(wh[last] / anchors[n])], 1)
        out.gt[b, n, j, i] = boxes[last]
        out.scale[b, n, j, i] = coord_scale * (2 - wh[last].prod(1) / grid**2)
        out.label[b, n, j, i] = t["labels"][last].to(device) - 1
    return out


class YoloV2(nn.Module):
    """YOLOv2: Darknet-19, the yolov2.cfg head with the passthrough layer, the region layer's loss and decoding.

    ``anchors [A, 2]``: (w, h) in input pixels at ``image_size``.  Train mode: ``model(images, targets)`` ->
    ``{loss_yolo2_coord, loss_yolo2_prior, loss_yolo2_obj, loss_yolo2_noobj, loss_yolo2_cls}``; eval mode:
    ``model(images)`` -> ``[{boxes [M, 4] xyxy image px, scores [M], labels [M] 1..K}]``.

    Multi-scale training (``multiscale = (lo, hi)``, pixels, multiples of 32): every ``multiscale_every``
    training steps a new input side is drawn uniformly from ``lo, lo + 32, ..., hi`` with torch's generator
    (the paper: every 10 batches, from 320 to 608).  Anchors are fractions of the image, so they scale with
    the input; darknet keeps them in grid-cell units instead (fixed pixels at every size), which makes the
    same object need a different ``t_w`` at each size.  A step counts when gradients are on: the trainer's
    precise-BN pass and the initial-loss check run train-mode forwards under ``no_grad``, and those use
    ``image_size`` (the size evaluation runs at) and count no images towards ``prior_images``.
    """

    def __init__(self, num_classes: int, image_size: int, anchors: Sequence[Sequence[float]], *, width: float = 1.0,
                 multiscale: tuple[int, int] | None = None, multiscale_every: int = 10, object_scale: float = 5.0,
                 noobject_scale: float = 1.0, coord_scale: float = 1.0, class_scale: float = 1.0,
                 ignore_thresh: float = 0.6, prior_images: int = 12800, class_loss: str = "ce",
                 score_thresh: float = 0.005, nms_iou: float = 0.45, detections_per_img: int = 100) -> None:
        super().__init__()
        check_size("image_size", image_size)
        if multiscale is not None:
            for side in multiscale:
                check_size("multiscale", side)
            if multiscale[0] > multiscale[1]:
                raise ValueError(f"yolo_v2: multiscale {multiscale} must be [min, max]")
        if class_loss not in ("ce", "sum_squared"):
            raise ValueError(f"yolo_v2: class_loss {class_loss!r}: choose ce (darknet's gradient) or sum_squared "
                             "(the cost darknet prints: squared error of the softmax outputs)")
        self.num_classes, self.image_size = num_classes, image_size
        self.multiscale, self.multiscale_every = multiscale, multiscale_every
        self.object_scale, self.noobject_scale = object_scale, noobject_scale
        self.coord_scale, self.class_scale = coord_scale, class_scale
        self.ignore_thresh, self.prior_images, self.class_loss = ignore_thresh, prior_images, class_loss
        self.score_thresh, self.nms_iou, self.detections_per_img = score_thresh, nms_iou, detections_per_img
        self.register_buffer("anchors", torch.tensor([[float(w), float(h)] for w, h in anchors]))
        # Training images seen (darknet's net.seen): the anchor-prior term stops after ``prior_images``; a buffer,
        # so a resumed checkpoint continues where it was.
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))
        self.backbone = Darknet19(width)
        self.head = YoloV2Head(self.backbone.c4_channels, self.backbone.c5_channels, len(anchors), num_classes, width)
        self._steps, self._train_size = 0, image_size

    @property
    def num_anchors(self) -> int:
        return int(self.anchors.shape[0])

    def assigned(self, targets: Sequence[Target]) -> list[torch.Tensor]:
        """Which ground truths training makes an anchor responsible for (``assign_targets`` at ``image_size``,
        after darknet's overwrites): ``[N_b] bool`` per image, ``targets`` in input px as the loss takes them."""
        s = self.image_size // STRIDE
        anchors = self.grid_anchors(self.image_size)
        found = []
        for t in targets:
            n, cell, _, _ = gt_slots(t["boxes"].to(anchors.device, torch.float32) / STRIDE, anchors, s)
            found.append(slot_keepers(n, cell, s))
        return found

    def grid_anchors(self, size: int) -> torch.Tensor:
        """Anchors ``[A, 2]`` in grid units at input side ``size`` (anchor pixels scale with the input)."""
        return self.anchors * (size / self.image_size) / STRIDE

    def input_size(self) -> int:
        """The side of this forward's input: ``image_size``, or in training steps the multi-scale draw."""
        if not (self.training and torch.is_grad_enabled()):
            return self.image_size
        if self.multiscale is not None and self._steps % self.multiscale_every == 0:
            lo, hi = (s // STRIDE for s in self.multiscale)
            self._train_size = int(torch.randint(lo, hi + 1, ()).item()) * STRIDE
        self._steps += 1
        return self._train_size if self.multiscale is not None else self.image_size

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, 3, H, W]`` (0..1, H and W multiples of 32) -> ``[B, A, S, S, 5 + K]`` float32 raw outputs."""
        out = self.head(*self.backbone(x)).float()  # float32 for the loss and decoding under autocast
        b, _, s, s2 = out.shape
        return out.view(b, self.num_anchors, 5 + self.num_classes, s, s2).permute(0, 1, 3, 4, 2)

    def decode_boxes(self, out: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """``out [B, A, S, S, 5 + K]`` -> boxes ``[B, A, S, S, 4]`` xyxy in grid units
        (``σ(t_x) + c_x``, ``σ(t_y) + c_y``, ``p_w e^{t_w}``, ``p_h e^{t_h}``)."""
        s = out.shape[2]
        ys, xs = torch.meshgrid(torch.arange(s, device=out.device), torch.arange(s, device=out.device), indexing="ij")
        centre = torch.sigmoid(out[..., :2]) + torch.stack([xs, ys], -1)
        wh = anchors[None, :, None, None] * torch.exp(out[..., 2:4].clamp(max=MAX_LOG_SCALE))
        return cxcywh_to_xyxy(torch.cat([centre, wh], -1))

    def forward(self, images: Sequence[torch.Tensor], targets: Sequence[Target] | None = None
                ) -> dict[str, torch.Tensor] | list[Target]:
        if self.training:
            if targets is None:
                raise ValueError("yolo_v2: training needs targets (boxes [N, 4] xyxy, labels [N] 1..K per image)")
            size = self.input_size()
            x, scaled_targets, _ = _yolo_common.square_batch(images, size, targets)
            if torch.is_grad_enabled():
                self.seen += len(images)
            return self.region_loss(self.raw(x), scaled_targets, size)
        x, _, scales = _yolo_common.square_batch(images, self.image_size)
        return self.detect(self.raw(x), scales)

    def detect(self, out: torch.Tensor, scales: torch.Tensor) -> list[Target]:
        """Raw outputs at ``image_size`` -> per-image detections (scores ``σ(t_o) softmax_k``, per-class NMS)."""
        b = out.shape[0]
        boxes = self.decode_boxes(out, self.grid_anchors(self.image_size)) * STRIDE
        scores = torch.sigmoid(out[..., 4:5]) * torch.softmax(out[..., 5:], -1)
        return _yolo_common.postprocess(boxes.reshape(b, -1, 4), scores.reshape(b, -1, self.num_classes), scales,
                                        self.score_thresh, self.nms_iou, self.detections_per_img, self.image_size)

    def region_loss(self, out: torch.Tensor, targets: Sequence[Target], size: int) -> dict[str, torch.Tensor]:
        """darknet's region-layer loss for ``out [B, A, S, S, 5 + K]`` and targets in input pixels at ``size``.

        darknet computes a delta ``s (t - p)`` per output and backpropagates it (``p`` = σ(t_x), σ(t_y), t_w,
        t_h, σ(t_o)): the gradient of ``½ s (t - p)²``, so each term here is that sum-squared error, summed
        over the image and averaged over the batch (darknet's update divides by the batch):

        * ``coord``: responsible slots, ``s = coord_scale (2 - w h)`` (small boxes weigh up to 2x);
        * ``prior``: every other slot pulled to its anchor at its cell's centre (``σ(t) = 0.5``, ``t_w = 0``)
          with ``s = 0.01`` while fewer than ``prior_images`` images have been seen (12800 in darknet);
        * ``obj``: responsible slots, ``s = object_scale`` (5), target the IoU of the predicted box with its GT
          (``rescore=1``);
        * ``noobj``: the other slots whose predicted box overlaps no GT by more than ``ignore_thresh`` (0.6),
          ``s = noobject_scale`` (1), target 0;
        * ``cls``: responsible slots.  darknet prints the squared error of the softmax outputs but passes the
          delta ``class_scale (onehot - softmax)`` straight to the logits -- the gradient of softmax
          cross-entropy.  ``class_loss: ce`` (default) trains with that gradient (``class_scale x CE``);
          ``sum_squared`` with ``½ class_scale Σ (softmax - onehot)²`` through the softmax.
        """
        b, _, s = out.shape[:3]
        anchors = self.grid_anchors(size)
        a = assign_targets(targets, anchors, s, size / s, self.coord_scale)
        with torch.no_grad():
            pred = self.decode_boxes(out.detach(), anchors)  # [B, A, S, S, 4] xyxy, grid units
            ignore = torch.zeros_like(a.responsible)
            for i, t in enumerate(targets):
                if len(t["boxes"]):
                    gt = t["boxes"].to(pred) / (size / s)
                    ignore[i] = box_iou(pred[i].reshape(-1, 4), gt).amax(1).view(ignore.shape[1:]) > self.ignore_thresh
            iou = paired_iou(pred[a.responsible], a.gt[a.responsible])
        resp, xy, twh = a.responsible, torch.sigmoid(out[..., :2]), out[..., 2:4]
        obj = torch.sigmoid(out[..., 4])
        box = torch.cat([xy, twh], -1)
        coord = sum_squared_loss(box[resp], a.box[resp], weight=0.5 * a.scale[resp, None])
        if int(self.seen) < self.prior_images:
            anchor_box = torch.tensor([0.5, 0.5, 0.0, 0.0], device=out.device)
            prior = sum_squared_loss(box[~resp], anchor_box.expand_as(box[~resp]), weight=0.5 * 0.01)
        else:
            prior = out.sum() * 0  # keeps the key (and the graph) once the term is off
        objectness = sum_squared_loss(obj[resp], iou, weight=0.5 * self.object_scale)
        noobj = sum_squared_loss(obj[~resp & ~ignore], torch.zeros(()).to(obj), weight=0.5 * self.noobject_scale)
        logits, labels = out[..., 5:][resp], a.label[resp]
        if self.class_loss == "ce":
            cls = self.class_scale * ce_loss(logits, labels)
        else:
            onehot = F.one_hot(labels, self.num_classes).to(logits)
            cls = sum_squared_loss(torch.softmax(logits, -1), onehot, weight=0.5 * self.class_scale)
        return {"loss_yolo2_coord": coord / b, "loss_yolo2_prior": prior / b, "loss_yolo2_obj": objectness / b,
                "loss_yolo2_noobj": noobj / b, "loss_yolo2_cls": cls / b}


def check_size(what: str, side: int) -> None:
    """Darknet-19 downsamples 32x and the passthrough reorganises a stride-16 map by 2: sides are multiples
    of 32."""
    if side <= 0 or side % STRIDE:
        raise ValueError(f"yolo_v2: {what} {side} px is not a positive multiple of {STRIDE} (Darknet-19's "
                         "stride): choose e.g. 128, 160 or 416")


def published_anchors(image_size: int) -> list[tuple[float, float]]:
    """``YOLOV2_COCO_ANCHORS`` in input pixels at ``image_size`` (grid units x 32 at 416, scaled by
    ``image_size / 416``)."""
    return [(w * STRIDE * image_size / 416, h * STRIDE * image_size / 416) for w, h in YOLOV2_COCO_ANCHORS]
