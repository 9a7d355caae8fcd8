"""HOG sliding-window detector (Dalal & Triggs, CVPR 2005): image pyramid, dense windows, linear SVMs, NMS.

The descriptor is ``hog_svm``'s (``bench.models.classification._hog``, every convention there);
only the detector is here.

* **Window** ``window = (rows, cols)`` cells of ``cell_size`` px, with ``margin`` cells of context
  around the object on every side: an object box maps onto the window's interior
  ``(rows - 2 margin) x (cols - 2 margin)`` cells.  The paper's person window is 64x128 px (8x16
  cells of 8 px, 15x7 blocks: a 3780-d descriptor) with about 16 px (2 cells) of margin around a
  96 px tall person (Sec. 6.6, where shrinking the margin to 8 px cost 4% at 1e-4 FPPW).
* **Pyramid**: the image is resized (bilinear, antialiased) by ``max_upscale``, then divided by
  ``scale_step`` level after level while the level still holds one window interior; each level's
  side is rounded to whole cells, so its exact scale per axis is ``level side / image side``.  Each
  level is replicate-padded by the margin (``margin * cell_size`` px, flat, so no gradients there),
  so a window may overhang the image by its context and objects touching the border are found
  (OpenCV's ``detectMultiScale`` pads for the same reason); the interior, the detected box, always
  lies inside the image.
* **Dense scan**: the HOG block grid is computed once per level, and all windows (stride one cell,
  a window = ``(rows - block + 1) x (cols - block + 1)`` consecutive blocks) are scored at once by a
  convolution of the block grid with the SVM weights laid out as that block window: the score of
  window ``(r, c)`` is exactly ``svm(descriptor)`` of its blocks, in ``HOG``'s layout.
* **Boxes**: window ``(r, c)`` of a level with scales ``(s_y, s_x)`` (level px per image px) has the
  interior ``[c, r, c + cols - 2 margin, r + rows - 2 margin] * cell_size`` in level px (the padding
  is exactly the margin), i.e. that divided by ``(s_x, s_y, s_x, s_y)`` in image px.
* **SVM**: one linear SVM per class, one-vs-rest (the paper's detector is a single class; with K
  classes each class's SVM keeps the paper's binary problem, window vs. rest; a multiclass
  Crammer-Singer SVM would couple the classes' margins, which the paper never does, and a window
  may hold no object).  Scores are raw margins.
* **Training samples** (train mode, one batch): positives are the ground-truth boxes warped onto the
  window interior (``roi_align`` with adaptive sampling, which averages when shrinking; crops carry
  one pixel of context so their border derivatives are real, as in the scan), plus their
  left-right reflections (the paper's 1208 positives + reflections); each is positive for its class
  and negative for the others.  Negatives are scanned windows whose interior has IoU < ``neg_iou``
  (0.3) with every ground-truth box: per image, the ``hard_negatives`` highest-scoring ones of each
  class under the current SVM (hard negative mining) and ``random_negatives`` uniformly drawn ones
  (the paper's initial random negative set).  The paper mines in one batch pass (train on random
  negatives, scan all negative images, retrain with the false positives); here the current SVM mines
  every step, the online form of the same data-mining procedure (Felzenszwalb et al. 2010, Sec. 4.5),
  since the trainer runs gradient steps on a convex objective.
* **Loss**: L2-regularised squared hinge (liblinear / LinearSVC's primal, as ``hog_svm``) or hinge
  (SVMLight's, the paper's), mean over samples of the sum over classes, plus ``(|W|^2 + |b|^2) /
  (2 C)``: ``C * loss = 0.5 |w|^2 + (C / N) sum_i xi_i``, SVMLight's objective with its C equal to
  ours / N.  A zero-initialised SVM's loss is exactly K (every term is max(0, 1 - 0)^p = 1).
* **Inference**: every window and class with a score above ``score_thresh``, greedy per-class NMS
  at ``nms_iou`` (the paper fuses detections by mean-shift mode seeking; greedy NMS is the
  catalog's and every later detector's), the best ``detections_per_img``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms, box_iou, roi_align

from bench.models.classification._hog import HOG


@dataclass
class Level:
    """One pyramid level of a batch of same-sized images: its scale and HOG block grid."""

    scale_y: float  # level px per image px, rows
    scale_x: float  # level px per image px, columns
    blocks: torch.Tensor  # [B, nbr, nbc, block^2 * bins] of the margin-padded level


def window_descriptor_length(window: tuple[int, int], bins: int, block_size: int) -> int:
    """Length of a ``window = (rows, cols)``-cell window's descriptor: blocks x ``block^2 * bins``."""
    return (window[0] - block_size + 1) * (window[1] - block_size + 1) * block_size**2 * bins


class HOGDetector(nn.Module):
    """Sliding-window HOG + one-vs-rest linear SVM detector (see the module docstring).

    Train mode: ``forward(images: list[[3, H, W] in 0..1], targets: list[{"boxes": [N, 4] xyxy,
    "labels": [N] in 1..K}]) -> {"loss_svm": scalar}``.  Eval mode: ``forward(images) ->
    list[{"boxes": [N, 4] xyxy image px, "scores": [N], "labels": [N] int64 in 1..K}]``.
    """

    def __init__(self, hog: HOG, num_classes: int, window: tuple[int, int], margin: int, scale_step: float,
                 max_upscale: float, C: float, loss: str, flip_positives: bool, hard_negatives: int,
                 random_negatives: int, neg_iou: float, score_thresh: float, nms_iou: float,
                 detections_per_img: int) -> None:
        super().__init__()
        self.hog, self.num_classes = hog, num_classes
        self.window, self.margin = (int(window[0]), int(window[1])), margin
        self.scale_step, self.max_upscale, self.C, self.loss_kind = scale_step, max_upscale, C, loss
        self.flip_positives = flip_positives
        self.hard_negatives, self.random_negatives = hard_negatives, random_negatives
        self.neg_iou, self.score_thresh, self.nms_iou = neg_iou, score_thresh, nms_iou
        self.detections_per_img = detections_per_img
        bs = hog.block_size
        self.window_blocks = (self.window[0] - bs + 1, self.window[1] - bs + 1)
        self.block_dim = bs * bs * hog.bins
        # liblinear's starting point: the problem is convex with one minimum, and zero scores make
        # the initial loss exactly K.
        self.svm = nn.Linear(window_descriptor_length(self.window, hog.bins, bs), num_classes)
        nn.init.zeros_(self.svm.weight)
        nn.init.zeros_(self.svm.bias)

    def extra_repr(self) -> str:
        return (f"window={self.window} cells, margin={self.margin}, scale_step={self.scale_step}, "
                f"max_upscale={self.max_upscale}, C={self.C}, loss={self.loss_kind!r}")

    # --- geometry --------------------------------------------------------------------------------

    @property
    def interior_px(self) -> tuple[int, int]:
        """``(rows, cols)`` px of the window interior (the object) at a level."""
        cs = self.hog.cell_size
        return (self.window[0] - 2 * self.margin) * cs, (self.window[1] - 2 * self.margin) * cs

    def level_sizes(self, h: int, w: int) -> list[tuple[int, int]]:
        """Sizes ``(rows, cols)`` of the pyramid levels of an ``h x w`` image, largest first, distinct.

        Scales ``max_upscale / scale_step^i``, each side rounded to whole cells, while the level
        holds one window interior (objects up to the whole image).
        """
        cs, (ih, iw) = self.hog.cell_size, self.interior_px
        sizes: list[tuple[int, int]] = []
        s = self.max_upscale
        while True:
            size = (max(cs, round(h * s / cs) * cs), max(cs, round(w * s / cs) * cs))
            if size[0] < ih or size[1] < iw:
                break
            if not sizes or size != sizes[-1]:
                sizes.append(size)
            s /= self.scale_step
        if not sizes:
            raise ValueError(f"hog_detector: a {h}x{w} image at max_upscale {self.max_upscale} cannot hold one "
                             f"{ih}x{iw}-px window interior; raise max_upscale or use a smaller window")
        return sizes

    def level_image(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``x [B, 3, H, W]`` resized to ``size`` (bilinear, antialiased) and replicate-padded by the margin."""
        lv = x if tuple(x.shape[-2:]) == size else F.interpolate(x, size=size, mode="bilinear", align_corners=False,
                                                                 antialias=True)
        pad = self.margin * self.hog.cell_size
        return F.pad(lv, (pad, pad, pad, pad), mode="replicate") if pad else lv

    def pyramid(self, x: torch.Tensor) -> list[Level]:
        """HOG block grids of the margin-padded levels of same-sized images ``x [B, 3, H, W]``."""
        h, w = x.shape[-2:]
        return [Level(hs / h, ws / w, self.hog.block_grid(self.level_image(x, (hs, ws))))
                for hs, ws in self.level_sizes(h, w)]

    def window_boxes(self, level: Level) -> torch.Tensor:
        """Image-px interior boxes ``[nr * nc, 4]`` xyxy of a level's windows, row-major over ``(r, c)``."""
        nr, nc = self.grid_shape(level)
        cs, (ih, iw) = self.hog.cell_size, self.interior_px
        dev = level.blocks.device
        r = torch.arange(nr, device=dev, dtype=torch.float32).repeat_interleave(nc) * cs
        c = torch.arange(nc, device=dev, dtype=torch.float32).repeat(nr) * cs
        sx, sy = level.scale_x, level.scale_y
        return torch.stack([c / sx, r / sy, (c + iw) / sx, (r + ih) / sy], dim=1)

    def grid_shape(self, level: Level) -> tuple[int, int]:
        """``(nr, nc)``: window positions (one-cell stride) on a level."""
        return level.blocks.shape[1] - self.window_blocks[0] + 1, level.blocks.shape[2] - self.window_blocks[1] + 1

    # --- scoring ---------------------------------------------------------------------------------

    def score_maps(self, blocks: torch.Tensor) -> torch.Tensor:
        """SVM scores of every window: ``blocks [B, nbr, nbc, Db]`` -> ``[B, K, nr, nc]``.

        The weight row of class k, read in the descriptor's order ``[block_row, block_col, Db]``, is a
        ``[Db, wbr, wbc]`` kernel; correlating it with the block grid gives each window's dot product.
        """
        wbr, wbc = self.window_blocks
        kernel = self.svm.weight.view(self.num_classes, wbr, wbc, self.block_dim).permute(0, 3, 1, 2)
        return F.conv2d(blocks.permute(0, 3, 1, 2), kernel.to(blocks.dtype), self.svm.bias.to(blocks.dtype))

    def window_descriptors(self, blocks: torch.Tensor, b: torch.Tensor, r: torch.Tensor,
                           c: torch.Tensor) -> torch.Tensor:
        """Descriptors ``[N, D]`` of windows ``(b, r, c)`` (each ``[N]`` int64) of blocks ``[B, nbr, nbc, Db]``."""
        wbr, wbc = self.window_blocks
        wins = blocks.unfold(1, wbr, 1).unfold(2, wbc, 1)  # [B, nr, nc, Db, wbr, wbc] (a view)
        return wins[b, r, c].permute(0, 2, 3, 1).reshape(len(b), -1)

    def positive_descriptors(self, image: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Descriptors of ``boxes [N, 4]`` (image px) warped onto the window interior: ``[N or 2N, D]``.

        Each crop is the box's window (box + margin, scaled per axis so the box fills the interior)
        plus one level pixel of context per side, sampled from the replicate-padded image (the scan's
        padding); with ``flip_positives`` the left-right reflections follow the N crops.
        """
        cs, (ih, iw) = self.hog.cell_size, self.interior_px
        rows, cols = self.window[0] * cs, self.window[1] * cs
        fx = iw / (boxes[:, 2] - boxes[:, 0]).clamp(min=1e-2)  # level px per image px
        fy = ih / (boxes[:, 3] - boxes[:, 1]).clamp(min=1e-2)
        ctx = self.margin * cs + 1
        region = torch.stack([boxes[:, 0] - ctx / fx, boxes[:, 1] - ctx / fy,
                              boxes[:, 2] + ctx / fx, boxes[:, 3] + ctx / fy], dim=1)
        h, w = image.shape[-2:]
        over = torch.cat([-region[:, :2], region[:, 2:] - region.new_tensor([w, h])], dim=1)
        pad = math.ceil(max(0.0, float(over.max()))) + 1 if len(boxes) else 0
        padded = F.pad(image[None].float(), (pad,) * 4, mode="replicate")
        rois = torch.cat([region.new_zeros(len(boxes), 1), region + pad], dim=1)
        crops = roi_align(padded, rois, output_size=(rows + 2, cols + 2), spatial_scale=1.0,
                          sampling_ratio=-1, aligned=True)
        if self.flip_positives:
            crops = torch.cat([crops, crops.flip(-1)])
        return self.hog.block_grid(crops, context=True).flatten(1)

    # --- forward ---------------------------------------------------------------------------------

    def forward(self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]] | None = None,
                ) -> dict[str, torch.Tensor] | list[dict[str, torch.Tensor]]:
        if self.training:
            if targets is None:
                raise ValueError("hog_detector: train mode needs targets (boxes, labels) for every image")
            return {"loss_svm": self.training_loss(images, targets)}
        return self.detect(images)

    def scan(self, images: list[torch.Tensor]) -> list[tuple[list[Level], list[int]]]:
        """Pyramids of ``images`` grouped by size: ``[(levels of the stacked group, image indices)]``."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, im in enumerate(images):
            groups.setdefault(tuple(im.shape), []).append(i)
        return [(self.pyramid(torch.stack([images[i] for i in idx]).float()), idx) for idx in groups.values()]

    @staticmethod
    def level_of(index: torch.Tensor, sizes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per window index into the concatenation of levels of ``sizes``: ``(level, index in level)``."""
        n = torch.tensor(sizes, device=index.device)
        ends = n.cumsum(0)
        lv = torch.searchsorted(ends, index, right=True)
        return lv, index - (ends - n)[lv]

    @torch.no_grad()
    def negative_indices(self, levels: list[Level], j: int, gt: torch.Tensor) -> torch.Tensor:
        """Image ``j``'s negatives as indices into its windows (levels concatenated, each row-major):
        the ``hard_negatives`` top-scoring background windows of each class under the current SVM and
        ``random_negatives`` random background windows, without repeats.  ``gt [G, 4]`` image px."""
        scores = torch.cat([self.score_maps(lv.blocks[j:j + 1])[0].flatten(1) for lv in levels], 1).T  # [Nw, K]
        if len(gt):
            boxes = torch.cat([self.window_boxes(lv) for lv in levels])
            idx = (box_iou(boxes, gt).amax(1) < self.neg_iou).nonzero()[:, 0]
        else:
            idx = torch.arange(len(scores), device=scores.device)
        chosen = [idx[torch.randperm(len(idx), device=idx.device)[:self.random_negatives]]]
        if self.hard_negatives and len(idx):
            top = scores[idx].float().topk(min(self.hard_negatives, len(idx)), dim=0).indices  # [n, K]
            chosen.append(idx[top.flatten()])
        return torch.unique(torch.cat(chosen))

    def mine_negatives(self, levels: list[Level], j: int, gt: torch.Tensor) -> torch.Tensor:
        """Descriptors ``[M, D]`` of image ``j``'s negatives (``negative_indices``)."""
        sel = self.negative_indices(levels, j, gt)
        sizes = [math.prod(self.grid_shape(lv)) for lv in levels]
        lv_of, local = self.level_of(sel, sizes)
        out = []
        for k, lv in enumerate(levels):
            m = lv_of == k
            if m.any():
                nc = self.grid_shape(lv)[1]
                pos = local[m]
                out.append(self.window_descriptors(lv.blocks, torch.full_like(pos, j), pos // nc, pos % nc))
        return torch.cat(out) if out else levels[0].blocks.new_zeros(0, self.svm.in_features)

    def training_loss(self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        """The SVM objective on this batch's positives and mined negatives (see the module docstring)."""
        feats, labels = [], []
        for levels, idx in self.scan(images):
            for j, i in enumerate(idx):
                gt, lab = targets[i]["boxes"].float(), targets[i]["labels"]
                if len(gt):
                    feats.append(self.positive_descriptors(images[i], gt))
                    labels.append(lab.repeat(2) if self.flip_positives else lab)
                neg = self.mine_negatives(levels, j, gt)
                feats.append(neg)
                labels.append(torch.zeros(len(neg), dtype=torch.int64, device=neg.device))
        x, y = torch.cat(feats), torch.cat(labels)
        t = -torch.ones(len(y), self.num_classes + 1, device=x.device)  # column 0: background
        t[torch.arange(len(y), device=x.device), y] = 1.0
        scores = self.svm(x).float()
        margin = F.relu(1 - t[:, 1:] * scores)
        if self.loss_kind == "squared_hinge":
            margin = margin.pow(2)
        w, b = self.svm.weight.float(), self.svm.bias.float()
        return margin.sum(1).mean() + (w.pow(2).sum() + b.pow(2).sum()) / (2 * self.C)

    @torch.no_grad()
    def detect(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Per image: windows scored on every level, thresholded, per-class NMS, best first."""
        out: list[dict[str, torch.Tensor]] = [{}] * len(images)
        for levels, idx in self.scan(images):
            maps = [self.score_maps(lv.blocks).float().flatten(2) for lv in levels]  # [B, K, n_l]
            boxes = torch.cat([self.window_boxes(lv) for lv in levels])  # [Nw, 4]
            scores = torch.cat(maps, 2)  # [B, K, Nw]
            for j, i in enumerate(idx):
                out[i] = self.postprocess(boxes, scores[j])
        return out

    def postprocess(self, boxes: torch.Tensor, scores: torch.Tensor) -> dict[str, torch.Tensor]:
        """``boxes [Nw, 4]``, ``scores [K, Nw]`` -> the detections dict (labels 1..K)."""
        k, n = scores.shape
        s = scores.flatten()
        labels = torch.arange(1, k + 1, device=s.device).repeat_interleave(n)
        b = boxes.repeat(k, 1)
        keep = s > self.score_thresh
        b, s, labels = b[keep], s[keep], labels[keep]
        keep = batched_nms(b, s, labels, self.nms_iou)[: self.detections_per_img]
        return {"boxes": b[keep], "scores": s[keep], "labels": labels[keep]}
