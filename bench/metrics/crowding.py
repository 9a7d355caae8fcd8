"""Recall against objects per grid cell: the crowded-scene test of YOLO v1's one-object-per-cell design.

YOLO v1 divides the image into an S x S grid and makes each cell responsible for the one object whose
centre falls in it (one class distribution per cell), so when two or three object centres share a
cell it can find at most one of them.  This metric makes that weakness a number: every ground-truth
object is binned by how many ground-truth centres (of its image, itself included) lie in its cell of
an S x S grid over the image, and recall is reported per bin (``1``, ``2``, ``3+``).

Matching is the VOC rule, class-aware and one-to-one per image: detections of score >= ``score_thresh``
in descending score order (ties in input order) each take the ground truth of their class with the
highest IoU, if that IoU is >= ``iou_thr`` (COCO's inclusive comparison) and it is not taken yet;
otherwise the detection matches nothing (it does not fall back to its second-best ground truth).
A ground truth is therefore found iff some detection of its class above the score threshold has it as
its best match with IoU >= ``iou_thr``: recall depends on the threshold, not on the score order.

Reduction: **micro over ground-truth objects within each bin**, dataset-level counts (matched / total);
an empty bin has recall None.  Per image the counts are integers, so the accumulator's state is six
integers and merging is a sum.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.metrics import METRIC_SPEC, MetricInputError, register_metric
from bench.metrics.detection import box_iou

#: Objects-per-cell bins; the last one collects every higher count.
BINS: tuple[str, ...] = ("1", "2", "3+")


def _boxes(boxes: Any, what: str) -> np.ndarray:
    """``[N, 4]`` float64 xyxy with finite coordinates and x2 >= x1, y2 >= y1 (else MetricInputError)."""
    b = np.asarray(boxes, dtype=np.float64)
    if b.size == 0:
        return b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise MetricInputError(f"{what}: expected boxes [N, 4] xyxy, got shape {b.shape}")
    if not np.isfinite(b).all():
        raise MetricInputError(f"{what}: non-finite box coordinate")
    if (b[:, 2] < b[:, 0]).any() or (b[:, 3] < b[:, 1]).any():
        raise MetricInputError(f"{what}: box with x2 < x1 or y2 < y1 (boxes must be xyxy)")
    return b


def _vector(values: Any, n: int, what: str, dtype: type) -> np.ndarray:
    v = np.asarray(values, dtype=dtype).reshape(-1)
    if len(v) != n:
        raise MetricInputError(f"{what}: {len(v)} values for {n} boxes")
    return v


def cell_occupancy(boxes: np.ndarray, width: float, height: float, grid: int) -> np.ndarray:
    """How many box centres share each box's cell of a ``grid x grid`` partition of the image.

    ``boxes: [N, 4] xyxy`` image px, the image ``width x height`` px -> ``[N] int`` (each >= 1, the box
    itself counted).  A centre on the right/bottom edge falls in the last cell.
    """
    if grid < 1:
        raise MetricInputError(f"grid must be >= 1, got {grid}")
    if not (width > 0 and height > 0):
        raise MetricInputError(f"image size must be positive, got {width} x {height}")
    b = _boxes(boxes, "ground truth")
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    col = np.clip(np.floor(cx * grid / width), 0, grid - 1).astype(np.int64)
    row = np.clip(np.floor(cy * grid / height), 0, grid - 1).astype(np.int64)
    cell = row * grid + col
    return np.bincount(cell, minlength=grid * grid)[cell]


def match_ground_truth(
    gt_boxes: np.ndarray,
    gt_labels: np.ndarray,
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    det_labels: np.ndarray,
    iou_thr: float = 0.5,
) -> np.ndarray:
    """VOC greedy matching of one image: which ground truths a detection claims.

    ``gt_boxes: [G, 4] xyxy``, ``gt_labels: [G]``, ``det_boxes: [D, 4] xyxy``, ``det_scores: [D]``,
    ``det_labels: [D]`` -> ``[G] bool`` (matched).  See the module docstring for the rule.
    """
    matched = np.zeros(len(gt_boxes), dtype=bool)
    if len(gt_boxes) == 0 or len(det_boxes) == 0:
        return matched
    iou = box_iou(det_boxes, gt_boxes)  # [D, G]
    iou[det_labels[:, None] != gt_labels[None, :]] = -1.0  # class-aware: other classes never match
    for d in np.argsort(-det_scores, kind="stable"):
        g = int(np.argmax(iou[d]))  # first maximum on ties, like the devkit
        if iou[d, g] >= iou_thr and not matched[g]:
            matched[g] = True
    return matched


class CellRecallAccumulator:
    """Thin accumulator for :func:`recall_by_objects_per_cell`: ``reset``, ``update`` (one image),
    ``compute``, ``merge``.  State: matched and total ground truths per bin."""

    def __init__(self, grid: int, score_thresh: float = 0.0, iou_thr: float = 0.5) -> None:
        if grid < 1:
            raise MetricInputError(f"grid must be >= 1, got {grid}")
        if not 0.0 < iou_thr <= 1.0:
            raise MetricInputError(f"iou_thr must be in (0, 1], got {iou_thr}")
        self.grid, self.score_thresh, self.iou_thr = int(grid), float(score_thresh), float(iou_thr)
        self.reset()

    def reset(self) -> None:
        """Forget all images."""
        self.matched = np.zeros(len(BINS), dtype=np.int64)
        self.total = np.zeros(len(BINS), dtype=np.int64)
        self.images = 0

    def update(
        self,
        gt_boxes: Any,
        gt_labels: Any,
        det_boxes: Any,
        det_scores: Any,
        det_labels: Any,
        image_size: tuple[float, float],
    ) -> None:
        """Add one image: ``gt_boxes [G, 4] xyxy``, ``gt_labels [G]``, ``det_boxes [D, 4] xyxy``,
        ``det_scores [D]``, ``det_labels [D]`` (image px, any label ids shared by GT and detections),
        ``image_size = (width, height)`` px."""
        where = f"image #{self.images}"
        gt = _boxes(gt_boxes, f"{where} ground truth")
        gl = _vector(gt_labels, len(gt), f"{where} ground-truth labels", np.int64)
        det = _boxes(det_boxes, f"{where} detections")
        ds = _vector(det_scores, len(det), f"{where} detection scores", np.float64)
        dl = _vector(det_labels, len(det), f"{where} detection labels", np.int64)
        keep = ds >= self.score_thresh
        self.update_found(gt, match_ground_truth(gt, gl, det[keep], ds[keep], dl[keep], self.iou_thr), image_size)

    def update_found(self, gt_boxes: Any, found: Any, image_size: tuple[float, float]) -> None:
        """Add one image whose found ground truths are already known: ``gt_boxes [G, 4] xyxy`` px, ``found [G]``
        bool (e.g. which objects a detector's target assignment trains; ``update`` passes the matched ones)."""
        where = f"image #{self.images}"
        gt = _boxes(gt_boxes, f"{where} ground truth")
        hit = _vector(found, len(gt), f"{where} found flags", bool)
        occupancy = cell_occupancy(gt, image_size[0], image_size[1], self.grid)
        bin_of = np.minimum(occupancy, len(BINS)) - 1
        self.total += np.bincount(bin_of, minlength=len(BINS))
        self.matched += np.bincount(bin_of[hit], minlength=len(BINS))
        self.images += 1

    def merge(self, other: CellRecallAccumulator) -> CellRecallAccumulator:
        """Add ``other``'s counts (same grid and thresholds) in place; returns self."""
        if (other.grid, other.score_thresh, other.iou_thr) != (self.grid, self.score_thresh, self.iou_thr):
            raise MetricInputError(
                f"cannot merge grid {other.grid}, score >= {other.score_thresh}, IoU >= {other.iou_thr} into "
                f"grid {self.grid}, score >= {self.score_thresh}, IoU >= {self.iou_thr}"
            )
        self.matched += other.matched
        self.total += other.total
        self.images += other.images
        return self

    def compute(self) -> dict[str, Any]:
        """``recall`` (all ground truths), ``per_bin`` (bin -> ``recall``, ``matched``, ``num_gt``),
        ``num_gt``, ``num_images``, the settings (``grid``, ``score_thresh``, ``iou_thr``) and ``spec``."""
        per_bin = {
            name: {"recall": float(m / t) if t else None, "matched": int(m), "num_gt": int(t)}
            for name, m, t in zip(BINS, self.matched, self.total, strict=True)
        }
        total = int(self.total.sum())
        return {
            "recall": float(self.matched.sum() / total) if total else None,
            "per_bin": per_bin,
            "num_gt": total,
            "num_images": self.images,
            "grid": self.grid,
            "score_thresh": self.score_thresh,
            "iou_thr": self.iou_thr,
            "spec": METRIC_SPEC,
        }


@register_metric(
    "recall_by_objects_per_cell",
    task="detection",
    reduction="micro over ground-truth objects within each objects-per-cell bin (1, 2, 3+), dataset-level counts",
    higher_is_better=True,
    description="recall at IoU >= thr (class-aware VOC greedy matching) binned by how many ground-truth "
    "centres share the object's cell of an S x S grid (YOLO v1's one object per cell)",
)
def recall_by_objects_per_cell(
    gt_boxes: Sequence[Any],
    gt_labels: Sequence[Any],
    det_boxes: Sequence[Any],
    det_scores: Sequence[Any],
    det_labels: Sequence[Any],
    image_sizes: Sequence[tuple[float, float]],
    grid: int,
    score_thresh: float = 0.0,
    iou_thr: float = 0.5,
) -> dict[str, Any]:
    """Recall per objects-per-cell bin over a set of images (one list entry per image).

    ``gt_boxes[i]: [G_i, 4] xyxy`` px, ``gt_labels[i]: [G_i]``, ``det_boxes[i]: [D_i, 4] xyxy``,
    ``det_scores[i]: [D_i]``, ``det_labels[i]: [D_i]``, ``image_sizes[i] = (width, height)`` px;
    ``grid`` is S (7 for YOLO v1).  Returns :meth:`CellRecallAccumulator.compute`'s dict.
    """
    lists = (gt_boxes, gt_labels, det_boxes, det_scores, det_labels, image_sizes)
    if len({len(x) for x in lists}) != 1:
        raise MetricInputError(f"per-image lists differ in length: {[len(x) for x in lists]}")
    acc = CellRecallAccumulator(grid, score_thresh, iou_thr)
    for image in zip(*lists, strict=True):
        acc.update(*image)
    return acc.compute()
