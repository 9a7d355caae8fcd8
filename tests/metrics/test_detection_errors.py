"""Bad detection inputs raise MetricInputError naming the record."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from bench.metrics import MetricInputError
from bench.metrics.detection import evaluate_coco
from bench.metrics.synthetic import random_coco

GT, PREDS = random_coco(11, iou_type="segm")
IMG = PREDS[17]["image_id"]


def _set(i: int, key: str, value: Any) -> Callable[[dict[str, Any], list[dict[str, Any]]], None]:
    def f(gt: dict[str, Any], preds: list[dict[str, Any]]) -> None:
        preds[i][key] = value
    return f


def _gt_drop(key: str) -> Callable[[dict[str, Any], list[dict[str, Any]]], None]:
    def f(gt: dict[str, Any], preds: list[dict[str, Any]]) -> None:
        del gt["annotations"][4][key]
    return f


def _gt_set(key: str, value: Any) -> Callable[[dict[str, Any], list[dict[str, Any]]], None]:
    def f(gt: dict[str, Any], preds: list[dict[str, Any]]) -> None:
        gt["annotations"][4][key] = value
    return f


def _bad_rle_size(gt: dict[str, Any], preds: list[dict[str, Any]]) -> None:
    preds[17]["segmentation"] = {"size": [3, 3], "counts": preds[17]["segmentation"]["counts"]}


P17 = r"prediction #17 "
GT4 = r"ground-truth annotation #4 "
CASES = {
    "unknown image_id": (_set(17, "image_id", 123456), P17 + r"\(image_id=123456\): unknown image_id"),
    "unknown category_id": (_set(17, "category_id", 5555), P17 + rf"\(image_id={IMG}\): unknown category_id"),
    "NaN score": (_set(17, "score", float("nan")), rf"prediction #17 \(image_id={IMG}\): score is NaN"),
    "inf score": (_set(17, "score", float("inf")), rf"prediction #17 \(image_id={IMG}\): score is inf"),
    "string score": (_set(17, "score", "high"), P17 + r".*score must be a number"),
    "NaN in box": (_set(17, "bbox", [1.0, float("nan"), 3.0, 4.0]), P17 + r".*bbox .* is not finite"),
    "inf in box": (_set(17, "bbox", [1.0, 2.0, float("inf"), 4.0]), P17 + r".*not finite"),
    "negative width": (_set(17, "bbox", [1.0, 2.0, -3.0, 4.0]), P17 + r".*negative width/height"),
    "short box": (_set(17, "bbox", [1.0, 2.0, 3.0]), P17 + r".*bbox must be 4 numbers"),
    "missing score": (lambda g, p: p[17].pop("score"), P17 + r".*missing key 'score'"),
    "segm size mismatch": (_bad_rle_size, P17 + r".*segmentation size \[3, 3\] != image size"),
    "GT missing area": (_gt_drop("area"), GT4 + r"\(id=5, .*missing required key\(s\) 'area'"),
    "GT missing iscrowd": (_gt_drop("iscrowd"), GT4 + r".*'iscrowd'"),
    "GT missing segmentation": (_gt_drop("segmentation"), GT4 + r".*'segmentation'"),
    "GT negative height": (_gt_set("bbox", [0, 0, 4, -1]), GT4 + r".*negative width/height"),
    "GT NaN box": (_gt_set("bbox", [0, float("nan"), 4, 1]), GT4 + r".*not finite"),
    "GT unknown image": (_gt_set("image_id", 987654), GT4 + r".*unknown image_id 987654"),
    "GT id 0": (_gt_set("id", 0), GT4 + r".*'id' must be an integer >= 1"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_names_the_record(case: str) -> None:
    gt, preds = copy.deepcopy(GT), copy.deepcopy(PREDS)
    mutate, pattern = CASES[case]
    mutate(gt, preds)
    with pytest.raises(MetricInputError, match=pattern):
        evaluate_coco(gt, preds, iou_type="segm")


def test_bad_iou_type() -> None:
    with pytest.raises(MetricInputError, match="iou_type"):
        evaluate_coco(GT, PREDS, iou_type="keypoints")


def test_segm_mixed_bbox_presence_is_an_error() -> None:
    preds = copy.deepcopy(PREDS)
    del preds[5]["bbox"]  # first prediction has a bbox -> pycocotools takes every area from bbox
    with pytest.raises(MetricInputError, match=r"prediction #5 .*missing bbox"):
        evaluate_coco(GT, preds, iou_type="segm")
