"""Semantic-segmentation metrics from confusion matrices (rows = ground truth, cols = prediction).

Reductions:

* ``"dataset"`` (default): one confusion matrix summed over all non-ignored pixels of all images;
  per-class values from its counts; headline = **macro mean over classes** (undefined 0/0 classes
  left out).
* ``"per_image"``: per-class values computed on each image's confusion matrix, averaged **per
  class over the images where they are defined**, then macro-averaged over classes.

``*_fg`` keys are the same macro means with class 0 (background) excluded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.metrics import METRIC_SPEC, MetricInputError, register_metric

#: Per-class metrics, in the order used by the stacked arrays below.
CLASS_METRICS: tuple[str, ...] = ("dice", "jaccard", "sensitivity", "specificity", "precision", "f1")
REDUCTIONS = ("dataset", "per_image")


def confusion_matrix(
    pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int = 255
) -> np.ndarray:
    """Confusion matrix of label maps: ``pred, target: [...] int`` (same shape) -> ``[K, K] int64``.

    Pixels whose target is ``ignore_index`` are skipped.  Any other label outside ``[0, K)``, in
    target or prediction, is an error: dropping it would silently change the metric.
    """
    return confusion_matrices(pred.reshape(1, -1), target.reshape(1, -1), num_classes, ignore_index)[0]


def confusion_matrices(
    pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int = 255
) -> np.ndarray:
    """One confusion matrix per image: ``pred, target: [N, ...] int`` -> ``[N, K, K] int64``.

    A single ``np.bincount`` over ``(image * K + target) * K + pred`` does all images at once.
    """
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise MetricInputError(f"prediction shape {pred.shape} != target shape {target.shape}")
    if pred.dtype.kind not in "iu" or target.dtype.kind not in "iu":
        raise MetricInputError(f"label maps must be integer arrays, got {pred.dtype} and {target.dtype}")
    k = int(num_classes)
    n = pred.shape[0] if pred.ndim else 1
    t = target.reshape(n, -1)
    p = pred.reshape(n, -1)
    keep = t != ignore_index
    for name, arr, mask in (("target", t, keep), ("prediction", p, keep)):
        bad = mask & ((arr < 0) | (arr >= k))
        if bad.any():
            img, pix = np.argwhere(bad)[0]
            raise MetricInputError(
                f"image #{img}: {name} label {int(arr[img, pix])} at flat pixel {pix} is outside "
                f"[0, {k}) and is not ignore_index={ignore_index}"
            )
    img_idx = np.broadcast_to(np.arange(n, dtype=np.int64)[:, None], t.shape)[keep]
    flat = (img_idx * k + t[keep].astype(np.int64)) * k + p[keep].astype(np.int64)
    return np.bincount(flat, minlength=n * k * k).reshape(n, k, k)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with NaN where ``den == 0`` (0/0 is undefined, not 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def class_metrics(confmat: np.ndarray) -> np.ndarray:
    """Per-class metrics of ``confmat: [..., K, K]`` -> ``[..., 6, K]`` float (NaN where 0/0).

    Order: :data:`CLASS_METRICS`.  F1 equals Dice for single-label segmentation; both are kept
    because reports use either name.
    """
    cm = np.asarray(confmat, dtype=np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    fp = cm.sum(axis=-2) - tp  # predicted as k, labelled otherwise
    fn = cm.sum(axis=-1) - tp
    tn = cm.sum(axis=(-2, -1))[..., None] - tp - fp - fn
    dice = _ratio(2 * tp, 2 * tp + fp + fn)
    return np.stack([
        dice,
        _ratio(tp, tp + fp + fn),
        _ratio(tp, tp + fn),
        _ratio(tn, tn + fp),
        _ratio(tp, tp + fp),
        dice.copy(),
    ], axis=-2)


def _opt(v: float) -> float | None:
    return None if np.isnan(v) else float(v)


def _nanmean(x: np.ndarray) -> float | None:
    v = x[~np.isnan(x)]
    return float(v.mean()) if v.size else None


def summarize(
    per_class: np.ndarray,
    pixel_accuracy: float | None,
    reduction: str,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Result dict from per-class values ``per_class: [6, K]`` (NaN = undefined)."""
    k = per_class.shape[1]
    names: list[Any] = list(class_names) if class_names is not None else list(range(k))
    if len(names) != k:
        raise MetricInputError(f"{len(names)} class names for {k} classes")
    out: dict[str, Any] = {}
    for i, m in enumerate(CLASS_METRICS):
        out[m] = _nanmean(per_class[i])
    out["pixel_accuracy"] = pixel_accuracy
    for i, m in enumerate(CLASS_METRICS):
        out[f"{m}_fg"] = _nanmean(per_class[i, 1:])
    out["per_class"] = {
        names[c]: {m: _opt(per_class[i, c]) for i, m in enumerate(CLASS_METRICS)} for c in range(k)
    }
    out["reduction"] = reduction
    out["spec"] = METRIC_SPEC
    return out


def per_image_sums(confmats: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Additive state of the per-image reduction for ``confmats: [N, K, K]``.

    Returns ``(sums [6, K], counts [6, K], accuracy_sum, images_with_pixels)``: per class, the sum
    of each metric over the images where it is defined and how many those are.  Sums of these over
    workers equal the sums over all images, which is what makes the reduction mergeable.
    """
    per_image = class_metrics(confmats)  # [N, 6, K]
    defined = ~np.isnan(per_image)
    sums = np.where(defined, per_image, 0.0).sum(axis=0)
    n_pix = confmats.sum(axis=(1, 2))
    accs = np.trace(confmats, axis1=1, axis2=2)[n_pix > 0] / n_pix[n_pix > 0]
    return sums, defined.sum(axis=0).astype(np.int64), float(accs.sum()), int(accs.size)


def per_image_jaccard(confmats: np.ndarray) -> np.ndarray:
    """Each image's mean IoU: ``confmats [N, K, K]`` -> ``[N]``, the mean over the classes present
    in the image's target or prediction (NaN for an image without counted pixels)."""
    iou = class_metrics(confmats)[:, CLASS_METRICS.index("jaccard")]  # [N, K]
    defined = ~np.isnan(iou)
    total = np.where(defined, iou, 0.0).sum(axis=1)
    return _ratio(total, defined.sum(axis=1).astype(np.float64))


def background_confmats(confmats: np.ndarray) -> np.ndarray:
    """What predicting class 0 (background) everywhere gives: ``[..., K, K]`` -> ``[..., K, K]``.

    Every pixel keeps its target row and moves to column 0.
    """
    cm = np.asarray(confmats)
    out = np.zeros_like(cm)
    out[..., 0] = cm.sum(axis=-1)
    return out


def from_per_image_sums(
    sums: np.ndarray,
    counts: np.ndarray,
    accuracy_sum: float,
    n_images: int,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Result dict of the ``"per_image"`` reduction from :func:`per_image_sums` state."""
    per_class = np.full(sums.shape, np.nan)
    per_class[counts > 0] = sums[counts > 0] / counts[counts > 0]
    acc = accuracy_sum / n_images if n_images else None
    return summarize(per_class, acc, "per_image", class_names)


def from_confmat(confmat: np.ndarray, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Result dict of the ``"dataset"`` reduction from one ``[K, K]`` confusion matrix."""
    n = confmat.sum()
    acc = float(np.trace(confmat) / n) if n > 0 else None
    out = summarize(class_metrics(confmat), acc, "dataset", class_names)
    out["confusion_matrix"] = np.asarray(confmat, dtype=np.int64).tolist()  # for the trial's plot
    return out


@register_metric(
    "segmentation",
    task="semantic_segmentation",
    reduction="macro mean over classes; per-class counts summed over the dataset (default) or "
    "per-class values averaged over images (reduction='per_image'); 0/0 left out",
    higher_is_better=True,
    description="Dice, Jaccard, sensitivity, specificity, precision, F1, pixel accuracy",
)
def segmentation_metrics(
    confmat: np.ndarray, reduction: str = "dataset", class_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Segmentation metrics of ``confmat: [K, K]`` (dataset) or ``[N, K, K]`` (one per image) int64.

    With ``reduction="dataset"`` a stack ``[N, K, K]`` is summed first; ``"per_image"`` needs the
    stack.  Keys: ``dice, jaccard, sensitivity, specificity, precision, f1, pixel_accuracy``, the
    same six with ``_fg`` (class 0 excluded), ``per_class`` (name or index -> the six, None where
    0/0), ``reduction``, ``spec``.
    """
    cm = np.asarray(confmat)
    if cm.ndim not in (2, 3) or cm.shape[-1] != cm.shape[-2]:
        raise MetricInputError(f"confmat must be [K, K] or [N, K, K], got shape {cm.shape}")
    if (cm < 0).any():
        raise MetricInputError("confmat has negative counts")
    if reduction == "dataset":
        return from_confmat(cm.reshape(-1, cm.shape[-1], cm.shape[-1]).sum(axis=0), class_names)
    if reduction == "per_image":
        if cm.ndim != 3:
            raise MetricInputError("reduction='per_image' needs one confusion matrix per image: [N, K, K]")
        return from_per_image_sums(*per_image_sums(cm), class_names=class_names)
    raise MetricInputError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
