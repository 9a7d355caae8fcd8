"""The detection losses (``bench.models.detection._losses``) against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from bench.models.detection import _losses as L

LN2, LN3 = math.log(2.0), math.log(3.0)


def close(x: torch.Tensor, value: float) -> bool:
    return abs(float(x) - value) < 1e-5


def test_focal_loss_at_known_probabilities() -> None:
    # p = 0.5: CE = ln 2, (1 - p_t)^2 = 1/4; α_t = 0.25 for a positive, 0.75 for a negative.
    logits, targets = torch.zeros(2), torch.tensor([1.0, 0.0])
    assert close(L.focal_loss(logits, targets, reduction="none")[0], 0.25 * 0.25 * LN2)
    assert close(L.focal_loss(logits, targets, reduction="none")[1], 0.75 * 0.25 * LN2)
    assert close(L.focal_loss(logits, targets), (0.25 + 0.75) * 0.25 * LN2)
    # p = 0.75 on a positive: CE = -ln 0.75, (0.25)^2 = 1/16: an easy example is down-weighted 16x.
    easy = L.focal_loss(torch.tensor([LN3]), torch.tensor([1.0]), reduction="sum")
    assert close(easy, 0.25 * 0.0625 * -math.log(0.75))
    # γ = 0 without balancing is plain BCE.
    assert close(L.focal_loss(logits, targets, alpha=-1, gamma=0.0, reduction="mean"), LN2)


def test_bce_and_ce() -> None:
    assert close(L.bce_loss(torch.zeros(3), torch.tensor([1.0, 0.0, 0.5]), reduction="mean"), LN2)
    assert close(L.ce_loss(torch.zeros(1, 3), torch.tensor([0])), LN3)
    assert close(L.ce_loss(torch.tensor([[LN2, 0.0]]), torch.tensor([0])), -math.log(2 / 3))


def test_smooth_l1_both_branches() -> None:
    pred, target = torch.tensor([0.5, 2.0]), torch.zeros(2)
    assert close(L.smooth_l1_loss(pred, target), 0.5 * 0.25 + (2.0 - 0.5))
    assert close(L.smooth_l1_loss(torch.tensor([0.05]), torch.zeros(1), beta=1 / 9), 0.5 * 0.0025 * 9)
    assert close(L.smooth_l1_loss(pred, target, beta=0.0), 2.5)


def test_sum_squared_with_yolo_weights() -> None:
    # λ_coord = 5 on a coordinate error of 1, λ_noobj = 0.5 on a confidence error of 2: 5 + 0.5 x 4.
    w = torch.tensor([5.0, 0.5])
    assert close(L.sum_squared_loss(torch.tensor([1.0, 2.0]), torch.zeros(2), w), 7.0)


def test_giou_overlapping_and_disjoint() -> None:
    a, b = torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[1.0, 1, 3, 3]])
    # IoU 1/7; enclosing 3x3 = 9, union 7: GIoU = 1/7 - 2/9.
    assert close(L.giou(a, b)[0], 1 / 7 - 2 / 9)
    assert close(L.giou_loss(a, b), 1 - (1 / 7 - 2 / 9))
    # Disjoint: IoU 0, enclosing 3, union 2: GIoU = -1/3 (still a gradient, unlike IoU).
    assert close(L.giou(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([[2.0, 0, 3, 1]]))[0], -1 / 3)
    assert close(L.giou(a, a)[0], 1.0)


def test_ciou_distance_and_aspect_terms() -> None:
    # Same aspect ratio (v = 0): IoU 1/7 - ρ²/c² = 2/18.
    a, b = torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[1.0, 1, 3, 3]])
    assert close(L.ciou(a, b)[0], 1 / 7 - 2 / 18)
    # 2x2 against 4x2 at the same corner: IoU 1/2, ρ² = 1, c² = 20, v = 4/π² (atan 2 - atan 1)², α = v / (1/2 + v).
    pred, target = torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[0.0, 0, 4, 2]])
    v = 4 / math.pi**2 * (math.atan(2) - math.atan(1)) ** 2
    assert close(L.ciou_loss(pred, target), 1 - (0.5 - 1 / 20 - v / (0.5 + v) * v))


def test_reductions_and_lookup() -> None:
    x = torch.tensor([1.0, 3.0])
    assert close(L.reduce(x, "mean"), 2.0) and close(L.reduce(x, "sum"), 4.0)
    assert close(L.reduce(torch.zeros(0), "mean"), 0.0)  # no positives: 0, not NaN
    assert L.box_loss("ciou") is L.ciou_loss and L.class_loss("focal") is L.focal_loss
    with pytest.raises(ValueError, match="valid: smooth_l1, sum_squared, giou, ciou"):
        L.box_loss("diou")
    with pytest.raises(ValueError, match="reduction"):
        L.reduce(x, "avg")  # type: ignore[arg-type]
