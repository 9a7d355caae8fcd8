"""VOC AP: a hand-derived example, strictness of the threshold, and a literal devkit loop as reference."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from coco_ref import devkit_voc

from bench.metrics.detection import ap_11point, ap_all_point, box_iou, evaluate_coco
from bench.metrics.synthetic import random_coco


def _gt() -> dict[str, Any]:
    """Class "cat" (id 7): image 1 has GT A, B and a crowd C; image 2 has GT D.  Class "dog"
    (id 9) has no GT at all."""
    ann = [
        (1, 1, [0, 0, 10, 10], 0),  # A
        (2, 1, [20, 0, 10, 10], 0),  # B
        (3, 1, [40, 0, 10, 10], 1),  # C (crowd -> "difficult")
        (4, 2, [0, 0, 10, 10], 0),  # D
    ]
    return {
        "images": [{"id": 1, "height": 100, "width": 100}, {"id": 2, "height": 100, "width": 100}],
        "annotations": [{"id": i, "image_id": im, "category_id": 7, "bbox": b, "area": b[2] * b[3],
                         "iscrowd": c} for i, im, b, c in ann],
        "categories": [{"id": 7, "name": "cat"}, {"id": 9, "name": "dog"}],
    }


def _preds() -> list[dict[str, Any]]:
    rows = [
        ("d1", 1, [0, 0, 10, 10], 0.9),  # IoU(A) = 1                       -> TP, A matched
        ("d2", 1, [1, 0, 10, 10], 0.8),  # IoU(A) = 90/110 = .818, A taken  -> FP
        ("d3", 1, [40, 0, 10, 10], 0.7),  # IoU(C) = 1, C crowd             -> ignored
        ("d5", 2, [0, 0, 10, 10], 0.5),  # IoU(D) = 1                       -> TP
        # IoU(B) = (6.6 * 10) / (200 - 66) = .4925 <= .5 -> FP; with legacy +1:
        # inter = 7.6 * 11 = 83.6, union = 121 + 121 - 83.6 = 158.4, IoU = .5278 > .5 -> TP
        ("d6", 1, [23.4, 0, 10, 10], 0.5),  # same score as d5, later in input -> ranked after d5
        ("d4", 2, [50, 50, 10, 10], 0.4),  # no overlap                      -> FP
    ]
    preds = [{"image_id": im, "category_id": 7, "bbox": b, "score": s} for _, im, b, s in rows]
    preds.append({"image_id": 1, "category_id": 9, "bbox": [0, 0, 5, 5], "score": 0.3})  # dog: no GT
    return preds


def test_worked_example_default_coords() -> None:
    # npos = 3 (A, B, D).  Ranked, d3 ignored: d1 TP, d2 FP, d5 TP, d6 FP, d4 FP
    #   tp = 1 1 2 2 2, fp = 0 1 1 2 3
    #   recall    = 1/3 1/3 2/3 2/3 2/3
    #   precision = 1   1/2 2/3 1/2 2/5
    # 11-point: r in {0,.1,.2,.3}: max prec at rec >= r = 1 (4 levels); r in {.4,.5,.6}: points with
    #   rec = 2/3 -> max(2/3, 1/2, 2/5) = 2/3 (3 levels); r >= .7: no point -> 0.  AP11 = (4 + 2) / 11
    # all-point: envelope over (0, 1/3] = 1, over (1/3, 2/3] = 2/3, over (2/3, 1] = 0.
    #   APall = 1/3 * 1 + 1/3 * 2/3 = 5/9
    res = evaluate_coco(_gt(), _preds())
    cat = res["per_class"]["cat"]
    assert cat["AP11"] == pytest.approx(6 / 11, abs=1e-12)
    assert cat["APall"] == pytest.approx(5 / 9, abs=1e-12)
    assert res["per_class"]["dog"]["AP11"] is None  # no GT: left out of the mean
    assert res["mAP11"] == pytest.approx(6 / 11, abs=1e-12)
    assert res["mAPall"] == pytest.approx(5 / 9, abs=1e-12)


def test_worked_example_legacy_coords() -> None:
    # With +1, d6 matches B (IoU .5278 > .5): d1 TP, d2 FP, d5 TP, d6 TP, d4 FP
    #   recall    = 1/3 1/3 2/3 1   1
    #   precision = 1   1/2 2/3 3/4 3/5
    # 11-point: r <= .3 -> 1 (4 levels); r in .4..1.0 -> max prec at rec >= r = 3/4 (7 levels)
    #   AP11 = (4 + 7 * 3/4) / 11 = 9.25 / 11
    # all-point: envelope 1 on (0, 1/3], 3/4 on (1/3, 1] -> APall = 1/3 + 2/3 * 3/4 = 5/6
    res = evaluate_coco(_gt(), _preds(), voc_legacy_coords=True)
    assert res["mAP11"] == pytest.approx(9.25 / 11, abs=1e-12)
    assert res["mAPall"] == pytest.approx(5 / 6, abs=1e-12)


def test_worked_example_ties_keep_input_order() -> None:
    # Swap d5 and d6 in the input: same score, so d6 now ranks first.
    #   d1 TP, d2 FP, d6 FP, d5 TP, d4 FP: recall 1/3 1/3 1/3 2/3 2/3, precision 1 1/2 1/3 1/2 2/5
    # AP11 = (4 * 1 + 3 * 1/2) / 11 = 1/2;  APall = 1/3 * 1 + 1/3 * 1/2 = 1/2
    preds = _preds()
    preds[3], preds[4] = preds[4], preds[3]
    res = evaluate_coco(_gt(), preds)
    assert res["mAP11"] == pytest.approx(0.5, abs=1e-12)
    assert res["mAPall"] == pytest.approx(0.5, abs=1e-12)


def test_threshold_is_strict() -> None:
    gt = _gt()
    gt["annotations"] = gt["annotations"][:1]  # only A = [0, 0, 10, 10]
    pred = [{"image_id": 1, "category_id": 7, "bbox": [0, 0, 10, 5], "score": 0.9}]  # IoU exactly 0.5
    assert evaluate_coco(gt, pred)["mAPall"] == 0.0
    assert evaluate_coco(gt, pred, voc_iou=0.49)["mAPall"] == pytest.approx(1.0)


def test_best_gt_taken_even_if_already_matched() -> None:
    # GT A [0,0,10,10] and E [3,0,10,10] (IoU(A,E) = 70/130).  d1 = A exactly -> TP on A.  d2 =
    # [1,0,10,10] overlaps A more (90/110) than E (80/120): it takes A, already matched -> FP,
    # although E is free and above threshold.  Recall 1/2 then 1/2: AP11 = 6/11 (levels 0..0.5).
    gt = _gt()
    gt["annotations"] = gt["annotations"][:1] + [
        {"id": 9, "image_id": 1, "category_id": 7, "bbox": [3, 0, 10, 10], "area": 100, "iscrowd": 0}]
    preds = [{"image_id": 1, "category_id": 7, "bbox": [0, 0, 10, 10], "score": 0.9},
             {"image_id": 1, "category_id": 7, "bbox": [1, 0, 10, 10], "score": 0.8}]
    assert evaluate_coco(gt, preds)["mAP11"] == pytest.approx(6 / 11, abs=1e-12)


def test_ap_functions_on_arrays() -> None:
    rec = np.array([0.3, 0.3, 0.6])
    prec = np.array([1.0, 0.5, 2 / 3])
    # recall exactly 0.3 reaches the 0.3 level (correctly rounded tenths, not np.arange drift)
    assert ap_11point(rec, prec) == pytest.approx((4 * 1.0 + 3 * (2 / 3)) / 11)
    assert ap_all_point(rec, prec) == pytest.approx(0.3 * 1.0 + 0.3 * (2 / 3))
    assert ap_11point(np.zeros(0), np.zeros(0)) == 0.0


def test_box_iou_matches_naive() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 50, (7, 4))
    b = rng.uniform(0, 50, (5, 4))
    a[:, 2:] += a[:, :2]
    b[:, 2:] += b[:, :2]
    for legacy in (False, True):
        one = float(legacy)
        got = box_iou(a, b, legacy_coords=legacy)
        assert got.shape == (7, 5)
        for i in range(7):
            for j in range(5):
                iw = max(min(a[i, 2], b[j, 2]) - max(a[i, 0], b[j, 0]) + one, 0)
                ih = max(min(a[i, 3], b[j, 3]) - max(a[i, 1], b[j, 1]) + one, 0)
                ua = (a[i, 2] - a[i, 0] + one) * (a[i, 3] - a[i, 1] + one)
                ub = (b[j, 2] - b[j, 0] + one) * (b[j, 3] - b[j, 1] + one)
                assert got[i, j] == pytest.approx(iw * ih / (ua + ub - iw * ih), abs=1e-12)
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 5)
    assert box_iou([[1, 1, 1, 1]], [[1, 1, 1, 1]])[0, 0] == 0.0  # empty union -> 0, not NaN


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("seed", range(12))
def test_vectorised_voc_equals_devkit_loop(seed: int, legacy: bool) -> None:
    gt, preds = random_coco(seed)
    rng = np.random.default_rng(seed)
    for a in gt["annotations"]:
        a["difficult"] = int(rng.random() < 0.1)
    thr = [0.5, 0.3, 0.7][seed % 3]
    ref = devkit_voc(gt, preds, thr, legacy)
    res = evaluate_coco(copy.deepcopy(gt), preds, voc_iou=thr, voc_legacy_coords=legacy)
    for cat in gt["categories"]:
        got = res["per_class"][cat["name"]]
        want = ref[cat["id"]]
        if want is None:
            assert got["AP11"] is None and got["APall"] is None
        else:
            assert got["AP11"] == pytest.approx(want[0], abs=1e-12)
            assert got["APall"] == pytest.approx(want[1], abs=1e-12)
    valid = [v for v in ref.values() if v is not None]
    assert res["mAPall"] == pytest.approx(np.mean([v[1] for v in valid]), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_vectorised_voc_equals_devkit_loop_segm(seed: int) -> None:
    gt, preds = random_coco(seed, iou_type="segm", n_images=8)
    ref = devkit_voc(gt, preds, 0.5, False, iou_type="segm")
    res = evaluate_coco(gt, preds, iou_type="segm")
    for cat in gt["categories"]:
        want, got = ref[cat["id"]], res["per_class"][cat["name"]]
        assert (want is None) == (got["APall"] is None)
        if want is not None:
            assert (got["AP11"], got["APall"]) == pytest.approx(want, abs=1e-12)


def test_pr_curve_is_monotone_and_consistent() -> None:
    res = evaluate_coco(*random_coco(3))
    for c in res["per_class"].values():
        p = np.array(c["pr_curve"]["precision"])
        assert len(p) == len(c["pr_curve"]["recall"]) == 101
        assert np.all(np.diff(p) <= 1e-15)
        if c["AP11"] is not None:
            assert np.mean(p[::10]) == pytest.approx(c["AP11"], abs=1e-12)
