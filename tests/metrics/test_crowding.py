"""Recall against objects per cell (bench.metrics.crowding) on hand-built images."""

from __future__ import annotations

import numpy as np
import pytest

from bench.metrics import METRIC_SPEC, METRICS, MetricInputError
from bench.metrics.crowding import (
    CellRecallAccumulator,
    cell_occupancy,
    match_ground_truth,
    recall_by_objects_per_cell,
)


def box(cx: float, cy: float, side: float = 4.0) -> list[float]:
    """A square xyxy box centred on (cx, cy)."""
    return [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]


def test_cell_occupancy_counts_centres_per_cell() -> None:
    # 64 px, 7x7: cells are 64/7 = 9.14 px.  (4, 4) and (8, 8) share cell (0, 0); (10, 4) is in column 1;
    # (63, 63) and a centre exactly on the right/bottom edge (64, 64) both fall in the last cell.
    boxes = np.array([box(4, 4), box(8, 8), box(10, 4), box(63, 63), [62, 62, 66, 66]])
    assert cell_occupancy(boxes, 64, 64, 7).tolist() == [2, 2, 1, 2, 2]
    # A coarser grid merges them: 2x2 cells of 32 px put the first three together.
    assert cell_occupancy(boxes, 64, 64, 2).tolist() == [3, 3, 3, 2, 2]


def test_cell_occupancy_non_square_image() -> None:
    # 70 x 35 px, 7x7: cells are 10 px wide and 5 px high.  Centres (5, 2) and (5, 7) differ in row.
    boxes = np.array([box(5, 2, 2), box(5, 7, 2), box(9, 4, 2)])
    assert cell_occupancy(boxes, 70, 35, 7).tolist() == [2, 1, 2]
    assert cell_occupancy(np.zeros((0, 4)), 70, 35, 7).tolist() == []


def test_matching_is_class_aware_greedy_and_does_not_fall_back() -> None:
    gt = np.array([[0, 0, 10, 10], [2, 0, 12, 10], [20, 20, 30, 30]], dtype=float)
    gt_labels = np.array([1, 1, 2])
    det = np.array([
        [0, 0, 10, 10],  # best on GT 0 (IoU 1) and 0.67 on GT 1
        [0, 0, 10, 10],  # same box, lower score: its best GT (0) is taken -> no match, GT 1 is not tried
        [20, 20, 30, 30],  # perfect box on GT 2 but the wrong class
    ], dtype=float)
    scores, labels = np.array([0.9, 0.8, 0.99]), np.array([1, 1, 1])
    assert match_ground_truth(gt, gt_labels, det, scores, labels).tolist() == [True, False, False]
    # One detection per object finds both of the overlapping pair (IoU 0.67 between them).
    det2 = np.array([[0, 0, 10, 10], [2, 0, 12, 10]], dtype=float)
    hit = match_ground_truth(gt, gt_labels, det2, np.array([0.1, 0.9]), np.array([1, 1]))
    assert hit.tolist() == [True, True, False]


def test_iou_threshold_is_inclusive() -> None:
    gt = np.array([[0, 0, 10, 10]], dtype=float)
    half = np.array([[0, 0, 10, 5]], dtype=float)  # IoU exactly 0.5
    assert match_ground_truth(gt, np.array([1]), half, np.array([1.0]), np.array([1]), 0.5).tolist() == [True]
    assert match_ground_truth(gt, np.array([1]), half, np.array([1.0]), np.array([1]), 0.51).tolist() == [False]


def crowded_image() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """64 px, 7x7: three objects in cell (0, 0), two in cell (3, 3), one alone; found: one of the
    three, both of the two (one only above score 0.5), the lone one."""
    gt = np.array([box(2, 2), box(5, 3), box(7, 7), box(30, 30), box(33, 33), box(60, 10)])
    labels = np.array([1, 2, 3, 1, 1, 2])
    det = np.array([box(5, 3), box(30, 30), box(33, 33), box(60, 10), box(50, 50)])
    scores = np.array([0.9, 0.8, 0.3, 0.7, 0.95])  # the last one is a false positive
    det_labels = np.array([2, 1, 1, 2, 1])
    return gt, labels, det, scores, det_labels


def test_recall_per_bin() -> None:
    gt, labels, det, scores, det_labels = crowded_image()
    res = recall_by_objects_per_cell([gt], [labels], [det], [scores], [det_labels], [(64, 64)], grid=7)
    assert res["per_bin"] == {
        "1": {"recall": 1.0, "matched": 1, "num_gt": 1},
        "2": {"recall": 1.0, "matched": 2, "num_gt": 2},
        "3+": {"recall": pytest.approx(1 / 3), "matched": 1, "num_gt": 3},
    }
    assert res["recall"] == pytest.approx(4 / 6)
    assert (res["num_gt"], res["num_images"], res["grid"], res["spec"]) == (6, 1, 7, METRIC_SPEC)
    # A score threshold drops the 0.3 detection: the pair's bin loses one.
    high = recall_by_objects_per_cell([gt], [labels], [det], [scores], [det_labels], [(64, 64)], 7, score_thresh=0.5)
    assert high["per_bin"]["2"] == {"recall": 0.5, "matched": 1, "num_gt": 2}
    assert high["score_thresh"] == 0.5


def test_empty_bins_and_images() -> None:
    res = recall_by_objects_per_cell(
        [np.array([box(10, 10)]), np.zeros((0, 4))], [[1], []], [np.zeros((0, 4)), np.array([box(5, 5)])],
        [[], [0.5]], [[], [1]], [(64, 64), (64, 64)], grid=7,
    )
    assert res["per_bin"]["1"] == {"recall": 0.0, "matched": 0, "num_gt": 1}
    assert res["per_bin"]["2"]["recall"] is None and res["per_bin"]["3+"]["recall"] is None
    assert res["num_images"] == 2
    assert CellRecallAccumulator(7).compute()["recall"] is None


def test_accumulator_merge_equals_one_pass() -> None:
    gt, labels, det, scores, det_labels = crowded_image()
    whole = CellRecallAccumulator(7)
    parts = [CellRecallAccumulator(7), CellRecallAccumulator(7)]
    for k, acc in enumerate([whole, whole, parts[0], parts[1]]):
        shift = 0.0 if k % 2 == 0 else 1.0  # a second, slightly different image
        acc.update(gt + shift, labels, det, scores, det_labels, (64, 64))
    assert parts[0].merge(parts[1]).compute() == whole.compute()
    with pytest.raises(MetricInputError, match="cannot merge grid 13"):
        whole.merge(CellRecallAccumulator(13))
    whole.reset()
    assert whole.compute()["num_gt"] == 0


def test_bad_input_names_the_image() -> None:
    acc = CellRecallAccumulator(7)
    acc.update(np.array([box(5, 5)]), [1], np.zeros((0, 4)), [], [], (64, 64))
    with pytest.raises(MetricInputError, match=r"image #1 detections: expected boxes \[N, 4\]"):
        acc.update(np.array([box(5, 5)]), [1], np.zeros((2, 3)), [0.1, 0.2], [1, 1], (64, 64))
    with pytest.raises(MetricInputError, match="image #1 ground-truth labels: 2 values for 1 boxes"):
        acc.update(np.array([box(5, 5)]), [1, 2], np.zeros((0, 4)), [], [], (64, 64))
    with pytest.raises(MetricInputError, match="x2 < x1"):
        acc.update(np.array([[5, 5, 1, 9]]), [1], np.zeros((0, 4)), [], [], (64, 64))
    with pytest.raises(MetricInputError, match="per-image lists differ in length"):
        recall_by_objects_per_cell([np.zeros((0, 4))], [[]], [], [], [], [(64, 64)], grid=7)
    with pytest.raises(MetricInputError, match="grid must be >= 1"):
        CellRecallAccumulator(0)


def test_registered_with_its_reduction() -> None:
    entry = METRICS.get("recall_by_objects_per_cell")
    assert entry.obj is recall_by_objects_per_cell
    assert entry.meta.task == "detection" and "micro over ground-truth objects" in entry.meta.reduction


def test_update_found_bins_given_flags() -> None:
    """Flags known in advance (a detector's target assignment): one lone object, a pair and a triple, one of
    each crowded cell found, as YOLO v1's one object per cell trains."""
    gt, *_ = crowded_image()
    acc = CellRecallAccumulator(7)
    found = np.zeros(len(gt), dtype=bool)
    seen: set[tuple[int, int]] = set()
    for i, b in enumerate(gt):
        cell = (int((b[0] + b[2]) / 2 * 7 / 64), int((b[1] + b[3]) / 2 * 7 / 64))
        found[i] = cell not in seen
        seen.add(cell)
    acc.update_found(gt, found, (64, 64))
    res = acc.compute()
    assert {b: (v["matched"], v["num_gt"]) for b, v in res["per_bin"].items()} == {"1": (1, 1), "2": (1, 2),
                                                                                   "3+": (1, 3)}
    with pytest.raises(MetricInputError, match="image #1 found flags: 2 values for 6 boxes"):
        acc.update_found(gt, [True, False], (64, 64))
