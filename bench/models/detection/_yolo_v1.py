"""YOLO v1 (Redmon et al., CVPR 2016): the network of Figure 3, its grid targets, its sum-squared loss, decoding.

The image is resized to a square ``image_size`` input.  24 convolutional layers (leaky ReLU 0.1, 1x1 reduction
layers before 3x3 ones, total stride 64) and two fully connected layers map it to one flat vector, read as an
``S x S x (B * 5 + C)`` tensor: the grid is the *output's* layout, not the last conv map's (the paper's 448 px
input gives a 7x7 map as well, but a smaller input gives a smaller map and the same 7x7 grid).

Output layout (``YoloV1.raw``): ``[N, S, S, B * 5 + C]``; per cell, ``B`` boxes of ``(x, y, sqrt_w, sqrt_h,
conf)`` then ``C`` class probabilities.  ``x, y`` are the box centre's offset inside its cell (0..1, in cell
units), ``sqrt_w, sqrt_h`` the square roots of the width and height as fractions of the image (the paper
regresses square roots so that an error on a small box costs more than the same error on a large one); all
outputs are linear (the paper's last layer has no activation).

Loss (Sec. 2.2), a sum over cells i and predictors j, per image (the paper sums over the batch; we divide by
the batch size so that the loss does not scale with it):

    λ_coord Σ 1obj_ij [(x - x̂)² + (y - ŷ)² + (√w - √ŵ)² + (√h - √ĥ)²]      -> loss_yolo1_coord
    Σ 1obj_ij (C_ij - IoU_ij)²                                                -> loss_yolo1_obj
    λ_noobj Σ 1noobj_ij C_ij²                                                 -> loss_yolo1_noobj
    Σ 1obj_i Σ_c (p_i(c) - 1[c = class_i])²                                    -> loss_yolo1_cls

with 1obj_ij = "cell i holds an object's centre and predictor j is *responsible* for it" (of the B, the one
whose box has the highest IoU with that object), 1noobj_ij every other predictor (those of empty cells and the
non-responsible ones of object cells), 1obj_i = "cell i holds an object's centre".  The confidence target of
the responsible predictor is its IoU with the object (no gradient flows through it).  A cell predicts one
class, so it can hold one object: when several centres fall in one cell, the largest object is kept and the
others are not trained on (the paper's known weakness on small, crowded objects).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bench.models.detection import _losses as losses
from bench.models.detection._yolo_common import Target, postprocess, square_batch

LEAKY = 0.1
INIT_CONF = 0.5  # every predictor's confidence before training (YoloV1._init_weights)

# Figure 3, after the 7x7/2 conv and its max pool: ("c", out, kernel, stride) convs, "m" = 2x2/2 max pool.
# Repeated blocks are written out: 4 x (1x1 256, 3x3 512) and 2 x (1x1 512, 3x3 1024).
FIGURE3: tuple[tuple[str, int, int, int] | str, ...] = (
    ("c", 64, 7, 2), "m",
    ("c", 192, 3, 1), "m",
    ("c", 128, 1, 1), ("c", 256, 3, 1), ("c", 256, 1, 1), ("c", 512, 3, 1), "m",
    *[("c", 256, 1, 1), ("c", 512, 3, 1)] * 4, ("c", 512, 1, 1), ("c", 1024, 3, 1), "m",
    *[("c", 512, 1, 1), ("c", 1024, 3, 1)] * 2, ("c", 1024, 3, 1), ("c", 1024, 3, 2),
    ("c", 1024, 3, 1), ("c", 1024, 3, 1),
)


def scaled(channels: int, width: float) -> int:
    """``channels x width``, at least 8 (the width multiplier of the small profiles)."""
    return max(8, round(channels * width))


def feature_side(image_size: int) -> int:
    """Side of the last conv map for a square ``image_size`` input (448 -> 7): the convs pad to keep sizes
    (a stride-2 conv gives ceil(n / 2)), each 2x2/2 max pool floors."""
    n = image_size
    for layer in FIGURE3:
        n = n // 2 if layer == "m" else -(-n // layer[3])
    return n


def darknet_v1(width: float = 1.0, norm: str = "none") -> tuple[nn.Sequential, int]:
    """The 24 conv layers of Figure 3 (channels x ``width``), leaky ReLU 0.1 after each.

    ``norm``: ``none`` (the paper: conv biases, no normalisation) or ``bn`` (BatchNorm after each conv, as
    YOLO v2 added; an option for training from scratch at small scale).  Returns ``(features, out_channels)``:
    ``features(x [N, 3, H, W]) -> [N, out_channels, H/64, W/64]``.
    """
    if norm not in ("none", "bn"):
        raise ValueError(f"yolo_v1 norm {norm!r}: choose none (the paper) or bn")
    layers: list[nn.Module] = []
    cin = 3
    for layer in FIGURE3:
        if layer == "m":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        _, cout, k, s = layer
        cout = scaled(cout, width)
        layers.append(nn.Conv2d(cin, cout, k, s, k // 2, bias=norm == "none"))
        if norm == "bn":
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.LeakyReLU(LEAKY, inplace=True))
        cin = cout
    return nn.Sequential(*layers), cin


def box_iou_cxcywh(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of paired boxes ``a, b [..., 4]`` given as (cx, cy, w, h) -> ``[...]`` (0 where either is empty)."""
    half_a, half_b = a[..., 2:] / 2, b[..., 2:] / 2
    lt = torch.maximum(a[..., :2] - half_a, b[..., :2] - half_b)
    rb = torch.minimum(a[..., :2] + half_a, b[..., :2] + half_b)
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = a[..., 2:].prod(-1) + b[..., 2:].prod(-1) - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def cell_owners(centre: torch.Tensor, size: torch.Tensor, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each object's cell and whether it owns it: v1 trains one object per cell.

    ``centre, size [N, 2]`` as fractions of the input (x, y).  Returns ``(cells [N, 2] long (col, row),
    owner [N] bool)``: where centres collide the largest box owns the cell (ties: the later one), as the
    targets are written in ascending area and the last write stays.
    """
    cells = (centre.clamp(0, 1 - 1e-6) * grid).floor().long()
    flat = cells[:, 1] * grid + cells[:, 0]
    order = size.prod(1).argsort(stable=True)  # ascending area: the largest is written last and kept
    owner_of = torch.full((grid * grid,), -1, dtype=torch.long, device=centre.device)
    # An indexed write with repeated cells has no defined winner; the rank in ``order`` decides instead.
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=order.device)
    owner_of.scatter_reduce_(0, flat, rank, reduce="amax")
    return cells, owner_of[flat] == rank


def build_targets(targets: Sequence[Target], grid: int, input_size: int, device: torch.device) -> dict[
        str, torch.Tensor]:
    """Rasterise ``targets`` (boxes [N, 4] xyxy in input px, labels [N] 1..K) onto the ``grid x grid`` cells.

    Returns ``{"mask": [B, S, S] bool (a centre falls in the cell), "xy": [B, S, S, 2] the centre's offset in
    its cell (0..1), "sqrt_wh": [B, S, S, 2] sqrt of width/height as fractions of the input, "wh": [B, S, S, 2]
    (fractions), "label": [B, S, S] long (0..K-1)}``.  One object per cell: where centres collide, the
    largest box wins (``cell_owners``).
    """
    n = len(targets)
    mask = torch.zeros(n, grid, grid, dtype=torch.bool, device=device)
    xy = torch.zeros(n, grid, grid, 2, device=device)
    wh = torch.zeros(n, grid, grid, 2, device=device)
    label = torch.zeros(n, grid, grid, dtype=torch.long, device=device)
    for b, t in enumerate(targets):
        boxes = t["boxes"].to(device=device, dtype=torch.float32) / input_size
        if boxes.numel() == 0:
            continue
        centre = ((boxes[:, :2] + boxes[:, 2:]) / 2).clamp(0, 1 - 1e-6)
        size = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0)
        cells, owner = cell_owners(centre, size, grid)
        col, row = cells[owner, 0], cells[owner, 1]
        mask[b, row, col] = True
        xy[b, row, col] = centre[owner] * grid - cells[owner]
        wh[b, row, col] = size[owner]
        label[b, row, col] = t["labels"].to(device).long()[owner] - 1
    return {"mask": mask, "xy": xy, "wh": wh, "sqrt_wh": wh.sqrt(), "label": label}


class YoloV1(nn.Module):
    """YOLO v1: ``features`` (Figure 3's convs), fc ``fc_dim`` (leaky, dropout), fc to ``S * S * (B * 5 + C)``.

    Train mode: ``model(images, targets) -> {loss_yolo1_coord, loss_yolo1_obj, loss_yolo1_noobj,
    loss_yolo1_cls}``; eval mode: ``model(images) -> [{boxes [M, 4] xyxy image px, scores [M], labels [M]}]``.
    """

    def __init__(self, num_classes: int, image_size: int, *, grid_size: int = 7, boxes_per_cell: int = 2,
                 width: float = 1.0, fc_dim: int = 4096, norm: str = "none", dropout: float = 0.5,
                 lambda_coord: float = 5.0, lambda_noobj: float = 0.5, score_thresh: float = 0.005,
                 nms_iou: float = 0.5, detections_per_img: int = 100) -> None:
        super().__init__()
        if grid_size < 1 or boxes_per_cell < 1 or num_classes < 1:
            raise ValueError(f"yolo_v1 needs grid_size, boxes_per_cell and num_classes >= 1; got {grid_size}, "
                             f"{boxes_per_cell}, {num_classes}")
        side = feature_side(image_size)
        if side < 1:
            raise ValueError(f"yolo_v1: image_size {image_size} px is below the network's stride of 64")
        self.num_classes, self.image_size = num_classes, image_size
        self.grid, self.boxes = grid_size, boxes_per_cell
        self.lambda_coord, self.lambda_noobj = lambda_coord, lambda_noobj
        self.score_thresh, self.nms_iou, self.detections_per_img = score_thresh, nms_iou, detections_per_img
        self.features, channels = darknet_v1(width, norm)
        self.per_cell = boxes_per_cell * 5 + num_classes
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * side * side, fc_dim),
            nn.LeakyReLU(LEAKY, inplace=True),
            nn.Dropout(dropout),  # the paper: "A dropout layer with rate = .5 after the first connected layer"
            nn.Linear(fc_dim, grid_size * grid_size * self.per_cell),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        """He init for the leaky layers; the last layer starts at its bias (zero weights), so every untrained
        prediction is the same uninformed prior: a centred, empty box (x = y = 0.5, sqrt_w = sqrt_h = 0),
        confidence ``INIT_CONF`` = 0.5 (undecided, as a logit of 0 is for the detectors with a sigmoid) and
        class probabilities 1/C.  That makes the loss at initialisation derivable (test_contract's
        DETECTION_INIT_LOSS): an empty box has IoU 0 with every object, so every confidence target is 0 and
        each predictor costs 0.5² (x λ_noobj unless responsible); cls is (C - 1) / C per object cell.  The
        untrained model still emits (empty, low-scoring) detections: 0.5 x 1/C per class.  Gradients reach
        the hidden layers from the second step on (the first one moves the last layer's weights off zero)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight, a=LEAKY, nonlinearity="leaky_relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        last = self.head[-1]
        nn.init.zeros_(last.weight)
        bias = torch.zeros(self.grid, self.grid, self.per_cell)
        boxes = bias[..., : self.boxes * 5].view(self.grid, self.grid, self.boxes, 5)
        boxes[..., :2] = 0.5
        boxes[..., 4] = INIT_CONF
        bias[..., self.boxes * 5:] = 1.0 / self.num_classes
        with torch.no_grad():
            last.bias.copy_(bias.flatten().to(last.bias.device))

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """``x [N, 3, image_size, image_size]`` -> ``[N, S, S, B * 5 + C]`` (layout in the module docstring)."""
        return self.head(self.features(x)).view(x.shape[0], self.grid, self.grid, self.per_cell)

    def split(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``out [N, S, S, B * 5 + C]`` -> ``(boxes [N, S, S, B, 5], class probs [N, S, S, C])``."""
        n = out.shape[0]
        return out[..., : self.boxes * 5].reshape(n, self.grid, self.grid, self.boxes, 5), out[..., self.boxes * 5:]

    def decode_cxcywh(self, boxes: torch.Tensor) -> torch.Tensor:
        """``boxes [N, S, S, B, >=4]`` (x, y, sqrt_w, sqrt_h, ...) -> ``[N, S, S, B, 4]`` (cx, cy, w, h) as
        fractions of the input.  The width is the predicted square root squared (a negative output is a
        box of the same size: the loss pulls it towards the positive root)."""
        s = self.grid
        idx = torch.arange(s, device=boxes.device, dtype=boxes.dtype)
        col = idx.view(1, 1, s, 1)
        row = idx.view(1, s, 1, 1)
        cx = (boxes[..., 0] + col) / s
        cy = (boxes[..., 1] + row) / s
        return torch.stack([cx, cy, boxes[..., 2] ** 2, boxes[..., 3] ** 2], -1)

    def forward(self, images: Sequence[torch.Tensor], targets: Sequence[Target] | None = None) -> (
            dict[str, torch.Tensor] | list[Target]):
        x, scaled_targets, scales = square_batch(images, self.image_size, targets)
        out = self.raw(x)
        if self.training:
            if scaled_targets is None:
                raise ValueError("yolo_v1 in train mode needs targets")
            return self.loss(out, scaled_targets)
        return self.detect(out, scales)

    def loss(self, out: torch.Tensor, targets: Sequence[Target]) -> dict[str, torch.Tensor]:
        """The four sum-squared terms of Sec. 2.2 (module docstring), each summed over the batch and divided
        by its size.  ``out [N, S, S, B * 5 + C]``; ``targets`` boxes in input px."""
        out = out.float()  # the squared errors and the IoU in float32 under autocast
        n = out.shape[0]
        t = build_targets(targets, self.grid, self.image_size, out.device)
        pred, cls = self.split(out)
        obj_cell = t["mask"]  # [N, S, S]
        with torch.no_grad():
            gt = torch.cat([(t["xy"] + self._cell_offsets(out)) / self.grid, t["wh"]], -1)  # [N, S, S, 4]
            iou = box_iou_cxcywh(self.decode_cxcywh(pred), gt[..., None, :])  # [N, S, S, B]
            # The responsible predictor of each cell: the highest IoU.  Exact ties (at initialisation every
            # predictor is the same empty box, IoU 0) go to a random one: always taking the first would leave the
            # other B - 1 predictors without a coordinate gradient for good (they would stay empty boxes).
            best = (iou + 1e-6 * torch.rand_like(iou)).argmax(-1)
            responsible = nn.functional.one_hot(best, self.boxes).bool() & obj_cell[..., None]  # [N, S, S, B]
        conf = pred[..., 4]
        resp_box = pred[responsible]  # [P, 5]: the responsible predictors, in (image, row, col) order
        cell_t = {k: v[obj_cell] for k, v in t.items() if k != "mask"}  # [P, ...]: same order (one per cell)
        coord = (losses.sum_squared_loss(resp_box[:, :2], cell_t["xy"])
                 + losses.sum_squared_loss(resp_box[:, 2:4], cell_t["sqrt_wh"]))
        obj = losses.sum_squared_loss(conf[responsible], iou[responsible])
        noobj = losses.sum_squared_loss(conf, torch.zeros_like(conf), weight=(~responsible).float())
        onehot = nn.functional.one_hot(cell_t["label"], self.num_classes).float()
        cls_loss = losses.sum_squared_loss(cls[obj_cell], onehot)
        return {"loss_yolo1_coord": self.lambda_coord * coord / n, "loss_yolo1_obj": obj / n,
                "loss_yolo1_noobj": self.lambda_noobj * noobj / n, "loss_yolo1_cls": cls_loss / n}

    def assigned(self, targets: Sequence[Target]) -> list[torch.Tensor]:
        """Which ground truths training gives a responsible predictor: ``[N_b] bool`` per image (``targets``
        as ``loss`` takes them, boxes in input px).  One per cell (``cell_owners``): the rest are never
        learnt, whatever the training, which is v1's weakness on crowded scenes."""
        found = []
        for t in targets:
            boxes = t["boxes"].float() / self.image_size
            centre, size = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]).clamp(min=0)
            found.append(cell_owners(centre, size, self.grid)[1])
        return found

    def _cell_offsets(self, out: torch.Tensor) -> torch.Tensor:
        """``[1, S, S, 2]`` (col, row) of each cell, to turn cell-relative centres into grid units."""
        idx = torch.arange(self.grid, device=out.device, dtype=torch.float32)
        row, col = torch.meshgrid(idx, idx, indexing="ij")
        return torch.stack([col, row], -1)[None]

    @torch.no_grad()
    def detect(self, out: torch.Tensor, scales: torch.Tensor) -> list[Target]:
        """Class-specific confidence = confidence x class probability per (box, class), per-class NMS.

        ``out [N, S, S, B * 5 + C]``.  The linear outputs are clamped to [0, 1] first: they are probabilities,
        and without the clamp two negative outputs would multiply into a positive score.
        """
        out = out.float()
        n = out.shape[0]
        pred, cls = self.split(out)
        cxcywh = self.decode_cxcywh(pred) * self.image_size
        xyxy = torch.cat([cxcywh[..., :2] - cxcywh[..., 2:] / 2, cxcywh[..., :2] + cxcywh[..., 2:] / 2], -1)
        scores = pred[..., 4:5].clamp(0, 1) * cls.clamp(0, 1)[..., None, :]  # [N, S, S, B, C]
        return postprocess(xyxy.reshape(n, -1, 4), scores.reshape(n, -1, self.num_classes), scales,
                           self.score_thresh, self.nms_iou, self.detections_per_img, self.image_size)
