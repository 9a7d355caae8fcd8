"""Differential tests: the 12 COCO numbers equal pycocotools' ``COCOeval.stats`` within 1e-6."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from coco_ref import pycocotools_eval

from bench.metrics.detection import COCO_STAT_KEYS, evaluate_coco
from bench.metrics.synthetic import random_coco

Data = tuple[dict[str, Any], list[dict[str, Any]]]


def assert_parity(gt: dict[str, Any], preds: list[dict[str, Any]], iou_type: str) -> dict[str, Any]:
    """Our 12 COCO numbers (None <-> -1) and per-class AP equal pycocotools'."""
    ref = pycocotools_eval(gt, preds, iou_type)
    ours = evaluate_coco(gt, preds, iou_type)
    got = np.array([-1.0 if ours[k] is None else ours[k] for k in COCO_STAT_KEYS])
    np.testing.assert_allclose(got, ref.stats, atol=1e-6, rtol=0)
    assert all((ours[k] is None) == (ref.stats[i] == -1) for i, k in enumerate(COCO_STAT_KEYS))
    prec = ref.eval["precision"]
    for k, cat in enumerate(sorted(gt["categories"], key=lambda c: c["id"])):
        p = prec[:, :, k, 0, -1]
        want = p[p > -1].mean() if (p > -1).any() else None
        got_ap = ours["per_class"][cat["name"]]["AP"]
        assert (got_ap is None) == (want is None)
        if want is not None:
            assert abs(got_ap - want) < 1e-6
    return ours


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
@pytest.mark.parametrize("seed", range(50))
def test_random_matches_pycocotools(seed: int, iou_type: str) -> None:
    gt, preds = random_coco(seed, iou_type=iou_type)
    assert preds, "generator produced no predictions"
    ours = assert_parity(gt, preds, iou_type)
    assert ours["mAP_50"] is not None


# ---- edge cases, each built on a random base so the rest of the data is realistic ----------


def _crowd(t: str) -> Data:
    return random_coco(1001, iou_type=t, crowd_prob=0.6)


def _empty_images(t: str) -> Data:
    gt, preds = random_coco(1002, iou_type=t)
    top = max(im["id"] for im in gt["images"])
    gt["images"] += [{"id": top + i, "height": 50, "width": 60} for i in range(1, 6)]  # no GT, no preds
    return gt, preds


def _class_without_gt(t: str) -> Data:
    gt, preds = random_coco(1003, iou_type=t)
    gt["categories"].append({"id": 999, "name": "ghost"})
    for p in preds[::3]:
        p["category_id"] = 999
    return gt, preds


def _over_100(t: str) -> Data:
    gt, preds = random_coco(1004, iou_type=t, many_dets_image=False)
    rng = np.random.default_rng(4)
    img = next(im for im in gt["images"] if any(a["image_id"] == im["id"] for a in gt["annotations"]))
    gts = [a for a in gt["annotations"] if a["image_id"] == img["id"]]
    extra = []
    for i in range(160):
        g = gts[i % len(gts)]
        p = {"image_id": img["id"], "category_id": g["category_id"], "score": float(rng.uniform()),
             "bbox": [v + float(rng.normal(0, 1)) for v in g["bbox"][:2]] + g["bbox"][2:]}
        if t == "segm":
            p["segmentation"] = preds[0]["segmentation"] if preds[0]["image_id"] == img["id"] else _mask_for(
                gt, img["id"], p["bbox"])
        extra.append(p)
    return gt, preds + extra


def _mask_for(gt: dict[str, Any], image_id: int, box: list[float]) -> dict[str, Any]:
    from faster_coco_eval.core import mask as mask_utils

    im = next(i for i in gt["images"] if i["id"] == image_id)
    x, y, w, h = box
    rle = mask_utils.frPyObjects([[x, y, x + w, y, x + w, y + h, x, y + h]], im["height"], im["width"])[0]
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def _duplicates(t: str) -> Data:
    gt, preds = random_coco(1005, iou_type=t)
    return gt, preds + copy.deepcopy(preds)


def _tied(t: str) -> Data:
    gt, preds = random_coco(1006, iou_type=t)
    for p in preds:
        p["score"] = 0.5
    return gt, preds


def _area_not_wh(t: str) -> Data:
    gt, preds = random_coco(1007, iou_type=t)
    rng = np.random.default_rng(7)
    for a in gt["annotations"]:
        a["area"] = float(a["bbox"][2] * a["bbox"][3] * rng.choice([0.05, 0.5, 3.0, 40.0]))
    return gt, preds


def _noncontiguous(t: str) -> Data:
    gt, preds = random_coco(1008, iou_type=t, n_classes=4)
    remap = {c["id"]: new for c, new in zip(gt["categories"], [3, 17, 42, 1000], strict=True)}
    for c in gt["categories"]:
        c["id"] = remap[c["id"]]
    for a in gt["annotations"] + preds:
        a["category_id"] = remap[a["category_id"]]
    return gt, preds


def _segm_no_bbox(t: str) -> Data:
    gt, preds = random_coco(1009, iou_type=t)
    for p in preds:
        p.pop("bbox")  # areas now come from the masks (pycocotools' loadRes segm branch)
    return gt, preds


EDGE_CASES: dict[str, Callable[[str], Data]] = {
    "crowd": _crowd,
    "images_without_gt_or_preds": _empty_images,
    "class_with_preds_but_no_gt": _class_without_gt,
    "over_100_detections": _over_100,
    "duplicate_detections": _duplicates,
    "tied_scores": _tied,
    "area_differs_from_wh": _area_not_wh,
    "noncontiguous_category_ids": _noncontiguous,
    "segm_predictions_without_bbox": _segm_no_bbox,
}


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_edge_cases_match_pycocotools(case: str, iou_type: str) -> None:
    if case == "segm_predictions_without_bbox" and iou_type == "bbox":
        pytest.skip("bbox evaluation needs boxes")
    gt, preds = EDGE_CASES[case](iou_type)
    assert_parity(gt, preds, iou_type)


def test_edge_cases_are_really_present() -> None:
    """Guard against a generator change quietly removing what the edge cases exercise."""
    gt, preds = _crowd("bbox")
    assert sum(a["iscrowd"] for a in gt["annotations"]) > 5
    gt, preds = _over_100("bbox")
    per_image = np.bincount([p["image_id"] for p in preds])
    assert per_image.max() > 100
    gt, preds = _tied("bbox")
    assert len({p["score"] for p in preds}) == 1
    gt, preds = random_coco(0)
    assert len({p["score"] for p in preds}) < len(preds)  # rounding produces ties


def test_no_predictions_gives_zero_not_error() -> None:
    gt, _ = random_coco(5)
    res = evaluate_coco(gt, [])
    assert res["mAP"] == 0.0 and res["AR_100"] == 0.0 and res["mAP11"] == 0.0


def test_inputs_are_not_modified() -> None:
    gt, preds = random_coco(6, iou_type="segm")
    gt0, preds0 = copy.deepcopy(gt), copy.deepcopy(preds)
    evaluate_coco(gt, preds, "segm")
    assert gt == gt0 and preds == preds0


def test_no_gt_in_area_range_is_none() -> None:
    gt = {"images": [{"id": 1, "height": 100, "width": 100}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100.0,
                           "iscrowd": 0}],
          "categories": [{"id": 1, "name": "a"}]}
    res = evaluate_coco(gt, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9}])
    assert res["mAP"] == pytest.approx(1.0) and res["mAP_small"] == pytest.approx(1.0)
    assert res["mAP_medium"] is None and res["mAP_large"] is None and res["AR_large"] is None


def test_no_predictions_gives_per_image_samples_not_error() -> None:
    """An untrained detector may return nothing for a whole split: the bootstrap samples still exist."""
    from bench.evaluators.detection import DetectionEvaluator
    from bench.metrics.detection import pack_flags

    gt, _ = random_coco(5)
    assert pack_flags(np.zeros((0, 10), dtype=bool)).shape == (0,)
    ev = DetectionEvaluator(gt=gt, iou_type="bbox")
    ev.update([])
    samples = ev.samples()
    assert len(samples["image_id"]) == len(gt["images"]) and ev.compute()["mAP"] == 0.0
