"""Object-detection metrics: box/mask IoU, VOC AP (11-point and all-point) and COCO AP/AR.

Reductions, named once here and in the registry:

* COCO numbers (``mAP`` ... ``AR_large``) are exactly pycocotools' ``COCOeval.stats`` (dataset-level
  matching per image and class, precision at 101 recall points, mean over IoU thresholds and then
  a **macro mean over classes**, classes without GT in the area range left out).  The engine is
  faster-coco-eval, which reimplements pycocotools' loops in C++; ``tests/metrics`` checks the
  parity against pycocotools itself.
* VOC numbers (``mAP11``, ``mAPall``) follow the VOC devkit: dataset-level PR curve per class,
  **macro mean over classes with at least one non-crowd GT**.

Inputs are COCO dicts (boxes ``[x, y, w, h]``); internally everything is NumPy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.metrics import METRIC_SPEC, MetricInputError, register_metric

#: pycocotools' summary order; ``evaluate_coco`` returns these keys in this order.
COCO_STAT_KEYS: tuple[str, ...] = (
    "mAP",
    "mAP_50",
    "mAP_75",
    "mAP_small",
    "mAP_medium",
    "mAP_large",
    "AR_1",
    "AR_10",
    "AR_100",
    "AR_small",
    "AR_medium",
    "AR_large",
)
IOU_TYPES = ("bbox", "segm")
#: Recall levels of the 11-point VOC2007 AP.  ``np.arange(0, 1.1, 0.1)`` (the py-faster-rcnn
#: port) yields 0.30000000000000004 etc., which would make a recall of exactly 3/10 miss the 0.3
#: level; ``k / 10`` is the correctly rounded tenth, so ``rec >= r`` means what the devkit intends.
VOC11_RECALLS = np.arange(11) / 10.0
#: Recall levels at which ``pr_curve`` is reported (interpolated precision, as COCO does).
CURVE_RECALLS = np.arange(101) / 100.0
#: Upper bound on the (detection, GT) pairs materialised at once by the vectorised VOC matcher.
_PAIR_CHUNK = 4_000_000


# --------------------------------------------------------------------------------------------
# IoU
# --------------------------------------------------------------------------------------------


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """``boxes: [N, 4] xywh`` -> ``[N, 4] xyxy`` (float64)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def box_iou(a: np.ndarray, b: np.ndarray, legacy_coords: bool = False) -> np.ndarray:
    """IoU of every pair: ``a: [N, 4] xyxy``, ``b: [M, 4] xyxy`` -> ``[N, M]``.

    ``legacy_coords`` uses the VOC devkit's pixel-inclusive convention (``w = x2 - x1 + 1``).
    A pair whose union is empty has IoU 0 (not NaN).
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return paired_box_iou(a[:, None, :], b[None, :, :], legacy_coords)


def paired_box_iou(a: np.ndarray, b: np.ndarray, legacy_coords: bool = False) -> np.ndarray:
    """Element-wise IoU of broadcastable ``a: [..., 4] xyxy`` and ``b: [..., 4] xyxy`` -> ``[...]``."""
    one = 1.0 if legacy_coords else 0.0
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + one
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + one
    inter = np.clip(iw, 0.0, None) * np.clip(ih, 0.0, None)
    area_a = (a[..., 2] - a[..., 0] + one) * (a[..., 3] - a[..., 1] + one)
    area_b = (b[..., 2] - b[..., 0] + one) * (b[..., 3] - b[..., 1] + one)
    union = area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def mask_iou(a: Sequence[dict[str, Any]], b: Sequence[dict[str, Any]]) -> np.ndarray:
    """IoU of every pair of RLE masks (``{"size": [h, w], "counts": ...}``): ``[N], [M] -> [N, M]``."""
    from faster_coco_eval.core import mask as mask_utils

    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float64)
    iou = mask_utils.iou(list(a), list(b), [0] * len(b))
    return np.asarray(iou, dtype=np.float64).reshape(len(a), len(b))


# --------------------------------------------------------------------------------------------
# VOC AP
# --------------------------------------------------------------------------------------------


def precision_recall(tp: np.ndarray, npos: int) -> tuple[np.ndarray, np.ndarray]:
    """PR curve of one class: ``tp: [D] bool`` in descending score order (ignored detections
    already removed) -> ``(recall [D], precision [D])``."""
    tp_cum = np.cumsum(tp, dtype=np.float64)
    fp_cum = np.cumsum(~np.asarray(tp, dtype=bool), dtype=np.float64)
    recall = tp_cum / npos if npos > 0 else np.zeros_like(tp_cum)
    # Every remaining detection is TP or FP, so tp + fp >= 1; the devkit's eps guard is moot.
    precision = tp_cum / np.maximum(tp_cum + fp_cum, np.finfo(np.float64).eps)
    return recall, precision


def interpolated_precision(recall: np.ndarray, precision: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Max precision at recall >= r for each ``r`` in ``levels: [L]`` (0 if no point reaches r) -> ``[L]``.

    ``recall`` is non-decreasing (a cumulative PR curve), so the first point reaching ``r`` is
    found by binary search and the max over the suffix is a reversed running maximum.
    """
    if len(recall) == 0:
        return np.zeros(len(levels), dtype=np.float64)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    first = np.searchsorted(recall, levels, side="left")
    padded = np.append(envelope, 0.0)
    return padded[first]


def ap_11point(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2007 AP: mean over r in {0, 0.1, ..., 1} of the max precision at recall >= r."""
    return float(np.mean(interpolated_precision(recall, precision, VOC11_RECALLS)))


def ap_all_point(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2010+ AP: area under the monotone (non-increasing) envelope of the PR curve."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    idx = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def _segment_starts(counts: np.ndarray) -> np.ndarray:
    """Start offsets of consecutive segments with the given ``counts: [S]`` -> ``[S]``."""
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)


def _best_gt_boxes(
    det_key: np.ndarray,
    det_box: np.ndarray,
    gt_key: np.ndarray,
    gt_box: np.ndarray,
    legacy_coords: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """For each detection, the GT with the same key (image, class) of highest IoU, first on ties.

    ``det_key: [D]``, ``det_box: [D, 4] xyxy``, ``gt_key: [G]``, ``gt_box: [G, 4] xyxy``
    -> ``(best_iou [D] (-inf without candidates), best_gt [D] (-1 without candidates))``.
    Vectorised: all (detection, candidate GT) pairs are laid out flat, chunked to bound memory.
    """
    best_iou, best_gt = _unmatched(len(det_key))
    if len(det_key) == 0 or len(gt_key) == 0:
        return best_iou, best_gt
    # A stable sort keeps annotation order inside a key, which is what "first on ties" refers to.
    g_order = np.argsort(gt_key, kind="stable")
    g_sorted = gt_key[g_order]
    start = np.searchsorted(g_sorted, det_key, side="left")
    count = np.searchsorted(g_sorted, det_key, side="right") - start
    dets = np.flatnonzero(count > 0)
    csum = np.cumsum(count[dets])
    lo = 0
    while lo < len(dets):
        # Largest chunk whose pair count stays under the bound (at least one detection).
        base = csum[lo - 1] if lo > 0 else 0
        hi = max(lo + 1, int(np.searchsorted(csum, base + _PAIR_CHUNK, side="right")))
        d = dets[lo:hi]
        cnt = count[d]
        seg = _segment_starts(cnt)
        n_pairs = int(cnt.sum())
        local = np.arange(n_pairs, dtype=np.int64) - np.repeat(seg, cnt)
        pair_det = np.repeat(d, cnt)
        pair_gt = g_order[np.repeat(start[d], cnt) + local]
        iou = paired_box_iou(det_box[pair_det], gt_box[pair_gt], legacy_coords)
        seg_max = np.maximum.reduceat(iou, seg)
        is_max = iou == np.repeat(seg_max, cnt)
        first = np.minimum.reduceat(np.where(is_max, local, np.iinfo(np.int64).max), seg)
        best_iou[d] = seg_max
        best_gt[d] = g_order[start[d] + first]
        lo = hi
    return best_iou, best_gt


def _unmatched(n_det: int) -> tuple[np.ndarray, np.ndarray]:
    """``(best_iou [D] = -inf, best_gt [D] = -1)``: the answer for detections without candidates."""
    return np.full(n_det, -np.inf), np.full(n_det, -1, dtype=np.int64)


def _best_gt_masks(
    det_key: np.ndarray,
    det_rle: Sequence[dict[str, Any]],
    gt_key: np.ndarray,
    gt_rle: Sequence[dict[str, Any]],
) -> tuple[np.ndarray, np.ndarray]:
    """Mask version of :func:`_best_gt_boxes` (RLE IoU has no flat vector form: one call per key)."""
    best_iou, best_gt = _unmatched(len(det_key))
    if len(det_key) == 0 or len(gt_key) == 0:
        return best_iou, best_gt
    g_order = np.argsort(gt_key, kind="stable")
    g_keys, g_start, g_count = np.unique(gt_key[g_order], return_index=True, return_counts=True)
    d_order = np.argsort(det_key, kind="stable")
    d_keys, d_start, d_count = np.unique(det_key[d_order], return_index=True, return_counts=True)
    pos = np.searchsorted(g_keys, d_keys)
    for k in range(len(d_keys)):
        p = pos[k]
        if p >= len(g_keys) or g_keys[p] != d_keys[k]:
            continue
        gi = g_order[g_start[p] : g_start[p] + g_count[p]]
        di = d_order[d_start[k] : d_start[k] + d_count[k]]
        iou = mask_iou([det_rle[i] for i in di], [gt_rle[i] for i in gi])
        arg = np.argmax(iou, axis=1)  # first maximum, like the devkit's np.argmax
        best_iou[di] = iou[np.arange(len(di)), arg]
        best_gt[di] = gi[arg]
    return best_iou, best_gt


@dataclass
class VocClassResult:
    """VOC evaluation of one class: ``recall``/``precision`` are the raw curve points."""

    npos: int
    recall: np.ndarray
    precision: np.ndarray
    ap11: float | None
    apall: float | None


def voc_assign(
    det_cls: np.ndarray,
    det_score: np.ndarray,
    best_iou: np.ndarray,
    best_gt: np.ndarray,
    gt_ignore: np.ndarray,
    iou_thr: float,
) -> tuple[np.ndarray, np.ndarray]:
    """VOC devkit matching, given each detection's best GT.

    ``det_cls, det_score, best_iou, best_gt: [D]``, ``gt_ignore: [G] bool`` -> ``(order [D'],
    tp [D'] bool)``: ``order`` lists the non-ignored detections grouped by class, descending score
    within a class with ties in input order (stable sort), and ``tp`` flags true positives.

    A detection whose best IoU is strictly above ``iou_thr`` is ignored if that GT is
    crowd/difficult, a TP if it is the first (in score order) to claim that GT, otherwise FP.  The
    sequential devkit loop is equivalent to "first claimant wins", which vectorises as a unique.
    """
    order = np.lexsort((-det_score, det_cls))  # lexsort is stable: ties keep input order
    hit = best_iou[order] > iou_thr
    gt_of = np.where(hit, best_gt[order], -1)
    ignored = hit & gt_ignore[np.maximum(gt_of, 0)]
    keep = ~ignored
    order, gt_of = order[keep], gt_of[keep]
    tp = np.zeros(len(order), dtype=bool)
    claim = np.flatnonzero(gt_of >= 0)
    _, first = np.unique(gt_of[claim], return_index=True)
    tp[claim[first]] = True
    return order, tp


def voc_per_class(
    det_cls: np.ndarray, order: np.ndarray, tp: np.ndarray, npos: np.ndarray
) -> list[VocClassResult]:
    """Per-class PR curves and APs from :func:`voc_assign`'s output; ``npos: [K]`` non-ignored GT counts.

    A class with ``npos == 0`` gets ``ap11 = apall = None`` (it is left out of the mean).
    """
    cls_sorted = det_cls[order]
    bounds = np.searchsorted(cls_sorted, np.arange(len(npos) + 1), side="left")
    out = []
    for k, n in enumerate(npos.tolist()):
        t = tp[bounds[k] : bounds[k + 1]]
        recall, precision = precision_recall(t, n)
        if n == 0:
            out.append(VocClassResult(0, recall, precision, None, None))
        else:
            out.append(VocClassResult(n, recall, precision, ap_11point(recall, precision),
                                      ap_all_point(recall, precision)))
    return out


# --------------------------------------------------------------------------------------------
# Input parsing and validation
# --------------------------------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)


def _rle_ok(segm: Any) -> bool:
    return isinstance(segm, dict) and "size" in segm and "counts" in segm


@dataclass
class GroundTruth:
    """A validated COCO ground-truth split as arrays (``G`` annotations, ``K`` categories).

    ``cat_ids`` are sorted (pycocotools' class order); ``ann_*`` keep annotation order.
    """

    iou_type: str
    images: list[dict[str, Any]]  # {"id", "height", "width"} (size only when given)
    image_ids: np.ndarray  # [I] int64, sorted
    categories: list[dict[str, Any]]  # {"id", "name"}, sorted by id
    cat_ids: np.ndarray  # [K] int64, sorted
    cat_names: list[str]  # [K]
    ann_id: np.ndarray  # [G] int64
    ann_image: np.ndarray  # [G] int64 image ids
    ann_cat: np.ndarray  # [G] int64 category ids
    ann_box: np.ndarray  # [G, 4] float64 xywh
    ann_area: np.ndarray  # [G] float64 (the `area` field, used for COCO area ranges)
    ann_crowd: np.ndarray  # [G] bool
    ann_difficult: np.ndarray  # [G] bool (VOC "difficult", optional key)
    ann_segm: list[Any] = field(default_factory=list)  # [G] COCO segmentations (segm only)
    _rles: list[dict[str, Any]] | None = None

    def image_size(self, image_id: int) -> tuple[int, int] | None:
        """``(height, width)`` of an image, None when the GT does not give it."""
        img = self.images[int(np.searchsorted(self.image_ids, image_id))]
        return (img["height"], img["width"]) if "height" in img and "width" in img else None

    def rles(self) -> list[dict[str, Any]]:
        """GT masks as RLE (polygons and uncompressed RLE converted with the image size)."""
        if self._rles is None:
            from faster_coco_eval.core import mask as mask_utils

            out = []
            for segm, img in zip(self.ann_segm, self.ann_image.tolist(), strict=True):
                h, w = self.image_size(img)  # type: ignore[misc]  # validated for segm
                out.append(mask_utils.segmToRle(segm, w, h))
            self._rles = out
        return self._rles


def parse_ground_truth(gt: dict[str, Any], iou_type: str = "bbox") -> GroundTruth:
    """Validate a COCO dataset dict (``images``, ``annotations``, ``categories``) into arrays.

    Required annotation keys: ``id`` (int >= 1), ``image_id``, ``category_id``, ``bbox``, ``area``,
    ``iscrowd`` (+ ``segmentation`` for ``segm``, which also needs image ``height``/``width``).
    Raises :class:`MetricInputError` naming the first bad record.
    """
    if iou_type not in IOU_TYPES:
        raise MetricInputError(f"iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
    if not isinstance(gt, dict):
        raise MetricInputError(f"ground truth: expected a COCO dict, got {type(gt).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(gt.get(key), list):
            raise MetricInputError(f"ground truth: missing or non-list key {key!r}")

    images: list[dict[str, Any]] = []
    seen_img: set[int] = set()
    for i, img in enumerate(gt["images"]):
        if not isinstance(img, dict) or not _is_int(img.get("id")):
            raise MetricInputError(f"ground-truth image #{i}: needs an integer 'id'")
        iid = int(img["id"])
        if iid in seen_img:
            raise MetricInputError(f"ground-truth image #{i} (id={iid}): duplicate image id")
        seen_img.add(iid)
        rec: dict[str, Any] = {"id": iid}
        if "height" in img or "width" in img or iou_type == "segm":
            h, w = img.get("height"), img.get("width")
            if not (_is_int(h) and _is_int(w) and h > 0 and w > 0):
                raise MetricInputError(
                    f"ground-truth image #{i} (id={iid}): 'height' and 'width' must be positive integers "
                    f"(got {h!r}, {w!r})"
                )
            rec["height"], rec["width"] = int(h), int(w)
        images.append(rec)
    images.sort(key=lambda r: r["id"])

    cats: list[dict[str, Any]] = []
    seen_cat: set[int] = set()
    seen_name: set[str] = set()
    for i, cat in enumerate(gt["categories"]):
        if not isinstance(cat, dict) or not _is_int(cat.get("id")):
            raise MetricInputError(f"category #{i}: needs an integer 'id'")
        cid, name = int(cat["id"]), cat.get("name")
        if not isinstance(name, str):
            raise MetricInputError(f"category #{i} (id={cid}): needs a string 'name'")
        if cid in seen_cat:
            raise MetricInputError(f"category #{i} (id={cid}): duplicate category id")
        if name in seen_name:
            raise MetricInputError(f"category #{i} (id={cid}): duplicate category name {name!r}")
        seen_cat.add(cid)
        seen_name.add(name)
        cats.append({"id": cid, "name": name})
    cats.sort(key=lambda c: c["id"])

    required = ("id", "image_id", "category_id", "bbox", "area", "iscrowd")
    if iou_type == "segm":
        required += ("segmentation",)
    n = len(gt["annotations"])
    ann_id = np.empty(n, np.int64)
    ann_image = np.empty(n, np.int64)
    ann_cat = np.empty(n, np.int64)
    ann_box = np.empty((n, 4), np.float64)
    ann_area = np.empty(n, np.float64)
    ann_crowd = np.empty(n, bool)
    ann_difficult = np.empty(n, bool)
    segms: list[Any] = []
    seen_ann: set[int] = set()
    for i, ann in enumerate(gt["annotations"]):
        if not isinstance(ann, dict):
            raise MetricInputError(f"ground-truth annotation #{i}: expected a dict, got {type(ann).__name__}")
        where = f"ground-truth annotation #{i} (id={ann.get('id')!r}, image_id={ann.get('image_id')!r})"
        missing = [k for k in required if k not in ann]
        if missing:
            raise MetricInputError(f"{where}: missing required key(s) {', '.join(map(repr, missing))}")
        aid = ann["id"]
        # pycocotools stores the matched GT id in its match table, where 0 means "unmatched";
        # an id <= 0 would let one GT be matched many times, so it is refused rather than mis-scored.
        if not _is_int(aid) or aid < 1:
            raise MetricInputError(f"{where}: 'id' must be an integer >= 1")
        if aid in seen_ann:
            raise MetricInputError(f"{where}: duplicate annotation id")
        seen_ann.add(int(aid))
        if not _is_int(ann["image_id"]) or int(ann["image_id"]) not in seen_img:
            raise MetricInputError(f"{where}: unknown image_id {ann['image_id']!r}")
        if not _is_int(ann["category_id"]) or int(ann["category_id"]) not in seen_cat:
            raise MetricInputError(f"{where}: unknown category_id {ann['category_id']!r}")
        box = ann["bbox"]
        if not (isinstance(box, list | tuple | np.ndarray) and len(box) == 4 and all(map(_is_num, box))):
            raise MetricInputError(f"{where}: 'bbox' must be 4 numbers [x, y, w, h], got {box!r}")
        if not all(math.isfinite(v) for v in box):
            raise MetricInputError(f"{where}: bbox {list(box)!r} is not finite")
        if box[2] < 0 or box[3] < 0:
            raise MetricInputError(f"{where}: negative width/height in bbox {list(box)!r}")
        if not _is_num(ann["area"]) or not math.isfinite(ann["area"]) or ann["area"] < 0:
            raise MetricInputError(f"{where}: 'area' must be a finite number >= 0, got {ann['area']!r}")
        if ann["iscrowd"] not in (0, 1):
            raise MetricInputError(f"{where}: 'iscrowd' must be 0 or 1, got {ann['iscrowd']!r}")
        if iou_type == "segm":
            segm = ann["segmentation"]
            if not (_rle_ok(segm) or (isinstance(segm, list) and segm and all(
                    isinstance(p, list) and len(p) >= 6 for p in segm))):
                raise MetricInputError(f"{where}: 'segmentation' must be polygons or an RLE dict")
            segms.append(segm)
        ann_id[i], ann_image[i], ann_cat[i] = aid, ann["image_id"], ann["category_id"]
        ann_box[i] = box
        ann_area[i] = ann["area"]
        ann_crowd[i] = bool(ann["iscrowd"])
        ann_difficult[i] = bool(ann.get("difficult", 0))

    return GroundTruth(
        iou_type=iou_type,
        images=images,
        image_ids=np.array([r["id"] for r in images], dtype=np.int64),
        categories=cats,
        cat_ids=np.array([c["id"] for c in cats], dtype=np.int64),
        cat_names=[c["name"] for c in cats],
        ann_id=ann_id,
        ann_image=ann_image,
        ann_cat=ann_cat,
        ann_box=ann_box,
        ann_area=ann_area,
        ann_crowd=ann_crowd,
        ann_difficult=ann_difficult,
        ann_segm=segms,
    )


@dataclass
class Detections:
    """Validated predictions as arrays (``D`` detections, in input order).

    ``bbox`` rows are NaN where a ``segm`` prediction carries no box; ``mask_area`` is the RLE
    area (``segm`` only).  ``rle`` holds compressed RLEs for ``segm``.
    """

    image_id: np.ndarray  # [D] int64
    category_id: np.ndarray  # [D] int64
    score: np.ndarray  # [D] float64
    bbox: np.ndarray  # [D, 4] float64 xywh
    rle: list[dict[str, Any]] = field(default_factory=list)
    mask_area: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return len(self.score)

    @staticmethod
    def empty(iou_type: str) -> Detections:
        """No detections."""
        z = np.zeros(0, np.int64)
        return Detections(z, z.copy(), np.zeros(0), np.zeros((0, 4)), [], np.zeros(0))

    @staticmethod
    def concat(parts: Sequence[Detections]) -> Detections:
        """Concatenation in the given order (order decides VOC tie-breaking across images)."""
        parts = list(parts)
        return Detections(
            np.concatenate([p.image_id for p in parts]),
            np.concatenate([p.category_id for p in parts]),
            np.concatenate([p.score for p in parts]),
            np.concatenate([p.bbox for p in parts]).reshape(-1, 4),
            [r for p in parts for r in p.rle],
            np.concatenate([p.mask_area for p in parts]),
        )


def _column(preds: list[Any], key: str, optional: bool = False) -> list[Any]:
    """``[p[key] for p in preds]`` that names the first record lacking the key."""
    try:
        if optional:
            return [p.get(key) for p in preds]
        return [p[key] for p in preds]
    except (KeyError, TypeError, AttributeError):
        for i, p in enumerate(preds):
            if not isinstance(p, dict):
                raise MetricInputError(f"prediction #{i}: expected a dict, got {type(p).__name__}") from None
            if key not in p:
                raise MetricInputError(
                    f"prediction #{i} (image_id={p.get('image_id')!r}): missing key {key!r}"
                ) from None
        raise


def _int_column(preds: list[Any], key: str) -> np.ndarray:
    vals = _column(preds, key)
    if all(_is_int(v) for v in vals):
        return np.array(vals, dtype=np.int64).reshape(-1)
    i = next(i for i, v in enumerate(vals) if not _is_int(v))
    raise MetricInputError(f"prediction #{i}: {key} must be an integer, got {vals[i]!r}")


def _fmt(v: float) -> str:
    """``NaN``/``inf``/``-inf`` as people write them."""
    return "NaN" if math.isnan(v) else str(float(v))


def _where(preds: list[Any], i: int) -> str:
    return f"prediction #{i} (image_id={preds[i].get('image_id')!r})"


def parse_predictions(preds: list[dict[str, Any]], gt: GroundTruth) -> Detections:
    """Validate a COCO results list against ``gt`` into :class:`Detections`.

    Each record needs ``image_id``, ``category_id``, ``score`` and ``bbox [x, y, w, h]`` (``bbox``)
    or ``segmentation`` RLE of the image's size (``segm``).  Raises :class:`MetricInputError`
    naming the first bad record: unknown image/category id, NaN/inf score or box, negative size.
    """
    if not isinstance(preds, list):
        raise MetricInputError(f"predictions: expected a list of dicts, got {type(preds).__name__}")
    n = len(preds)
    if n == 0:
        return Detections.empty(gt.iou_type)
    image_id = _int_column(preds, "image_id")
    category_id = _int_column(preds, "category_id")
    bad = np.flatnonzero(~np.isin(image_id, gt.image_ids))
    if len(bad):
        raise MetricInputError(f"{_where(preds, bad[0])}: unknown image_id (not in the ground truth)")
    bad = np.flatnonzero(~np.isin(category_id, gt.cat_ids))
    if len(bad):
        raise MetricInputError(
            f"{_where(preds, bad[0])}: unknown category_id {int(category_id[bad[0]])} "
            "(not in the ground truth)"
        )

    scores = _column(preds, "score")
    if not all(_is_num(s) for s in scores):
        i = next(i for i, s in enumerate(scores) if not _is_num(s))
        raise MetricInputError(f"{_where(preds, i)}: score must be a number, got {scores[i]!r}")
    score = np.array(scores, dtype=np.float64).reshape(-1)
    bad = np.flatnonzero(~np.isfinite(score))
    if len(bad):
        raise MetricInputError(f"{_where(preds, bad[0])}: score is {_fmt(score[bad[0]])}")

    boxes = _column(preds, "bbox", optional=gt.iou_type == "segm")
    bbox = np.full((n, 4), np.nan)
    has_box = np.array([b is not None for b in boxes], dtype=bool)
    try:
        if has_box.all():
            bbox = np.array(boxes, dtype=np.float64).reshape(n, 4)
        elif has_box.any():
            bbox[has_box] = np.array([b for b in boxes if b is not None], dtype=np.float64).reshape(-1, 4)
    except (ValueError, TypeError):
        for i, b in enumerate(boxes):
            ok = isinstance(b, list | tuple | np.ndarray) and len(b) == 4 and all(map(_is_num, b))
            if b is not None and not ok:
                msg = f"{_where(preds, i)}: bbox must be 4 numbers [x, y, w, h], got {b!r}"
                raise MetricInputError(msg) from None
        raise
    bad = np.flatnonzero(has_box & ~np.isfinite(bbox).all(axis=1))
    if len(bad):
        raise MetricInputError(f"{_where(preds, bad[0])}: bbox {boxes[bad[0]]!r} is not finite")
    bad = np.flatnonzero(has_box & ((bbox[:, 2] < 0) | (bbox[:, 3] < 0)))
    if len(bad):
        raise MetricInputError(f"{_where(preds, bad[0])}: negative width/height in bbox {boxes[bad[0]]!r}")

    dets = Detections(image_id, category_id, score, bbox)
    if gt.iou_type == "segm":
        dets.rle, dets.mask_area = _parse_rles(preds, image_id, gt)
    return dets


def _parse_rles(
    preds: list[dict[str, Any]], image_id: np.ndarray, gt: GroundTruth
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Compressed RLEs and their areas for ``segm`` predictions; size must match the image."""
    from faster_coco_eval.core import mask as mask_utils

    segms = _column(preds, "segmentation")
    rles: list[dict[str, Any]] = []
    for i, (segm, img) in enumerate(zip(segms, image_id.tolist(), strict=True)):
        if not _rle_ok(segm):
            raise MetricInputError(
                f"{_where(preds, i)}: segmentation must be an RLE dict with 'size' and 'counts'"
            )
        h, w = gt.image_size(img)  # type: ignore[misc]  # segm GT always has sizes
        if list(segm["size"]) != [h, w]:
            raise MetricInputError(
                f"{_where(preds, i)}: segmentation size {list(segm['size'])} != image size [{h}, {w}]"
            )
        counts = segm["counts"]
        if isinstance(counts, list):  # uncompressed RLE -> compressed
            rles.append(mask_utils.frPyObjects(segm, h, w))
        else:
            rles.append({"size": [h, w], "counts": counts})
    area = np.asarray(mask_utils.area(rles), dtype=np.float64).reshape(-1) if rles else np.zeros(0)
    return rles, area


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def _prediction_areas(dets: Detections, iou_type: str) -> np.ndarray:
    """Detection areas as pycocotools' ``loadRes`` sets them: ``[D]``.

    ``loadRes`` picks one branch from the *first* result: if it has a non-empty ``bbox`` every
    area is ``w * h`` (even for ``segm``); otherwise every area is the mask area.  Area decides
    which detections are ignored per area range, so the rule is reproduced exactly.
    """
    if len(dets) == 0:
        return np.zeros(0)
    if iou_type == "bbox" or np.isfinite(dets.bbox[0]).all():
        missing = np.flatnonzero(~np.isfinite(dets.bbox).all(axis=1))
        if len(missing):
            raise MetricInputError(
                f"prediction #{missing[0]} (image_id={int(dets.image_id[missing[0]])}): missing bbox; "
                "the first prediction has one, and COCO then takes every area from the bbox"
            )
        return dets.bbox[:, 2] * dets.bbox[:, 3]
    return dets.mask_area


def _coco_engine(gt: GroundTruth, dets: Detections) -> tuple[np.ndarray, np.ndarray]:
    """Run faster-coco-eval (pycocotools semantics) -> ``(stats [12], precision [T, R, K, A, M])``."""
    ev = _coco_evaluated(gt, dets)
    ev.accumulate()
    ev.summarize()
    return np.asarray(ev.stats[:12], dtype=np.float64), np.asarray(ev.eval["precision"])


def _coco_evaluated(gt: GroundTruth, dets: Detections) -> Any:
    """A faster-coco-eval ``COCOeval_faster`` over ``gt.image_ids`` x ``gt.cat_ids`` after ``evaluate()``.

    Fresh annotation dicts are built because the engine writes into them (``ignore``, ``rle``)
    and the caller's data must stay untouched.  Detection ``i`` gets annotation id ``i + 1``, so
    the engine's order of equal scores is the input order.
    """
    from faster_coco_eval import COCO, COCOeval_faster

    segm = gt.iou_type == "segm"
    gt_anns = []
    for i in range(len(gt.ann_id)):
        a = {
            "id": int(gt.ann_id[i]),
            "image_id": int(gt.ann_image[i]),
            "category_id": int(gt.ann_cat[i]),
            "bbox": gt.ann_box[i].tolist(),
            "area": float(gt.ann_area[i]),
            "iscrowd": int(gt.ann_crowd[i]),
        }
        if segm:
            a["segmentation"] = gt.ann_segm[i]
        gt_anns.append(a)
    areas = _prediction_areas(dets, gt.iou_type)
    cols = zip(
        dets.image_id.tolist(), dets.category_id.tolist(), dets.score.tolist(), dets.bbox.tolist(),
        areas.tolist(), strict=True,
    )
    dt_anns = [
        {"id": i + 1, "image_id": im, "category_id": c, "score": s, "bbox": b, "area": ar, "iscrowd": 0}
        for i, (im, c, s, b, ar) in enumerate(cols)
    ]
    if segm:
        for a, r in zip(dt_anns, dets.rle, strict=True):
            a["segmentation"] = r
    images = [dict(im) for im in gt.images]
    categories = [dict(c) for c in gt.categories]
    coco_gt, coco_dt = COCO(), COCO()
    coco_gt.dataset = {"images": images, "annotations": gt_anns, "categories": categories}
    coco_dt.dataset = {"images": images, "annotations": dt_anns, "categories": categories}
    coco_gt.createIndex()
    coco_dt.createIndex()
    ev = COCOeval_faster(coco_gt, coco_dt, gt.iou_type, print_function=lambda *a, **k: None)
    ev.params.imgIds = [int(i) for i in gt.image_ids]
    ev.params.catIds = [int(c) for c in gt.cat_ids]
    ev.evaluate()
    return ev


def _none_if_negative(v: float) -> float | None:
    """pycocotools' -1 ("no GT in this range") becomes None (JSON null)."""
    return None if v <= -1 else float(v)


def _mean_valid(x: np.ndarray) -> float | None:
    """Mean over entries > -1 (pycocotools' "undefined" marker); None when there are none."""
    v = x[x > -1]
    return float(v.mean()) if v.size else None


def voc_evaluate(
    gt: GroundTruth, dets: Detections, iou_thr: float = 0.5, legacy_coords: bool = False
) -> list[VocClassResult]:
    """VOC devkit evaluation per class (in ``gt.cat_ids`` order); see the module docstring.

    ``legacy_coords`` (+1 on widths/heights) only applies to boxes; masks have no such convention.
    """
    m = _voc_match(gt, dets, legacy_coords)
    order, tp = voc_assign(m.d_cls, dets.score, m.best_iou, m.best_gt, np.append(m.gt_ignore, False), iou_thr)
    npos = np.bincount(m.g_cls[~m.gt_ignore], minlength=len(gt.cat_ids))
    return voc_per_class(m.d_cls, order, tp, npos)


@dataclass(frozen=True)
class _Match:
    """Detections and GT as (image index, class index) pairs, with each detection's best GT."""

    d_img: np.ndarray  # [D]
    d_cls: np.ndarray  # [D]
    g_img: np.ndarray  # [G]
    g_cls: np.ndarray  # [G]
    best_iou: np.ndarray  # [D], -inf without a candidate GT of the same image and class
    best_gt: np.ndarray  # [D], -1 without one
    gt_ignore: np.ndarray  # [G] bool: crowd or difficult


def _voc_match(gt: GroundTruth, dets: Detections, legacy_coords: bool) -> _Match:
    """Each detection's best GT of the same image and class (boxes or masks, per ``gt.iou_type``)."""
    k = len(gt.cat_ids)
    n_img = len(gt.image_ids)
    g_img = np.searchsorted(gt.image_ids, gt.ann_image)
    g_cls = np.searchsorted(gt.cat_ids, gt.ann_cat)
    d_img = np.searchsorted(gt.image_ids, dets.image_id)
    d_cls = np.searchsorted(gt.cat_ids, dets.category_id)
    g_key = g_img * max(k, 1) + g_cls
    d_key = d_img * max(k, 1) + d_cls
    assert n_img == 0 or g_key.max(initial=0) < n_img * max(k, 1)
    if gt.iou_type == "segm":
        best_iou, best_gt = _best_gt_masks(d_key, dets.rle, g_key, gt.rles())
    else:
        best_iou, best_gt = _best_gt_boxes(
            d_key, xywh_to_xyxy(dets.bbox), g_key, xywh_to_xyxy(gt.ann_box), legacy_coords
        )
    return _Match(d_img, d_cls, g_img, g_cls, best_iou, best_gt, gt.ann_crowd | gt.ann_difficult)


def per_image_ap(gt: GroundTruth, dets: Detections, iou_thr: float = 0.5) -> np.ndarray:
    """Each image's VOC all-point AP at ``iou_thr``: ``[I]`` in ``gt.image_ids`` order.

    Matching is the VOC devkit's (:func:`voc_assign`) restricted to one image: per class, the
    image's detections in score order against its non-ignored GT; the image's AP is the mean over
    the classes with GT in it.  NaN for an image without non-ignored GT (its AP is undefined).
    """
    k, n_img = max(len(gt.cat_ids), 1), len(gt.image_ids)
    m = _voc_match(gt, dets, legacy_coords=False)
    d_key, g_key = m.d_img * k + m.d_cls, m.g_img * k + m.g_cls
    order, tp = voc_assign(d_key, dets.score, m.best_iou, m.best_gt, np.append(m.gt_ignore, False), iou_thr)
    npos = np.bincount(g_key[~m.gt_ignore], minlength=n_img * k)
    keys = d_key[order]
    bounds = np.searchsorted(keys, np.arange(n_img * k + 1), side="left")
    ap = np.full((n_img, k), np.nan)
    for key in np.flatnonzero(npos):
        recall, precision = precision_recall(tp[bounds[key] : bounds[key + 1]], int(npos[key]))
        ap[key // k, key % k] = ap_all_point(recall, precision)
    has_gt = ~np.isnan(ap)
    return np.where(has_gt.any(axis=1), np.where(has_gt, ap, 0.0).sum(axis=1) / np.maximum(has_gt.sum(axis=1), 1),
                    np.nan)


# --------------------------------------------------------------------------------------------
# Per-detection match tables (what ``bench.metrics.bootstrap`` re-accumulates)
# --------------------------------------------------------------------------------------------

#: COCO's IoU thresholds .50:.05:.95 and its 101 recall levels, built as pycocotools' ``Params`` does.
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
COCO_RECALLS = np.linspace(0.0, 1.0, 101)
#: pycocotools' area range "all": a GT outside it is ignored, and so is an unmatched detection.
COCO_AREA_ALL = (0.0, 1e5**2)
#: Detections per image and class that COCO's headline AP keeps (the highest-scoring ones).
COCO_MAX_DETS = 100


def coco_greedy_match(
    iou: np.ndarray, thresholds: np.ndarray, gt_ignore: np.ndarray, gt_crowd: np.ndarray
) -> np.ndarray:
    """pycocotools' ``evaluateImg`` matching for one image and class, every IoU threshold at once.

    ``iou: [D, G]`` with detections in descending score order and the non-ignored GT first,
    ``thresholds: [T]``, ``gt_ignore, gt_crowd: [G] bool`` -> ``[T, D]`` index of each detection's
    GT (-1: unmatched).

    Greedy in score order (hence the loop over detections): a detection takes, among the GT not
    yet taken at that threshold (crowd GT can be taken again) with IoU >= the threshold, the last
    one of highest IoU among the non-ignored GT, else among the ignored ones.  That is what the
    reference loop does: it keeps the last GT whose IoU is >= the best so far, and stops at the
    first ignored GT once a non-ignored one has matched.
    """
    n_det, n_gt = iou.shape
    thr = np.minimum(np.asarray(thresholds, np.float64), 1 - 1e-10)[:, None]  # [T, 1], as the reference
    n_real = int((~gt_ignore).sum())  # the first n_real columns are the non-ignored GT
    taken = np.zeros((len(thr), n_gt), dtype=bool)
    match = np.full((len(thr), n_det), -1, dtype=np.int64)
    for d in range(n_det):
        cand = np.where((iou[d] >= thr) & ~(taken & ~gt_crowd), iou[d], -np.inf)  # [T, G]
        m = np.full(len(thr), -1, dtype=np.int64)
        for lo, hi in ((0, n_real), (n_real, n_gt)):
            if hi > lo:
                part = cand[:, lo:hi]
                last_best = hi - 1 - np.argmax(part[:, ::-1], axis=1)  # argmax is the first: reversed = last
                m = np.where((m < 0) & (part.max(axis=1) > -np.inf), last_best, m)
        match[:, d] = m
        hit = np.flatnonzero(m >= 0)
        taken[hit, m[hit]] = True
    return match


def coco_match(gt: GroundTruth, dets: Detections) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each detection's COCO outcome per IoU threshold (area "all", 100 detections per image and class).

    -> ``(tp [D, T] bool, ignored [D, T] bool, npos [I, K] int64)``: detections in input order,
    images in ``gt.image_ids`` order, classes in ``gt.cat_ids`` order, ``T`` =
    :data:`COCO_IOU_THRESHOLDS`.  A detection is ignored where it matched an ignored (crowd) GT,
    is unmatched with an area outside the range, or is not among the 100 highest-scoring ones of
    its image and class; otherwise it is a TP or an FP.  ``npos``: non-ignored GT per image and class.

    The IoUs are the engine's own (``COCOeval.ious``: rows are the image-and-class detections in
    descending score order, ties in input order, columns its GT in annotation order), so the match
    cannot round differently from :func:`evaluate_parsed`.
    """
    k, n_img, n_t = max(len(gt.cat_ids), 1), len(gt.image_ids), len(COCO_IOU_THRESHOLDS)
    lo, hi = COCO_AREA_ALL
    g_key = np.searchsorted(gt.image_ids, gt.ann_image) * k + np.searchsorted(gt.cat_ids, gt.ann_cat)
    g_ignore = gt.ann_crowd | (gt.ann_area < lo) | (gt.ann_area > hi)
    npos = np.bincount(g_key[~g_ignore], minlength=n_img * k).reshape(n_img, k)
    d_key = np.searchsorted(gt.image_ids, dets.image_id) * k + np.searchsorted(gt.cat_ids, dets.category_id)
    area = _prediction_areas(dets, gt.iou_type)
    tp = np.zeros((len(dets), n_t), dtype=bool)
    ignored = np.repeat(((area < lo) | (area > hi))[:, None], n_t, axis=1)  # unmatched detections
    order = np.lexsort((-dets.score, d_key))  # by image and class, descending score, ties in input order
    keys, starts, counts = np.unique(d_key[order], return_index=True, return_counts=True)
    rank = np.arange(len(order)) - np.repeat(starts, counts)
    ignored[order[rank >= COCO_MAX_DETS]] = True
    g_order = np.argsort(g_key, kind="stable")
    g_keys, g_starts, g_counts = np.unique(g_key[g_order], return_index=True, return_counts=True)
    pos = np.searchsorted(g_keys, keys)
    with_gt = np.flatnonzero((pos < len(g_keys)) & (g_keys[np.minimum(pos, len(g_keys) - 1)] == keys))
    if len(with_gt) == 0:
        return tp, ignored, npos
    ev = _coco_evaluated(gt, dets)
    for j in with_gt.tolist():
        gi = g_order[g_starts[pos[j]] : g_starts[pos[j]] + g_counts[pos[j]]]  # annotation order
        di = order[starts[j] : starts[j] + min(counts[j], COCO_MAX_DETS)]
        pair = (int(gt.image_ids[keys[j] // k]), int(gt.cat_ids[keys[j] % k]))
        iou = np.asarray(ev.ious[pair], dtype=np.float64).reshape(len(di), len(gi))
        g_sort = np.argsort(g_ignore[gi], kind="stable")  # non-ignored first, as the reference sorts
        ig = g_ignore[gi][g_sort]
        match = coco_greedy_match(iou[:, g_sort], COCO_IOU_THRESHOLDS, ig, gt.ann_crowd[gi][g_sort]).T  # [Dg, T]
        matched = match >= 0
        to_ignored = matched & ig[np.maximum(match, 0)]
        tp[di] = matched & ~to_ignored
        ignored[di] = to_ignored | (~matched & ignored[di])
    return tp, ignored, npos


def pack_flags(flags: np.ndarray) -> np.ndarray:
    """``[D, T] bool`` (``T <= 15``) -> ``[D] int16`` with bit ``t`` set where ``flags[:, t]``."""
    if len(flags) == 0:  # no detections at all (an untrained detector): reshape(0, -1) has no shape to infer
        return np.zeros(0, dtype=np.int16)
    f = np.asarray(flags, dtype=bool).reshape(len(flags), -1)
    return (f.astype(np.int16) << np.arange(f.shape[1], dtype=np.int16)).sum(axis=1, dtype=np.int16)


def unpack_flags(packed: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`pack_flags`: ``[D] int`` -> ``[D, n] bool``."""
    return ((np.asarray(packed, dtype=np.int64)[:, None] >> np.arange(n)) & 1).astype(bool)


def detection_samples(
    gt: GroundTruth, dets: Detections, voc_iou: float = 0.5, voc_legacy_coords: bool = False
) -> dict[str, np.ndarray]:
    """Per-image statistics from which ``bench.metrics.bootstrap`` recomputes mAP, mAP_50, mAP_75, mAP11
    and mAPall on any multiset of the images, without matching again (matching is per image).

    Images (``N``, in ``gt.image_ids`` order) and classes (``K``, ``gt.cat_ids`` order):

    * ``image_id [N] int64``: COCO image ids;
    * ``coco_npos, voc_npos [N, K] int32``: non-ignored GT (COCO: not crowd; VOC: not crowd, not difficult).

    Detections (``D``, in input order, which breaks score ties as the evaluator does):

    * ``det_image [D] int32`` (index into ``image_id``), ``det_class [D] int32``;
    * ``det_score [D]``: float32 when that is exact, else float64;
    * ``coco_tp, coco_ignored [D] int16``: bit ``t`` = TP / ignored at :data:`COCO_IOU_THRESHOLDS`
      ``[t]`` (see :func:`coco_match`);
    * ``voc_tp, voc_ignored [D] bool``: the VOC devkit's outcome at ``voc_iou`` (ignored = matched
      a crowd or difficult GT).
    """
    tp, ignored, coco_npos = coco_match(gt, dets)
    m = _voc_match(gt, dets, voc_legacy_coords)
    order, vtp = voc_assign(m.d_cls, dets.score, m.best_iou, m.best_gt, np.append(m.gt_ignore, False), voc_iou)
    voc_tp, voc_ignored = np.zeros(len(dets), dtype=bool), np.ones(len(dets), dtype=bool)
    voc_tp[order], voc_ignored[order] = vtp, False
    k, n_img = max(len(gt.cat_ids), 1), len(gt.image_ids)
    voc_npos = np.bincount((m.g_img * k + m.g_cls)[~m.gt_ignore], minlength=n_img * k).reshape(n_img, k)
    score32 = dets.score.astype(np.float32)
    return {
        "image_id": gt.image_ids.copy(),
        "coco_npos": coco_npos.astype(np.int32),
        "voc_npos": voc_npos.astype(np.int32),
        "det_image": m.d_img.astype(np.int32),
        "det_class": m.d_cls.astype(np.int32),
        "det_score": score32 if np.array_equal(score32, dets.score) else dets.score.copy(),
        "coco_tp": pack_flags(tp),
        "coco_ignored": pack_flags(ignored),
        "voc_tp": voc_tp,
        "voc_ignored": voc_ignored,
    }


def evaluate_parsed(
    gt: GroundTruth, dets: Detections, voc_iou: float = 0.5, voc_legacy_coords: bool = False
) -> dict[str, Any]:
    """:func:`evaluate_coco` on already validated inputs (what the accumulator calls)."""
    if not 0.0 <= voc_iou < 1.0:
        raise MetricInputError(f"voc_iou must be in [0, 1), got {voc_iou!r}")
    stats, precision = _coco_engine(gt, dets)
    voc = voc_evaluate(gt, dets, voc_iou, voc_legacy_coords)
    result: dict[str, Any] = {key: _none_if_negative(v) for key, v in zip(COCO_STAT_KEYS, stats, strict=True)}
    ap11 = [v.ap11 for v in voc if v.ap11 is not None]
    apall = [v.apall for v in voc if v.apall is not None]
    result["mAP11"] = float(np.mean(ap11)) if ap11 else None
    result["mAPall"] = float(np.mean(apall)) if apall else None
    counts = np.bincount(np.searchsorted(gt.cat_ids, dets.category_id), minlength=len(gt.cat_ids))
    per_class: dict[str, Any] = {}
    for k, name in enumerate(gt.cat_names):
        # precision[T, R, K, A, M]: area "all" is index 0, maxDets=100 is the last index.
        p = precision[:, :, k, 0, -1] if precision.size else np.full((1, 1), -1.0)
        curve = interpolated_precision(voc[k].recall, voc[k].precision, CURVE_RECALLS)
        per_class[name] = {
            "category_id": int(gt.cat_ids[k]),
            "num_gt": int(voc[k].npos),
            "num_pred": int(counts[k]),
            "AP": _mean_valid(p),
            "AP50": _mean_valid(p[0]),
            "AP11": voc[k].ap11,
            "APall": voc[k].apall,
            "pr_curve": {"recall": CURVE_RECALLS.tolist(), "precision": curve.tolist()},
        }
    result["per_class"] = per_class
    result["iou_type"] = gt.iou_type
    result["voc_iou"] = float(voc_iou)
    result["voc_legacy_coords"] = bool(voc_legacy_coords)
    result["spec"] = METRIC_SPEC
    return result


@register_metric(
    "coco_detection",
    task="detection",
    reduction="COCO: macro mean over classes (and IoU .50:.05:.95) of dataset-level 101-point AP; "
    "VOC mAP11/mAPall: macro mean over classes with GT of dataset-level AP",
    higher_is_better=True,
    description="COCO AP/AR (pycocotools-exact) plus VOC 11-point and all-point mAP",
)
def evaluate_coco(
    gt: dict[str, Any],
    preds: list[dict[str, Any]],
    iou_type: str = "bbox",
    voc_iou: float = 0.5,
    voc_legacy_coords: bool = False,
) -> dict[str, Any]:
    """All detection metrics of a COCO ground truth and a COCO results list.

    Returns ``mAP, mAP_50, mAP_75, mAP_small, mAP_medium, mAP_large, AR_1, AR_10, AR_100, AR_small,
    AR_medium, AR_large`` (pycocotools' ``stats``; None where it gives -1), ``mAP11`` and ``mAPall``
    (VOC at ``voc_iou``), ``per_class`` (category name -> ``AP`` (COCO .50:.95), ``AP50`` (COCO),
    ``AP11``, ``APall`` (VOC), ``pr_curve`` (VOC curve: max precision at recall >= r for r in
    0, 0.01, ..., 1), ``num_gt`` (non-crowd), ``num_pred``), and ``spec``.  Inputs are not modified.
    """
    parsed = parse_ground_truth(gt, iou_type)
    return evaluate_parsed(parsed, parse_predictions(preds, parsed), voc_iou, voc_legacy_coords)
