"""Segmentation metrics vs a scikit-learn confusion-matrix reference."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from bench.metrics import METRIC_SPEC, MetricInputError
from bench.metrics.segmentation import confusion_matrices, confusion_matrix, segmentation_metrics


def _maps(seed: int, n: int = 3, k: int = 5, h: int = 17, w: int = 23) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = rng.integers(0, k, (n, h, w))
    pred = np.where(rng.random((n, h, w)) < 0.6, target, rng.integers(0, k, (n, h, w)))
    target[rng.random((n, h, w)) < 0.1] = 255
    return pred, target


def _ref_per_class(cm: np.ndarray) -> dict[str, list[float | None]]:
    """Per-class formulas written out from the counts, one class at a time."""
    out: dict[str, list[float | None]] = {m: [] for m in
                                          ("dice", "jaccard", "sensitivity", "specificity", "precision")}
    total = cm.sum()
    for c in range(cm.shape[0]):
        tp = cm[c, c]
        fp = cm[:, c].sum() - tp
        fn = cm[c, :].sum() - tp
        tn = total - tp - fp - fn
        for m, (num, den) in {"dice": (2 * tp, 2 * tp + fp + fn), "jaccard": (tp, tp + fp + fn),
                              "sensitivity": (tp, tp + fn), "specificity": (tn, tn + fp),
                              "precision": (tp, tp + fp)}.items():
            out[m].append(num / den if den else None)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_confusion_matrix_matches_sklearn(seed: int) -> None:
    pred, target = _maps(seed)
    keep = target != 255
    ref = sk_confusion_matrix(target[keep], pred[keep], labels=range(5))
    np.testing.assert_array_equal(confusion_matrix(pred, target, 5), ref)
    per_image = confusion_matrices(pred, target, 5)
    assert per_image.shape == (3, 5, 5)
    for i in range(3):
        k = target[i] != 255
        ref_i = sk_confusion_matrix(target[i][k], pred[i][k], labels=range(5))
        np.testing.assert_array_equal(per_image[i], ref_i)


@pytest.mark.parametrize("seed", range(5))
def test_dataset_metrics_match_reference(seed: int) -> None:
    pred, target = _maps(seed)
    keep = target != 255
    cm = sk_confusion_matrix(target[keep], pred[keep], labels=range(5))
    res = segmentation_metrics(confusion_matrix(pred, target, 5))
    ref = _ref_per_class(cm)
    for m, vals in ref.items():
        assert [res["per_class"][c][m] for c in range(5)] == pytest.approx(vals, abs=1e-12)
        assert res[m] == pytest.approx(np.mean(vals), abs=1e-12)
        assert res[f"{m}_fg"] == pytest.approx(np.mean(vals[1:]), abs=1e-12)
    assert res["f1"] == pytest.approx(res["dice"])
    assert res["pixel_accuracy"] == pytest.approx((pred[keep] == target[keep]).mean())
    assert res["reduction"] == "dataset" and res["spec"] == METRIC_SPEC


def test_empty_class_is_none_and_left_out_of_mean() -> None:
    # class 2 never appears in target nor prediction: 0/0 for dice, jaccard, sensitivity, precision
    cm = np.array([[5, 1, 0], [2, 7, 0], [0, 0, 0]])
    res = segmentation_metrics(cm)
    pc2 = res["per_class"][2]
    assert pc2["dice"] is None and pc2["jaccard"] is None and pc2["sensitivity"] is None
    assert pc2["precision"] is None
    assert pc2["specificity"] == 1.0  # TN / (TN + FP) = 15 / 15 is defined
    dice0, dice1 = 10 / 13, 14 / 17
    assert res["dice"] == pytest.approx((dice0 + dice1) / 2)  # mean over the 2 defined classes
    assert res["dice_fg"] == pytest.approx(dice1)


def test_per_image_reduction_equals_mean_over_images() -> None:
    pred, target = _maps(3)
    cms = confusion_matrices(pred, target, 5)
    res = segmentation_metrics(cms, reduction="per_image")
    for c in range(5):
        vals = [segmentation_metrics(cms[i])["per_class"][c]["jaccard"] for i in range(3)]
        vals = [v for v in vals if v is not None]
        assert res["per_class"][c]["jaccard"] == pytest.approx(np.mean(vals))
    accs = [segmentation_metrics(cms[i])["pixel_accuracy"] for i in range(3)]
    assert res["pixel_accuracy"] == pytest.approx(np.mean(accs))
    assert res["reduction"] == "per_image"
    # The two reductions genuinely differ on uneven images.
    assert res["jaccard"] != pytest.approx(segmentation_metrics(cms)["jaccard"], abs=1e-9)


def test_label_out_of_range_is_error() -> None:
    pred, target = _maps(0)
    target[1, 4, 5] = 7
    with pytest.raises(MetricInputError, match=r"image #1: target label 7 .* not ignore_index=255"):
        confusion_matrices(pred, target, 5)
    pred, target = _maps(0)
    pred[2, 0, 0], target[2, 0, 0] = -1, 0
    with pytest.raises(MetricInputError, match=r"image #2: prediction label -1"):
        confusion_matrices(pred, target, 5)


def test_bad_reduction_and_shapes() -> None:
    with pytest.raises(MetricInputError, match="reduction"):
        segmentation_metrics(np.eye(3, dtype=np.int64), reduction="micro")
    with pytest.raises(MetricInputError, match=r"\[N, K, K\]"):
        segmentation_metrics(np.eye(3, dtype=np.int64), reduction="per_image")
    with pytest.raises(MetricInputError, match="shape"):
        confusion_matrices(np.zeros((1, 2, 2), int), np.zeros((1, 2, 3), int), 3)
