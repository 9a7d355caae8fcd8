"""Baseline significance tests against hand-computed values; per-image scores the sign tests use."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.metrics import MetricInputError
from bench.metrics.significance import (
    binomial_p_greater,
    majority_baseline,
    paired_baseline,
    sign_test_greater,
)


def test_binomial_exact_values() -> None:
    assert binomial_p_greater(3, 3, 0.5) == pytest.approx(1 / 8)
    assert binomial_p_greater(0, 10, 0.3) == pytest.approx(1.0)
    # P(X >= 8), X ~ Bin(10, 0.7) = 45 .7^8 .3^2 + 10 .7^9 .3 + .7^10
    expected = 45 * 0.7**8 * 0.09 + 10 * 0.7**9 * 0.3 + 0.7**10
    assert binomial_p_greater(8, 10, 0.7) == pytest.approx(expected, rel=1e-9)


def test_binomial_three_classes_300_images() -> None:
    """p0 = 1/3: 110/300 correct is within chance (normal approx. z = 1.16, p ~ 0.12); 200/300 is not."""
    p110 = binomial_p_greater(110, 300, 1 / 3)
    assert 0.08 < p110 < 0.15 and p110 >= 0.05
    assert binomial_p_greater(200, 300, 1 / 3) < 1e-20
    with pytest.raises(MetricInputError):
        binomial_p_greater(301, 300, 0.5)


def test_majority_baseline_from_confusion() -> None:
    cm = np.array([[6, 1], [1, 2]])  # 7 of class 0: p0 = 0.7; 8 correct of 10
    b = majority_baseline(cm)
    assert (b.name, b.metric) == ("majority class", "top1")
    assert b.score == pytest.approx(0.7)
    assert b.p_value == pytest.approx(45 * 0.7**8 * 0.09 + 10 * 0.7**9 * 0.3 + 0.7**10)
    assert b.significant is False
    strong = majority_baseline(np.diag([100, 100, 100]))  # 300/300 vs p0 = 1/3
    assert strong.significant is True and strong.p_value == pytest.approx((1 / 3) ** 300)
    empty = majority_baseline(np.zeros((3, 3)))
    assert empty.score is None and empty.significant is None


def test_sign_test_drops_ties_and_nans() -> None:
    base = np.full(7, 0.1)
    model = np.array([0.5, 0.6, 0.7, 0.8, 0.9, 0.1, np.nan])  # 5 wins, one tie, one undefined
    assert sign_test_greater(model, base) == pytest.approx(1 / 32)
    model[0] = 0.0  # 4 wins, 1 loss: P(X >= 4), X ~ Bin(5, 1/2) = 6/32
    assert sign_test_greater(model, base) == pytest.approx(6 / 32)
    assert sign_test_greater(base, base) == 1.0  # all tie: no evidence the model is better
    assert sign_test_greater(np.full(2, np.nan), np.zeros(2)) is None  # nothing defined to compare
    with pytest.raises(MetricInputError):
        sign_test_greater(np.zeros(3), np.zeros(4))


def test_paired_baseline_marks_significance() -> None:
    b = paired_baseline("all background", "jaccard", 0.3, np.full(6, 0.9), np.full(6, 0.2), "mean IoU")
    assert b.p_value == pytest.approx(1 / 64) and b.significant is True
    assert "sign test" in b.test


def test_per_image_jaccard_and_all_background() -> None:
    from bench.metrics.segmentation import background_confmats, per_image_jaccard

    perfect = np.array([[[3, 0], [0, 1]], [[4, 0], [0, 0]]])  # image 2: background only
    bg = background_confmats(perfect)
    assert bg.tolist() == [[[3, 0], [1, 0]], [[4, 0], [0, 0]]]
    assert per_image_jaccard(perfect).tolist() == [1.0, 1.0]
    assert per_image_jaccard(bg) == pytest.approx([(0.75 + 0.0) / 2, 1.0])  # class 1 missed: IoU 0
    assert math.isnan(per_image_jaccard(np.zeros((1, 2, 2), np.int64))[0])


def test_segmentation_evaluator_keeps_per_image_scores() -> None:
    from bench.evaluators.segmentation import SegmentationEvaluator

    target = np.array([[[0, 1], [0, 0]], [[1, 1], [1, 1]]])
    ev = SegmentationEvaluator(num_classes=2)
    ev.update(target.copy(), target)
    model, background = ev.per_image_jaccard()
    assert model.tolist() == [1.0, 1.0] and background == pytest.approx([0.375, 0.0])
    merged = SegmentationEvaluator.from_state(ev.state()).merge(ev)
    assert len(merged.per_image_jaccard()[0]) == 4


def test_detection_per_image_ap() -> None:
    """Class 7: image 1 has GT A, B (+ crowd C), image 2 GT D, image 3 none (VOC matching at 0.5)."""
    from bench.evaluators.detection import DetectionEvaluator

    ann = [(1, 1, [0, 0, 10, 10], 0), (2, 1, [20, 0, 10, 10], 0), (3, 1, [40, 0, 10, 10], 1),
           (4, 2, [0, 0, 10, 10], 0)]
    gt = {"images": [{"id": i, "height": 100, "width": 100} for i in (1, 2, 3)],
          "annotations": [{"id": i, "image_id": im, "category_id": 7, "bbox": b, "area": 100, "iscrowd": c}
                          for i, im, b, c in ann],
          "categories": [{"id": 7, "name": "cat"}, {"id": 9, "name": "dog"}]}
    rows = [(1, 7, [0, 0, 10, 10], 0.9),  # TP (A)
            (1, 7, [1, 0, 10, 10], 0.8),  # FP (A taken)
            (1, 7, [40, 0, 10, 10], 0.7),  # ignored (crowd)
            (2, 7, [0, 0, 10, 10], 0.5),  # TP (D)
            (2, 7, [50, 50, 10, 10], 0.4),  # FP
            (1, 9, [0, 0, 5, 5], 0.3),  # dog: no GT, left out
            (3, 7, [0, 0, 5, 5], 0.3)]  # image without GT
    ev = DetectionEvaluator(gt)
    ev.update([{"image_id": im, "category_id": c, "bbox": b, "score": s} for im, c, b, s in rows])
    ap = ev.per_image_ap(0.5)
    # image 1: TP, FP of npos 2 -> recall .5 at precision 1 -> AP .5; image 2: TP first -> AP 1
    assert ap[:2].tolist() == [0.5, 1.0] and math.isnan(ap[2])
    assert DetectionEvaluator(gt).per_image_ap(0.5)[:2].tolist() == [0.0, 0.0]  # no detections
