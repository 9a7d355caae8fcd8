"""YOLOv2 (bench/models/detection/_yolo_v2.py): tensor layout, the passthrough layer, darknet's target assignment
and region loss on hand-built examples, decoding, multi-scale training and the parameter count of yolov2.cfg."""

from __future__ import annotations

import math

import pytest
import torch

from bench.models import build_model
from bench.models.detection import _yolo_v2
from bench.models.detection._yolo_v2 import YoloV2, assign_targets, reorg


def tiny(**kw: object) -> YoloV2:
    """A narrow YOLOv2 on a 64 px input (a 2x2 grid) with two anchors of 16 and 48 px (0.5 and 1.5 cells)."""
    params = {"anchors": [(16.0, 16.0), (48.0, 48.0)], "num_anchors": 2, "width": 0.125, **kw}
    return build_model("yolo_v2", 3, 64, params)


def zero_head(model: YoloV2) -> YoloV2:
    """Every raw output exactly 0: σ(t) = 0.5, e^t = 1, uniform softmax (the state the init-loss entries assume)."""
    torch.nn.init.zeros_(model.head.predict.weight)
    torch.nn.init.zeros_(model.head.predict.bias)
    return model


def test_output_layout_at_416_px() -> None:
    """416 px, 80 classes: a 13x13 map of 5 (5 + 80) = 425 channels (the full network, shapes only)."""
    with torch.device("meta"):
        model = build_model("yolo_v2", 80, 416, {})
        x = torch.empty(2, 3, 416, 416)
        c4, c5 = model.backbone(x)
        out = model.head(c4, c5)
    assert tuple(c4.shape) == (2, 512, 26, 26) and tuple(c5.shape) == (2, 1024, 13, 13)
    assert tuple(out.shape) == (2, 5 * (5 + 80), 13, 13)
    assert tuple(model.raw(x).shape) == (2, 5, 13, 13, 85)


def test_channel_layout_is_anchor_major() -> None:
    """Channel ``a (5 + K) + e`` of the conv output is entry ``e`` (tx, ty, tw, th, to, classes) of anchor ``a``."""
    model = zero_head(tiny()).eval()
    with torch.no_grad():
        model.head.predict.bias[1 * (5 + 3) + 4] = 7.0  # anchor 1's objectness
        out = model.raw(torch.rand(1, 3, 64, 64))
    assert torch.equal(out[0, 1, ..., 4], torch.full((2, 2), 7.0))
    assert out[0, 0].abs().max() == 0 and out[0, 1, ..., :4].abs().max() == 0


def test_passthrough_reorg() -> None:
    """26x26x64 -> 13x13x256, each 2x2 block of a channel stacked into 4 channels (space-to-depth)."""
    x = torch.randn(1, 64, 26, 26)
    y = reorg(x)
    assert y.shape == (1, 256, 13, 13)
    c, i, j, dy, dx = 5, 3, 7, 1, 0
    assert y[0, 4 * c + 2 * dy + dx, i, j] == x[0, c, 2 * i + dy, 2 * j + dx]
    with torch.device("meta"):
        model = build_model("yolo_v2", 80, 416, {})
        fine = model.head.passthrough(torch.empty(1, 512, 26, 26))
    assert tuple(fine.shape) == (1, 64, 26, 26) and tuple(reorg(fine).shape) == (1, 256, 13, 13)
    with pytest.raises(ValueError, match="not divisible"):
        reorg(torch.zeros(1, 4, 5, 6))


def test_parameter_count_of_yolov2_cfg() -> None:
    """Exactly yolov2.cfg's count: Darknet-19's convs and BN, the head's, the 425-way prediction conv."""
    with torch.device("meta"):
        model = build_model("yolo_v2", 80, 416, {})
    n = {part: sum(p.numel() for p in getattr(model, part).parameters()) for part in ("backbone", "head")}
    assert n["backbone"] == 19_802_976 + 14_400
    assert n["head"] == 30_703_616 + 6_272 + 1024 * 425 + 425
    assert sum(n.values()) == 50_962_889


def test_target_assignment_hand_built() -> None:
    """416 px input (13x13 grid, 32 px cells), yolov2.cfg's COCO anchors.  A 100 x 60 px GT centred at (200, 120)
    is (6.25, 3.75) in grid units, 3.125 x 1.875 cells: cell (x 6, y 3).  Centred IoU with the anchors
    (0.57 x 0.68, 1.87 x 2.06, 3.34 x 5.47, 7.88 x 3.53, 9.77 x 9.17): 0.066, 0.566, 0.321, 0.211, 0.065 ->
    anchor 1.  Targets: σ(t_x) = 0.25, σ(t_y) = 0.75, t_w = ln(3.125 / 1.87446) = 0.5111,
    t_h = ln(1.875 / 2.06253) = -0.0953; coord weight 2 - (3.125 / 13)(1.875 / 13) = 1.96533."""
    anchors = torch.tensor(_yolo_v2.YOLOV2_COCO_ANCHORS)
    boxes = torch.tensor([[150.0, 90.0, 250.0, 150.0], [100.0, 300.0, 140.0, 340.0]])
    a = assign_targets([{"boxes": boxes, "labels": torch.tensor([3, 1])}], anchors, 13, 32.0)
    assert a.responsible.sum() == 2 and a.responsible[0, 1, 3, 6]
    torch.testing.assert_close(a.box[0, 1, 3, 6], torch.tensor([0.25, 0.75, 0.5111, -0.0953]), atol=1e-4, rtol=0)
    assert a.scale[0, 1, 3, 6].item() == pytest.approx(1.96533, abs=1e-5)
    assert a.label[0, 1, 3, 6] == 2  # label 3 -> class index 2
    torch.testing.assert_close(a.gt[0, 1, 3, 6], boxes[0] / 32)
    # The second GT: 40 x 40 px at (120, 320) -> cell (x 3, y 10), 1.25 x 1.25 cells: best anchor 1 (IoU 0.404
    # vs 0.248 for anchor 0 and 0.085 for anchor 2).
    assert a.responsible[0, 1, 10, 3]


def test_two_gts_in_one_slot_later_wins() -> None:
    """As darknet's later delta overwrites the earlier one, the last GT of a shared (cell, anchor) slot counts."""
    anchors = torch.tensor([[0.5, 0.5], [1.5, 1.5]])
    boxes = torch.tensor([[4.0, 4.0, 20.0, 20.0], [8.0, 8.0, 24.0, 24.0]])  # both 16 px, cell (0, 0), anchor 0
    a = assign_targets([{"boxes": boxes, "labels": torch.tensor([1, 2])}], anchors, 2, 32.0)
    assert a.responsible.sum() == 1 and a.label[0, 0, 0, 0] == 1
    torch.testing.assert_close(a.box[0, 0, 0, 0, :2], torch.tensor([0.5, 0.5]))


# The hand-built loss example: the tiny model (64 px, 2x2 grid, anchors 0.5 and 1.5 cells), every output 0, one
# GT of 24 x 24 px at (16, 48): grid centre (0.5, 1.5), 0.75 cells -> cell (0, 1), anchor 0 (IoU 0.444 vs 0.25).
# The prediction there is the anchor at the cell's centre: a 0.5-cell box on the GT's centre, IoU 0.25 / 0.5625.
GT = {"boxes": torch.tensor([[4.0, 36.0, 28.0, 60.0]]), "labels": torch.tensor([2])}
IOU = 0.25 / 0.5625
EXPECTED = {
    # ½ x (2 - 0.375^2) x [(0.5 - 0.5)^2 x 2 + 2 ln(0.75 / 0.5)^2]
    "loss_yolo2_coord": 0.5 * (2 - 0.375**2) * 2 * math.log(1.5) ** 2,
    "loss_yolo2_prior": 0.0,  # every other slot already is its anchor at its cell's centre
    "loss_yolo2_obj": 0.5 * 5 * (0.5 - IOU) ** 2,
    "loss_yolo2_noobj": 0.5 * 1 * 0.5**2 * 7,  # 8 slots, one responsible; none overlaps the GT by > 0.6
    "loss_yolo2_cls": math.log(3),  # cross-entropy at uniform logits
}


def test_region_loss_hand_built() -> None:
    model = zero_head(tiny()).train()
    with torch.no_grad():
        losses = model([torch.rand(3, 64, 64)], [GT])
    assert set(losses) == set(EXPECTED)
    for key, value in EXPECTED.items():
        assert losses[key].item() == pytest.approx(value, abs=1e-5), key


def test_region_loss_options_hand_built() -> None:
    """The ignore threshold (at 0.2 the 1.5-cell anchor in the GT's cell, IoU 0.25 with it, is ignored), the
    sum-squared class loss (½ [(1/3 - 1)^2 + 2 (1/3)^2] = 1/3) and the prior term's end."""
    model = zero_head(tiny(ignore_thresh=0.2, class_loss="sum_squared", prior_images=1)).train()
    with torch.no_grad():
        model.head.predict.bias[0] = 1.0  # anchor 0's t_x everywhere: the prior term pulls σ(1) back to 0.5
        losses = model([torch.rand(3, 64, 64)], [GT])
    assert losses["loss_yolo2_noobj"].item() == pytest.approx(0.5 * 0.25 * 6)
    assert losses["loss_yolo2_cls"].item() == pytest.approx(1 / 3)
    # 3 non-responsible anchor-0 slots (the responsible one is in the coord term), ½ x 0.01 x (σ(1) - 0.5)^2
    prior = 0.5 * 0.01 * 3 * (torch.sigmoid(torch.tensor(1.0)).item() - 0.5) ** 2
    assert losses["loss_yolo2_prior"].item() == pytest.approx(prior, rel=1e-5)
    model.seen.fill_(1)  # darknet's seen >= 12800 (here 1): the prior term is off
    with torch.no_grad():
        assert model([torch.rand(3, 64, 64)], [GT])["loss_yolo2_prior"].item() == 0.0


def test_decoding_hand_built() -> None:
    """Slot (anchor 0, cell (0, 1)) at t_x = t_y = 0, t_w = t_h = ln 1.5, t_o = 10, class 2 favoured decodes to the
    GT above (xyxy 4, 36, 28, 60 at 64 px), scaled back to a 32 px image; the others score below threshold."""
    model = tiny(score_thresh=0.1).eval()
    out = torch.full((1, 2, 2, 2, 8), -10.0)
    out[..., :4] = 0.0
    out[0, 0, 1, 0, 2:4] = math.log(1.5)
    out[0, 0, 1, 0, 4] = 10.0
    out[0, 0, 1, 0, 5:] = torch.tensor([0.0, 5.0, 0.0])
    det = model.detect(out, torch.tensor([[2.0, 2.0]]))[0]
    assert det["labels"].tolist() == [2]
    torch.testing.assert_close(det["boxes"], torch.tensor([[2.0, 18.0, 14.0, 30.0]]))
    p = torch.sigmoid(torch.tensor(10.0)) * torch.softmax(torch.tensor([0.0, 5.0, 0.0]), 0)[1]
    torch.testing.assert_close(det["scores"], p[None])


def test_multiscale_sizes() -> None:
    """A new side every ``multiscale_every`` training steps, in [min, max] and a multiple of 32; image_size
    under no_grad (precise BN, the init check) and in eval."""
    torch.manual_seed(0)
    model = tiny(multiscale=(64, 160), multiscale_every=2).train()
    sides: list[int] = []
    model.head.register_forward_hook(lambda m, inp, out: sides.append(out.shape[-1] * 32))
    image, target = [torch.rand(3, 48, 40)] * 2, [GT] * 2
    for _ in range(8):
        model(image, target)
    with torch.no_grad():
        model(image, target)
        model.eval()
        model(image)
    train = sides[:8]
    assert all(s in (64, 96, 128, 160) for s in train)
    assert train[0::2] == train[1::2] and len(set(train)) > 1  # constant within each pair of steps, varies
    assert sides[8:] == [64, 64] and int(model.seen) == 16


def test_anchors_default_and_checks() -> None:
    model = build_model("yolo_v2", 3, 128, {"width": 0.125})
    torch.testing.assert_close(model.anchors[0], torch.tensor([0.57273 * 32 * 128 / 416, 0.677385 * 32 * 128 / 416]))
    torch.testing.assert_close(model.grid_anchors(128), torch.tensor(_yolo_v2.YOLOV2_COCO_ANCHORS) * 4 / 13)
    with pytest.raises(ValueError, match="published anchors"):
        build_model("yolo_v2", 3, 128, {"num_anchors": 3})
    with pytest.raises(ValueError, match="1 anchors given but num_anchors is 2"):
        build_model("yolo_v2", 3, 128, {"num_anchors": 2, "anchors": [[10, 10]]})
    with pytest.raises(ValueError, match="multiple of 32"):
        build_model("yolo_v2", 3, 100, {})


def test_autocast_losses_finite_float32() -> None:
    model = tiny().train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model([torch.rand(3, 64, 64)], [GT])
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()


def test_assigned_follows_the_slots() -> None:
    """``tiny``'s 2x2 grid: two 16 px GTs in cell (0, 0) share anchor 0 (the later is kept); a 48 px GT in the
    same cell takes anchor 1 and is kept too."""
    boxes = torch.tensor([[4.0, 4.0, 20.0, 20.0], [8.0, 8.0, 24.0, 24.0], [0.0, 0.0, 48.0, 48.0]])
    found = tiny().assigned([{"boxes": boxes, "labels": torch.tensor([1, 2, 3])}])
    assert found[0].tolist() == [False, True, True]
