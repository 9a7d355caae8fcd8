"""Classification and verification metrics (pure NumPy).

Classification reductions: ``top1``/``top5`` and ``micro_*`` are **micro** (over samples);
``macro_*`` are the **unweighted mean over classes** of per-class values, with undefined (0/0)
classes left out.  ``top5`` is None when there are fewer than 5 classes: top-5 would be
trivially 1.0 and comparing it with real top-5 numbers would mislead.

Verification (pairs with a similarity score, higher = more likely "same"): ROC AUC (ties count
1/2, as Mann-Whitney U), EER, and accuracy at a threshold chosen on a *validation* split with
:func:`choose_threshold` (predict "same" when ``score >= threshold``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.metrics import METRIC_SPEC, MetricInputError, register_metric


def _opt(v: float) -> float | None:
    return None if np.isnan(v) else float(v)


def _nanmean(x: np.ndarray) -> float | None:
    v = x[~np.isnan(x)]
    return float(v.mean()) if v.size else None


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def check_scores_labels(scores: np.ndarray, labels: np.ndarray, num_classes: int) -> None:
    """Validate ``scores: [N, C] float`` and ``labels: [N] int``; errors name the bad sample."""
    if scores.ndim != 2 or scores.shape[1] != num_classes:
        raise MetricInputError(f"scores must be [N, {num_classes}], got shape {scores.shape}")
    if labels.shape != (scores.shape[0],):
        raise MetricInputError(f"labels must be [{scores.shape[0]}], got shape {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise MetricInputError(f"labels must be integers, got dtype {labels.dtype}")
    bad = np.flatnonzero(~np.isfinite(scores).all(axis=1))
    if len(bad):
        raise MetricInputError(f"sample #{bad[0]}: scores contain NaN or inf")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        raise MetricInputError(f"sample #{bad[0]}: label {int(labels[bad[0]])} is outside [0, {num_classes})")


def topk_correct(scores: np.ndarray, labels: np.ndarray, k: int) -> int:
    """Number of samples whose label is among the ``k`` highest scores: ``[N, C]``, ``[N]`` -> int.

    A sample is a hit when fewer than ``k`` classes score *strictly* higher than its label, so an
    exact tie never depends on class order (scikit-learn's ``top_k_accuracy_score`` breaks ties by
    class index instead; the two agree whenever scores are distinct).
    """
    true = scores[np.arange(len(labels)), labels]
    higher = (scores > true[:, None]).sum(axis=1)
    return int((higher < k).sum())


def confusion_from_scores(scores: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Top-1 confusion matrix ``[C, C] int64`` (rows = true, cols = argmax prediction, first on ties)."""
    pred = np.argmax(scores, axis=1)
    flat = labels.astype(np.int64) * num_classes + pred
    return np.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def from_counts(
    confmat: np.ndarray, top5_correct: int | None, class_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Result dict from a top-1 confusion matrix ``[C, C]`` and the top-5 hit count."""
    cm = np.asarray(confmat, dtype=np.int64)
    c = cm.shape[0]
    n = int(cm.sum())
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    micro = tp.sum() / n if n else np.nan  # single-label: micro P = micro R = micro F1 = accuracy
    names: list[Any] = list(class_names) if class_names is not None else list(range(c))
    if len(names) != c:
        raise MetricInputError(f"{len(names)} class names for {c} classes")
    return {
        "top1": _opt(micro),
        "top5": None if top5_correct is None or c < 5 or n == 0 else top5_correct / n,
        "macro_precision": _nanmean(precision),
        "macro_recall": _nanmean(recall),
        "macro_f1": _nanmean(f1),
        "micro_precision": _opt(micro),
        "micro_recall": _opt(micro),
        "micro_f1": _opt(micro),
        "per_class": {
            names[k]: {"precision": _opt(precision[k]), "recall": _opt(recall[k]), "f1": _opt(f1[k]),
                       "support": int(tp[k] + fn[k])}
            for k in range(c)
        },
        "confusion_matrix": cm.tolist(),
        "num_samples": n,
        "spec": METRIC_SPEC,
    }


@register_metric(
    "classification",
    task="classification",
    reduction="top1/top5/micro_*: micro over samples; macro_*: mean over classes (0/0 left out)",
    higher_is_better=True,
    description="top-1/top-5 accuracy, per-class and macro/micro precision, recall, F1, confusion matrix",
)
def classification_metrics(
    scores: np.ndarray, labels: np.ndarray, class_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """All classification metrics of ``scores: [N, C] float`` and ``labels: [N] int``.

    Keys: ``top1, top5, macro_precision, macro_recall, macro_f1, micro_precision, micro_recall,
    micro_f1, per_class, confusion_matrix, num_samples, spec``.
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    c = scores.shape[1] if scores.ndim == 2 else 0
    check_scores_labels(scores, labels, c)
    top5 = topk_correct(scores, labels, 5) if c >= 5 else None
    return from_counts(confusion_from_scores(scores, labels, c), top5, class_names)


# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------


def check_pairs(scores: np.ndarray, same: np.ndarray) -> None:
    """Validate ``scores: [N] float`` and ``same: [N] bool``; errors name the bad pair."""
    if scores.ndim != 1 or same.shape != scores.shape:
        raise MetricInputError(f"scores and same must both be [N], got {scores.shape} and {same.shape}")
    bad = np.flatnonzero(~np.isfinite(scores))
    if len(bad):
        raise MetricInputError(f"pair #{bad[0]}: score is {scores[bad[0]]}")
    if same.dtype != bool and not np.isin(same, (0, 1)).all():
        i = int(np.flatnonzero(~np.isin(same, (0, 1)))[0])
        raise MetricInputError(f"pair #{i}: 'same' must be boolean, got {same[i]!r}")


def roc_curve(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points at every distinct threshold: ``(fpr [T+1], tpr [T+1], thresholds [T])``.

    Point ``i > 0`` is "predict same when ``score >= thresholds[i-1]``" (thresholds descending);
    point 0 is (0, 0).
    """
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], same[order].astype(bool)
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    tpr = np.r_[0.0, tps / pos] if pos else np.full(len(last) + 1, np.nan)
    fpr = np.r_[0.0, fps / neg] if neg else np.full(len(last) + 1, np.nan)
    return fpr, tpr, s[last]


def roc_auc(scores: np.ndarray, same: np.ndarray) -> float | None:
    """Area under the ROC curve (trapezoids, so tied scores count 1/2); None without both classes."""
    scores, same = np.asarray(scores, np.float64), np.asarray(same).astype(bool)
    if same.all() or not same.any():
        return None
    fpr, tpr, _ = roc_curve(scores, same)
    return float(np.trapezoid(tpr, fpr))


def eer(scores: np.ndarray, same: np.ndarray) -> float | None:
    """Equal error rate: where FPR = FNR on the ROC curve, linearly interpolated between points.

    None without both classes.
    """
    scores, same = np.asarray(scores, np.float64), np.asarray(same).astype(bool)
    if same.all() or not same.any():
        return None
    fpr, tpr, _ = roc_curve(scores, same)
    fnr = 1.0 - tpr
    d = fnr - fpr  # non-increasing from 1 to -1 along the curve
    i = int(np.flatnonzero(d <= 0)[0])
    if d[i] == 0 or i == 0:
        return float(fpr[i])
    # Segment (i-1, i) crosses d = 0; interpolate fpr there (fpr = fnr at the crossing).
    t = d[i - 1] / (d[i - 1] - d[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def choose_threshold(val_scores: np.ndarray, val_labels: np.ndarray) -> float:
    """Threshold maximising accuracy of ``score >= threshold`` on validation pairs.

    Candidates are midpoints between consecutive distinct scores plus one below/above the range;
    the first (highest) best candidate wins, which makes the choice deterministic.
    """
    s, y = np.asarray(val_scores, np.float64), np.asarray(val_labels)
    check_pairs(s, y)
    if len(s) == 0:
        raise MetricInputError("choose_threshold needs at least one validation pair")
    y = y.astype(bool)
    u = np.unique(s)[::-1]  # descending
    cand = np.r_[u[0] + 1.0, (u[:-1] + u[1:]) / 2, u[-1] - 1.0]
    # correct(t) = #(same & s >= t) + #(~same & s < t), for all candidates by sorting once.
    pos_sorted = np.sort(s[y])
    neg_sorted = np.sort(s[~y])
    tp = len(pos_sorted) - np.searchsorted(pos_sorted, cand, side="left")
    tn = np.searchsorted(neg_sorted, cand, side="left")
    return float(cand[int(np.argmax(tp + tn))])


@register_metric(
    "verification",
    task="verification",
    reduction="micro over pairs; threshold chosen on validation pairs",
    higher_is_better=True,
    description="ROC AUC, EER (lower is better), accuracy at a validation-chosen threshold",
)
def verification_metrics(
    test_scores: np.ndarray, test_labels: np.ndarray, threshold: float | None = None
) -> dict[str, Any]:
    """Verification metrics of ``test_scores: [N] float`` and ``test_labels: [N] bool`` ("same").

    ``threshold`` should come from :func:`choose_threshold` on validation data; without it
    ``accuracy`` and ``threshold`` are None.  Keys: ``roc_auc, eer, accuracy, threshold, spec``.
    """
    s, y = np.asarray(test_scores, np.float64), np.asarray(test_labels)
    check_pairs(s, y)
    y = y.astype(bool)
    acc = None
    if threshold is not None and len(s):
        acc = float(((s >= threshold) == y).mean())
    return {
        "roc_auc": roc_auc(s, y),
        "eer": eer(s, y),
        "accuracy": acc,
        "threshold": None if threshold is None else float(threshold),
        "num_pairs": int(len(s)),
        "spec": METRIC_SPEC,
    }
