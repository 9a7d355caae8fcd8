"""Bootstrap confidence intervals over test images, from the evaluators' per-image statistics.

Every test evaluator has ``samples()``: arrays whose leading dimension is the test image (or, for
detection, per-detection arrays with an image index), documented per task below.  A resample is a
vector ``counts: [N]`` (image ``i`` taken ``counts[i]`` times); the task's headline metrics of
that multiset are recomputed from the samples by **re-accumulating** the evaluator's sufficient
statistics with the counts as weights, never by re-running matching or inference:

* ``classification``: ``label, pred [N] int``, ``top5 [N] bool`` (only with >= 5 classes) ->
  ``top1, top5, macro_f1`` (``bench.metrics.classification.from_counts``).
* ``semantic_segmentation``: ``confmat [N, K, K] int`` -> ``jaccard, dice, jaccard_fg, dice_fg,
  pixel_accuracy`` (the ``"dataset"`` reduction: the weighted sum of the per-image matrices).
* ``detection``: ``bench.metrics.detection.detection_samples`` -> ``mAP, mAP_50, mAP_75`` (COCO) and
  ``mAP11, mAPall`` (VOC).  Matching inside an image does not depend on the other images, so each
  detection's TP / FP / ignored outcome is fixed; a copy of an image adds its detections and GT
  again.  The PR curve of a class is rebuilt from weighted cumulative sums in the evaluator's
  ranking, with the same interpolation (COCO 101-point, VOC 11-point and all-point).
* ``instance_segmentation``: the detection samples of the boxes, and those of the masks with every
  key prefixed ``mask_`` (``image_id`` shared) -> ``mask_mAP, mask_mAP_50, mask_mAP_75`` (masks) and
  ``mAP, mAP_50, mAP_75`` (boxes), the two resampled with the same image weights.
* ``verification``: ``pair_anchor [P] int`` (the image that owns the pair), ``pair_score [P]``,
  ``pair_same [P] bool``, ``pair_correct [P] bool`` (at the evaluator's fixed threshold, absent
  without one), ``label, pred [N] int`` (nearest class mean, absent without class means) ->
  ``roc_auc, eer, accuracy, top1, macro_f1``.

Every task's samples also carry ``image_id [N] int`` (dataset index or COCO image id), which pairs
the images of two runs in :func:`paired_bootstrap`.

With all counts 1 the metrics equal the evaluator's ``compute()``.  One difference from literally
duplicating images: copies of an image sit next to each other in the ranking, so where detections
of one class *in one image* tie exactly in score, COCO's order of those ties among copies (image
by image) is not reproduced.  Ties across images are.

Resamples are vectorised: the statistics of a chunk of resamples are computed with one weight
matrix ``[B, N]``.  Undefined values (0/0) are NaN inside and None outside.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.metrics.detection import (
    COCO_IOU_THRESHOLDS,
    COCO_RECALLS,
    VOC11_RECALLS,
    unpack_flags,
)
from bench.metrics.segmentation import CLASS_METRICS, class_metrics
from bench.tasks import TASKS

#: Resamples per chunk: bounds the ``[chunk, D]`` weight matrices.  Fixed, because the stream of
#: random draws (and so the interval for a seed) depends on how it is split into chunks.
CHUNK = 250

Samples = Mapping[str, Any]
Batch = dict[str, np.ndarray]


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _row_nanmean(x: np.ndarray) -> np.ndarray:
    """Mean of each row's defined (non-NaN) values: ``[B, M] -> [B]`` (NaN where none).

    One row at a time on purpose: the mean of exactly the defined values, in order, is what the
    evaluators compute, so all-ones counts give the same float, not just a close one.
    """
    out = np.full(len(x), np.nan)
    for b, row in enumerate(x):
        v = row[~np.isnan(row)]
        if v.size:
            out[b] = v.mean()
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with NaN where ``den == 0``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _row_bincount(idx: np.ndarray, w: np.ndarray, size: int) -> np.ndarray:
    """Weighted counts per row: ``idx: [M] int`` in ``[0, size)``, ``w: [B, M]`` -> ``[B, size]``."""
    flat = (np.arange(len(w))[:, None] * size + idx[None, :]).ravel()
    return np.bincount(flat, weights=w.ravel(), minlength=len(w) * size).reshape(len(w), size)


# --------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------


def _classification_counts(label: np.ndarray, pred: np.ndarray, w: np.ndarray) -> Batch:
    """top1 and macro_f1 of top-1 predictions ``pred, label: [N]`` under weights ``w: [B, N]``.

    Same definitions as ``from_counts``: per-class F1 = 2 TP / (2 TP + FP + FN), classes where
    that is 0/0 (neither labelled nor predicted) left out of the macro mean.
    """
    c = int(max(label.max(initial=-1), pred.max(initial=-1))) + 1
    n = w.sum(axis=1)
    tp = _row_bincount(label, w * (label == pred), c)  # [B, C]
    fp = _row_bincount(pred, w, c) - tp
    fn = _row_bincount(label, w, c) - tp
    return {"top1": _ratio(tp.sum(axis=1), n), "macro_f1": _row_nanmean(_ratio(2 * tp, 2 * tp + fp + fn))}


def classification_batch(s: Samples, w: np.ndarray) -> Batch:
    """``top1, top5, macro_f1 [B]`` of classification samples under image weights ``w: [B, N]``."""
    out = _classification_counts(s["label"], s["pred"], w)
    top5 = _ratio((w * s["top5"]).sum(axis=1), w.sum(axis=1)) if "top5" in s else np.full(len(w), np.nan)
    return {"top1": out["top1"], "top5": top5, "macro_f1": out["macro_f1"]}


# --------------------------------------------------------------------------------------------
# Semantic segmentation
# --------------------------------------------------------------------------------------------


def segmentation_batch(s: Samples, w: np.ndarray) -> Batch:
    """``jaccard, dice, jaccard_fg, dice_fg, sensitivity_fg, specificity_fg, pixel_accuracy [B]`` (dataset
    reduction) under ``w: [B, N]``."""
    cm = s["confmat"]
    k = cm.shape[-1]
    total = (w @ cm.reshape(len(cm), k * k).astype(np.float64)).reshape(len(w), k, k)  # exact: integer sums
    per_class = class_metrics(total)  # [B, 6, K]
    jac, dice = per_class[:, CLASS_METRICS.index("jaccard")], per_class[:, CLASS_METRICS.index("dice")]
    sens, spec = per_class[:, CLASS_METRICS.index("sensitivity")], per_class[:, CLASS_METRICS.index("specificity")]
    return {
        "jaccard": _row_nanmean(jac),
        "dice": _row_nanmean(dice),
        "jaccard_fg": _row_nanmean(jac[:, 1:]),
        "dice_fg": _row_nanmean(dice[:, 1:]),
        "sensitivity_fg": _row_nanmean(sens[:, 1:]),
        "specificity_fg": _row_nanmean(spec[:, 1:]),
        "pixel_accuracy": _ratio(np.trace(total, axis1=1, axis2=2), total.sum(axis=(1, 2))),
    }


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Curves:
    """A class's PR curves under ``B`` weightings, one point per TP detection (``P`` of them).

    Precision peaks at TP detections (an FP only lowers it, at unchanged recall), so the
    interpolated precision "max precision at recall >= r" only needs these points.
    """

    tp_cum: np.ndarray  # [B, P] weighted TP count up to and including each TP detection
    recall: np.ndarray  # [B, P]
    envelope: np.ndarray  # [B, P + 1] max precision from each point on (a 0 appended: beyond the curve)


def _curves(w: np.ndarray, cum: np.ndarray, tp: np.ndarray, ignored: np.ndarray, npos: np.ndarray) -> _Curves:
    """PR points of one class: ``w, cum: [B, D]`` weights of its ranked detections and their running
    sum, ``tp, ignored: [D] bool``, ``npos: [B]`` weighted non-ignored GT.

    Counts are sums of integer weights, so ``TP / (TP + FP)`` and ``TP / npos`` are the very
    floats the evaluator divides.  Ignored detections weigh nothing; so do images drawn 0 times,
    whose TP points repeat the previous point's recall at a precision no higher than an existing
    point's, which leaves every interpolated value unchanged.
    """
    pts, ign = np.flatnonzero(tp), np.flatnonzero(ignored)
    tp_cum = np.cumsum(w[:, pts], axis=1)
    ign_cum = np.concatenate([np.zeros((len(w), 1)), np.cumsum(w[:, ign], axis=1)], axis=1)
    ranked = cum[:, pts] - ign_cum[:, np.searchsorted(ign, pts)]  # TP + FP up to each TP detection
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(ranked > 0, tp_cum / np.where(ranked > 0, ranked, 1), 0.0)
        recall = tp_cum / np.where(npos > 0, npos, 1)[:, None]
    env = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    return _Curves(tp_cum, recall, np.concatenate([env, np.zeros((len(w), 1))], axis=1))


def _first_reaching(c: _Curves, npos: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Index of the first point with recall >= each level: ``[B, L]`` (``P`` where none does).

    Exactly the evaluator's ``searchsorted(recall, levels, "left")``, vectorised over rows: recall
    ``TP / npos`` is monotone in the integer ``TP``, so "recall >= r" is "TP >= m_r", ``m_r`` the
    least integer whose float quotient reaches ``r``; integer keys offset per row are then one
    sorted array.
    """
    n = np.where(npos > 0, npos, 1)[:, None]
    m = np.ceil(levels[None, :] * n)
    for _ in range(2):  # correct the product's rounding against the quotient the evaluator forms
        m = np.where((m >= 1) & ((m - 1) / n >= levels), m - 1, m)
        m = np.where(m / n < levels, m + 1, m)
    b, p = c.tp_cum.shape
    stride = max(float(c.tp_cum.max(initial=0.0)), float(m.max(initial=0.0))) + 1.0
    offset = np.arange(b, dtype=np.float64)[:, None] * stride  # exact: integers far below 2**53
    first = np.searchsorted((c.tp_cum + offset).ravel(), (m + offset).ravel(), side="left").reshape(m.shape)
    return first - np.arange(b)[:, None] * p


def _interpolated(c: _Curves, npos: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Max precision at recall >= each level (0 where no point reaches it): ``[B, L]``."""
    return np.take_along_axis(c.envelope, _first_reaching(c, npos, levels), axis=1)


def _all_point_ap(c: _Curves) -> np.ndarray:
    """VOC all-point AP: the area under the precision envelope, ``sum (r_i - r_{i-1}) * env_i``: ``[B]``."""
    b, p = c.recall.shape
    prev = np.concatenate([np.zeros((b, 1)), c.recall[:, :-1]], axis=1)
    terms = np.concatenate([(c.recall - prev) * c.envelope[:, :-1], np.zeros((b, 1))], axis=1)
    # The devkit also sums the closing segment to recall 1 (at precision 0) when the curve stops
    # short of it.  That term is 0, but it changes how NumPy groups the float sum, so it is kept
    # (row by row) and all-ones counts give the devkit's float exactly.
    last = c.recall[:, -1] if p else np.zeros(b)
    n_terms = p + (last < 1.0)
    return np.array([row[:n].sum() for row, n in zip(terms, n_terms.tolist(), strict=True)])


def _mean_over_valid_classes(q: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """COCO's summary mean over ``q: [B, T, R, K]`` restricted to classes with GT (``valid: [B, K]``).

    Row by row, flattened in the evaluator's ``[T, R, K]`` order, so all-ones counts give its float.
    """
    out = np.full(len(q), np.nan)
    for b in range(len(q)):
        v = q[b][..., valid[b]].ravel()
        if v.size:
            out[b] = v.mean()
    return out


def detection_batch(s: Samples, w: np.ndarray) -> Batch:
    """``mAP, mAP_50, mAP_75, mAP11, mAPall [B]`` of detection samples under image weights ``w: [B, N]``."""
    n_t, k = len(COCO_IOU_THRESHOLDS), s["coco_npos"].shape[1]
    det_w = w[:, s["det_image"]]  # [B, D]
    coco_tp, coco_ig = unpack_flags(s["coco_tp"], n_t), unpack_flags(s["coco_ignored"], n_t)
    coco_npos, voc_npos = w @ s["coco_npos"].astype(np.float64), w @ s["voc_npos"].astype(np.float64)  # [B, K]
    q = np.zeros((len(w), n_t, len(COCO_RECALLS), k))
    ap11, apall = np.full((len(w), k), np.nan), np.full((len(w), k), np.nan)
    cls, score, image = s["det_class"], s["det_score"], s["det_image"]
    for c in range(k):
        idx = np.flatnonzero(cls == c)
        # COCO ranks a class's detections by score, ties by image then input order; VOC by input order.
        coco_rank = idx[np.lexsort((idx, image[idx], -score[idx]))]
        wc = det_w[:, coco_rank]
        cum = np.cumsum(wc, axis=1)
        for t in range(n_t):
            curves = _curves(wc, cum, coco_tp[coco_rank, t], coco_ig[coco_rank, t], coco_npos[:, c])
            q[:, t, :, c] = _interpolated(curves, coco_npos[:, c], COCO_RECALLS)
        voc_rank = idx[np.argsort(-score[idx], kind="stable")]
        wv = det_w[:, voc_rank]
        curves = _curves(wv, np.cumsum(wv, axis=1), s["voc_tp"][voc_rank], s["voc_ignored"][voc_rank], voc_npos[:, c])
        has_gt = voc_npos[:, c] > 0
        ap11[has_gt, c] = np.mean(_interpolated(curves, voc_npos[:, c], VOC11_RECALLS), axis=1)[has_gt]
        apall[has_gt, c] = _all_point_ap(curves)[has_gt]
    valid = coco_npos > 0
    t50, t75 = (int(np.flatnonzero(np.isclose(COCO_IOU_THRESHOLDS, t))[0]) for t in (0.5, 0.75))
    return {
        "mAP": _mean_over_valid_classes(q, valid),
        "mAP_50": _mean_over_valid_classes(q[:, t50 : t50 + 1], valid),
        "mAP_75": _mean_over_valid_classes(q[:, t75 : t75 + 1], valid),
        "mAP11": _row_nanmean(ap11),
        "mAPall": _row_nanmean(apall),
    }


#: Prefix of the mask samples and metrics of instance segmentation (``bench.evaluators.instance_segmentation``).
MASK = "mask_"


def instance_segmentation_batch(s: Samples, w: np.ndarray) -> Batch:
    """The instance-segmentation headline metrics ``[B]`` (see ``bench.tasks``) under image weights ``w: [B, N]``:
    :func:`detection_batch` on the box samples and, prefixed ``mask_``, on the mask samples."""
    box = detection_batch(s, w)
    mask_samples = {k[len(MASK):]: v for k, v in s.items() if k.startswith(MASK)}
    mask = {MASK + k: v for k, v in detection_batch(mask_samples, w).items()}
    both = {**box, **mask}
    return {k: both[k] for k in TASKS.get("instance_segmentation").meta.headline_metrics}


# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------


def _roc_batch(score: np.ndarray, same: np.ndarray, w: np.ndarray) -> Batch:
    """``roc_auc, eer [B]`` of pairs ``score, same: [P]`` with pair weights ``w: [B, P]``.

    ``bench.metrics.classification.roc_curve`` / ``roc_auc`` / ``eer`` with weighted counts: one
    ROC point per distinct score, trapezoid area, EER interpolated where FNR - FPR crosses 0.
    """
    order = np.argsort(-score, kind="stable")
    s, y, ws = score[order], same[order].astype(bool), w[:, order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
    tps, fps = np.cumsum(ws * y, axis=1)[:, last], np.cumsum(ws * ~y, axis=1)[:, last]
    pos, neg = tps[:, -1:], fps[:, -1:]
    both = (pos[:, 0] > 0) & (neg[:, 0] > 0)
    zero = np.zeros((len(w), 1))
    tpr = np.concatenate([zero, tps / np.where(pos > 0, pos, 1)], axis=1)
    fpr = np.concatenate([zero, fps / np.where(neg > 0, neg, 1)], axis=1)
    auc = np.where(both, np.trapezoid(tpr, fpr, axis=1), np.nan)
    d = (1.0 - tpr) - fpr  # non-increasing from 1 to -1
    i = np.argmax(d <= 0, axis=1)
    rows = np.arange(len(w))
    j = np.maximum(i - 1, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = d[rows, j] / (d[rows, j] - d[rows, i])
    crossing = fpr[rows, j] + t * (fpr[rows, i] - fpr[rows, j])
    eer = np.where((d[rows, i] == 0) | (i == 0), fpr[rows, i], crossing)
    return {"roc_auc": auc, "eer": np.where(both, eer, np.nan)}


def verification_batch(s: Samples, w: np.ndarray) -> Batch:
    """``roc_auc, eer, accuracy, top1, macro_f1 [B]`` of embedding samples under image weights ``w: [B, N]``.

    A pair counts as many times as its anchor image.
    """
    nan = np.full(len(w), np.nan)
    pw = w[:, s["pair_anchor"]] if "pair_anchor" in s else np.zeros((len(w), 0))  # [B, P]
    out = _roc_batch(s["pair_score"], s["pair_same"], pw) if pw.shape[1] else {"roc_auc": nan, "eer": nan}
    out["accuracy"] = _ratio((pw * s["pair_correct"]).sum(axis=1), pw.sum(axis=1)) if "pair_correct" in s else nan
    if "pred" in s:
        out.update(_classification_counts(s["label"], s["pred"], w))
    else:
        out.update(top1=nan, macro_f1=nan)
    return out


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------

#: task -> its metrics under a weight matrix ``[B, N]``.
_BATCH: dict[str, Callable[[Samples, np.ndarray], Batch]] = {
    "classification": classification_batch,
    "semantic_segmentation": segmentation_batch,
    "detection": detection_batch,
    "instance_segmentation": instance_segmentation_batch,
    "verification": verification_batch,
}
#: task -> its headline metrics, in the order they are returned: read from the task registry
#: (``bench.tasks``, the one place they are named) for the tasks that can be resampled.
TASK_METRICS: dict[str, tuple[str, ...]] = {t: TASKS.get(t).meta.headline_metrics for t in _BATCH}
#: task -> the dtype of each sample array its metrics read (stored samples are JSON lists).
_DETECTION_DTYPES: dict[str, Any] = {
    "coco_npos": np.int64, "voc_npos": np.int64, "det_image": np.int64, "det_class": np.int64,
    "det_score": np.float64, "coco_tp": np.int64, "coco_ignored": np.int64, "voc_tp": bool, "voc_ignored": bool,
}
_DTYPES: dict[str, dict[str, Any]] = {
    "classification": {"label": np.int64, "pred": np.int64, "top5": bool},
    "semantic_segmentation": {"confmat": np.int64},
    "detection": _DETECTION_DTYPES,
    "instance_segmentation": {**_DETECTION_DTYPES, **{MASK + k: v for k, v in _DETECTION_DTYPES.items()}},
    "verification": {
        "pair_anchor": np.int64, "pair_score": np.float64, "pair_same": bool, "pair_correct": bool,
        "label": np.int64, "pred": np.int64,
    },
}
#: Sample arrays whose leading dimension is the image (the others index images: det_image, pair_anchor).
_PER_IMAGE = {"label", "pred", "top5", "confmat", "coco_npos", "voc_npos", "mask_coco_npos", "mask_voc_npos"}


@dataclass(frozen=True)
class PairedBootstrap:
    """Candidate minus base on the same test images, with a percentile bootstrap CI.

    ``delta``: mean over candidate seeds minus mean over base seeds of the metric on the paired
    images; ``[low, high]``: its CI; ``n_images``: images paired by ``image_id``.
    """

    delta: float
    low: float
    high: float
    n_images: int
    n_base_seeds: int
    n_cand_seeds: int


def load_samples(task: str, samples: Samples) -> dict[str, np.ndarray]:
    """Samples as stored (NumPy arrays or JSON lists) -> arrays of the right dtypes, checked.

    Raises ``ValueError`` for an unknown task, no images, or an array whose length disagrees with
    ``image_id``.
    """
    if task not in _BATCH:
        raise ValueError(f"no per-image resampling for task {task!r}; known: {sorted(_BATCH)}")
    if "image_id" not in samples:
        raise ValueError(f"{task} samples: missing 'image_id'")
    out = {"image_id": np.asarray(samples["image_id"], dtype=np.int64).reshape(-1)}
    n = len(out["image_id"])
    if n == 0:
        raise ValueError(f"{task} samples: no images")
    for key, dtype in _DTYPES[task].items():
        if key in samples:
            out[key] = np.asarray(samples[key], dtype=dtype)
            if key in _PER_IMAGE and len(out[key]) != n:
                raise ValueError(f"{task} samples: {key!r} has {len(out[key])} rows for {n} images")
    for key in ("det_image", "mask_det_image", "pair_anchor"):
        if key in out and len(out[key]) and not 0 <= out[key].min() <= out[key].max() < n:
            raise ValueError(f"{task} samples: {key!r} indexes outside the {n} images")
    return out


def resample_metrics_batch(task: str, samples: Samples, counts: np.ndarray) -> dict[str, np.ndarray]:
    """The task's headline metrics for each row of ``counts: [B, N]`` (image ``i`` taken
    ``counts[b, i]`` times) -> ``{metric: [B]}``, NaN where undefined."""
    s = load_samples(task, samples)
    w = np.asarray(counts, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != len(s["image_id"]):
        raise ValueError(f"counts must be [B, {len(s['image_id'])}], got shape {w.shape}")
    if (w < 0).any():
        raise ValueError("counts must be >= 0")
    return _BATCH[task](s, w)


def resample_metrics(task: str, samples: Samples, counts: np.ndarray) -> dict[str, float | None]:
    """The task's headline metrics on the multiset where image ``i`` appears ``counts[i]`` times.

    All-ones counts give the evaluator's ``compute()`` values.
    """
    batch = resample_metrics_batch(task, samples, np.asarray(counts)[None, :])
    return {k: None if np.isnan(v[0]) else float(v[0]) for k, v in batch.items()}


def _draw_counts(rng: np.random.Generator, b: int, n: int) -> np.ndarray:
    """``b`` bootstrap resamples of ``n`` images as counts ``[b, n]`` (n draws with replacement each)."""
    idx = rng.integers(0, n, size=(b, n))
    flat = (np.arange(b)[:, None] * n + idx).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n)


def _percentile_interval(values: np.ndarray, level: float) -> tuple[float, float] | None:
    """Percentile interval of the defined values (resamples where the metric is 0/0 are left out)."""
    v = values[~np.isnan(values)]
    if not v.size:
        return None
    low, high = np.quantile(v, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def _check(n_boot: int, level: float) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")


def bootstrap_ci(
    task: str, samples: Samples, n_boot: int, seed: int, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap CI of each headline metric over test images (seeded, reproducible).

    Metrics that are None on all the images are left out; resamples where a metric is undefined
    (e.g. no positive pair drawn) do not count towards its percentiles.
    """
    _check(n_boot, level)
    s = load_samples(task, samples)
    n = len(s["image_id"])
    point = resample_metrics(task, s, np.ones(n))
    keys = [k for k, v in point.items() if v is not None]
    rng = np.random.default_rng(seed)
    values: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for start in range(0, n_boot, CHUNK):
        batch = _BATCH[task](s, _draw_counts(rng, min(CHUNK, n_boot - start), n).astype(np.float64))
        for k in keys:
            values[k].append(batch[k])
    out = {k: _percentile_interval(np.concatenate(values[k]), level) for k in keys}
    return {k: v for k, v in out.items() if v is not None}


def _pairing(runs: list[dict[str, np.ndarray]]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Image ids common to every run, and each run's positions of them: ``([M], [[M], ...])``."""
    for i, r in enumerate(runs):
        if len(np.unique(r["image_id"])) != len(r["image_id"]):
            raise ValueError(f"run #{i}: duplicate image_id values; samples must list each image once")
    common = runs[0]["image_id"]
    for r in runs[1:]:
        common = np.intersect1d(common, r["image_id"])
    common = np.unique(common)
    positions = []
    for r in runs:
        order = np.argsort(r["image_id"], kind="stable")
        positions.append(order[np.searchsorted(r["image_id"][order], common)])
    return common, positions


def _expand(counts: np.ndarray, positions: np.ndarray, n: int) -> np.ndarray:
    """Counts over the paired images ``[B, M]`` -> a run's weights ``[B, n]`` (0 for unpaired images)."""
    w = np.zeros((len(counts), n))
    w[:, positions] = counts
    return w


def paired_bootstrap(
    task: str, base: list[Samples], cand: list[Samples], metric: str, n_boot: int, seed: int,
    level: float = 0.95,
) -> PairedBootstrap:
    """Is ``cand`` better than ``base`` on ``metric``?  Paired, hierarchical percentile bootstrap.

    ``base`` and ``cand`` hold one samples dict per seed.  Images are paired by ``image_id`` (the
    ids every run has; ``ValueError`` when there are none).  Each resample draws one set of image
    counts shared by every run (paired: an image's difficulty cancels) and, independently per
    side, the seeds with replacement, so seed-to-seed variation widens the interval when there
    are several seeds; with one seed per side it is the plain paired bootstrap.
    """
    _check(n_boot, level)
    if task not in TASK_METRICS or metric not in TASK_METRICS[task]:
        known = TASK_METRICS.get(task)
        raise ValueError(f"metric {metric!r} is not resampled for task {task!r}; known: {known}")
    if not base or not cand:
        raise ValueError(f"need at least one seed per side, got {len(base)} base and {len(cand)} candidate")
    runs = [load_samples(task, s) for s in (*base, *cand)]
    common, positions = _pairing(runs)
    if not len(common):
        raise ValueError(f"base and candidate share no image_id: the runs were not evaluated on the same test "
                         f"images ({len(runs[0]['image_id'])} base ids, {len(runs[-1]['image_id'])} candidate ids)")
    m, nb = len(common), len(base)

    def metric_of(counts: np.ndarray) -> np.ndarray:  # [R, B]: the metric of every run under each resample
        return np.stack([_BATCH[task](r, _expand(counts, p, len(r["image_id"])))[metric]
                         for r, p in zip(runs, positions, strict=True)])

    point = metric_of(np.ones((1, m)))[:, 0]
    if np.isnan(point).any():
        bad = int(np.flatnonzero(np.isnan(point))[0])
        side = f"base seed #{bad}" if bad < nb else f"candidate seed #{bad - nb}"
        raise ValueError(f"{metric} is undefined on the paired images for {side}")
    rng = np.random.default_rng(seed)
    deltas = []
    for start in range(0, n_boot, CHUNK):
        b = min(CHUNK, n_boot - start)
        counts = _draw_counts(rng, b, m).astype(np.float64)
        pick_base = rng.integers(0, nb, size=(b, nb))
        pick_cand = rng.integers(0, len(cand), size=(b, len(cand)))
        values = metric_of(counts).T  # [b, R]
        base_mean = np.take_along_axis(values[:, :nb], pick_base, axis=1).mean(axis=1)
        cand_mean = np.take_along_axis(values[:, nb:], pick_cand, axis=1).mean(axis=1)
        deltas.append(cand_mean - base_mean)
    interval = _percentile_interval(np.concatenate(deltas), level) or (float("nan"), float("nan"))
    return PairedBootstrap(
        delta=float(point[nb:].mean() - point[:nb].mean()), low=interval[0], high=interval[1], n_images=m,
        n_base_seeds=nb, n_cand_seeds=len(cand),
    )
