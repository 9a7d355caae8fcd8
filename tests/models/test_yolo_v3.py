"""YOLOv3 (bench/models/detection/_yolo_v3.py): output layout, target assignment on a hand-built example,
the ignore rule, box decoding and the loss pieces."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.ops import box_iou

from bench.models.detection import _yolo_v3
from bench.models.detection.yolo_v3 import build_yolo_v3

K = 3


def small(image_size: int = 416, **kw: object) -> _yolo_v3.YoloV3Detector:
    """A narrow, shallow YOLOv3 (same head, anchors and layout as the reference) for fast checks."""
    torch.manual_seed(0)
    return build_yolo_v3(K, image_size, width=0.125, depth=0.1, **kw)


def test_reference_output_layout_at_416() -> None:
    """Full Darknet-53 at 416 px, 80 classes: maps 13x13, 26x26, 52x52 with 3 (5 + 80) = 255 channels."""
    with torch.device("meta"):
        model = build_yolo_v3(80, 416)
        maps = model.raw_outputs(torch.empty(2, 3, 416, 416))
    assert [tuple(m.shape) for m in maps] == [(2, 255, 52, 52), (2, 255, 26, 26), (2, 255, 13, 13)]
    convs = [m for m in model.features.backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 52 and all(c.bias is None for c in convs)  # Darknet-53's 52 convs, BN after each
    assert all(h.bias is not None for h in model.heads)


def test_small_anchors_on_stride_8() -> None:
    """The COCO default anchors (sorted by area) scale with the input; three per scale, smallest on P3."""
    model = small(832)
    assert torch.allclose(model.scale_anchors(0), torch.tensor([[20.0, 26.0], [32, 60], [66, 46]]))
    assert torch.allclose(model.scale_anchors(2)[-1], torch.tensor([746.0, 652.0]))


def test_assignment_hand_built() -> None:
    """Two boxes at 416 px with the COCO anchors.

    A 120x95 box centred at (100, 200): its shape IoU is 116*90 / (120*95) = 0.916 with anchor (116, 90), the
    7th of 9 (0.369 with (156, 198)), so scale 2 (stride 32), its anchor 0, cell column floor(100/32) = 3,
    row floor(200/32) = 6, offsets (100/32 - 3, 200/32 - 6) = (0.125, 0.25), log sizes (log 120/116, log 95/90).
    A 12x14 box centred at (50, 60): IoU 130/168 = 0.774 with (10, 13), the 1st anchor: scale 0 (stride 8),
    anchor 0, cell (6, 7), offsets (0.25, 0.5), log sizes (log 1.2, log(14/13)).
    """
    model = small()
    boxes = torch.tensor([[40.0, 152.5, 160.0, 247.5], [44.0, 53.0, 56.0, 67.0]])
    pos = model.assign([{"boxes": boxes, "labels": torch.tensor([2, 3])}], [52, 26, 13])
    assert pos[1] == {}
    big, tiny = pos[2], pos[0]
    assert (big["b"].tolist(), big["a"].tolist(), big["i"].tolist(), big["j"].tolist()) == ([0], [0], [3], [6])
    assert torch.allclose(big["txy"], torch.tensor([[0.125, 0.25]]))
    assert torch.allclose(big["twh"], torch.tensor([[math.log(120 / 116), math.log(95 / 90)]]))
    assert big["label"].tolist() == [1]
    assert (tiny["a"].tolist(), tiny["i"].tolist(), tiny["j"].tolist()) == ([0], [6], [7])
    assert torch.allclose(tiny["txy"], torch.tensor([[0.25, 0.5]]))
    assert torch.allclose(tiny["twh"], torch.tensor([[math.log(1.2), math.log(14 / 13)]]), atol=1e-6)
    assert tiny["label"].tolist() == [2]


def test_assignment_same_slot_keeps_the_last_box() -> None:
    """Two boxes on one (anchor, cell): darknet's later ground truth overwrites the earlier one."""
    model = small()
    boxes = torch.tensor([[40.0, 152.5, 160.0, 247.5], [41.0, 153.0, 161.0, 248.0]])
    pos = model.assign([{"boxes": boxes, "labels": torch.tensor([1, 2])}], [52, 26, 13])
    assert pos[2]["label"].tolist() == [1] and torch.allclose(pos[2]["box"], boxes[1:])


def test_decode_boxes() -> None:
    """σ(0) + c_x = c_x + 0.5 cells; w = p_w e^{t_w}: t_w = ln 2 doubles the anchor."""
    model = small()
    p = torch.zeros(1, 3, 13, 13, 5 + K)
    p[0, 1, 6, 3, 2:4] = math.log(2.0)
    box = model.decode_boxes(p, 2)[0, 1, 6, 3]
    w, h = 2 * model.scale_anchors(2)[1]
    cx, cy = 3.5 * 32, 6.5 * 32
    assert torch.allclose(box, torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]))


def perfect_cell(pos: dict[str, torch.Tensor]) -> torch.Tensor:
    """Prediction rows ``[P, 5 + K]`` that match the assignment exactly."""
    cell = torch.zeros(len(pos["a"]), 5 + K)
    cell[:, :2] = torch.logit(pos["txy"])
    cell[:, 2:4] = pos["twh"]
    return cell


@pytest.mark.parametrize("name", ["mse", "giou", "ciou"])
def test_box_loss_zero_at_a_perfect_prediction(name: str) -> None:
    model = small(box_loss=name)
    pos = model.assign([{"boxes": torch.tensor([[40.0, 152.5, 160.0, 247.5]]), "labels": torch.tensor([1])}],
                       [52, 26, 13])[2]
    assert model.box_term(perfect_cell(pos), pos, 2).abs().max() < 1e-4
    off = perfect_cell(pos)
    off[:, 2] += 0.5
    assert model.box_term(off, pos, 2).min() > 0.01


def test_mse_box_term_weighs_small_boxes_more() -> None:
    """The (2 - w h) scale: the same offset error costs more on a small box (w h relative to the input)."""
    model = small(box_loss="mse")
    pos = model.assign([{"boxes": torch.tensor([[40.0, 152.5, 160.0, 247.5]]), "labels": torch.tensor([1])}],
                       [52, 26, 13])[2]
    cell = perfect_cell(pos)
    cell[:, 2] += 0.5
    expected = (2 - 120 * 95 / 416**2) * 0.25
    assert torch.allclose(model.box_term(cell, pos, 2), torch.tensor([expected]), atol=1e-5)


def test_ignore_thresh_spares_overlapping_predictions() -> None:
    """A confident prediction overlapping a ground truth by IoU > 0.5 is not a no-object example."""
    model = small()
    gt = torch.tensor([[40.0, 152.5, 160.0, 247.5]])
    pos = model.assign([{"boxes": gt, "labels": torch.tensor([1])}], [52, 26, 13])[2]
    p = torch.zeros(1, 3, 13, 13, 5 + K)
    p[..., 4] = -30.0  # every prediction confidently "no object" ...
    neighbour = model.decode_boxes(p, 2)[0, 0, 6, 2]  # anchor 0 one cell to the left, at σ(0) offsets
    assert box_iou(neighbour[None], gt).item() > 0.5
    p[0, 0, 6, 3, 4] = 30.0  # the positive (anchor 0, row 6, column 3) is not a negative either
    assert model.noobject_loss(p, 2, pos, [gt]).item() < 1e-6
    p[0, 0, 6, 2, 4] = 30.0  # confident there: ignored, so still ~0
    assert model.noobject_loss(p, 2, pos, [gt]).item() < 1e-6
    p[0, 0, 0, 12, 4] = 30.0  # confident far from the box: penalised, 30 nats over the counted predictions
    assert model.noobject_loss(p, 2, pos, [gt]).item() > 30 / (3 * 13 * 13)


def test_initial_losses_and_names() -> None:
    """At init: objectness -ln 0.01 (positives at the prior) + 3 x -ln 0.99 (each scale's negatives), classes ln 2
    (logits ~0, mean over positives x K)."""
    model = small(64).train()
    images = [torch.rand(3, 64, 64), torch.rand(3, 48, 80)]
    targets = [{"boxes": torch.tensor([[4.0, 4, 30, 28], [30, 30, 60, 62]]), "labels": torch.tensor([1, 3])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    out = model(images, targets)
    assert set(out) == {"loss_yolo3_box", "loss_yolo3_obj", "loss_yolo3_cls"}
    assert abs(out["loss_yolo3_obj"].item() - (-math.log(0.01) - 3 * math.log(0.99))) < 0.1
    assert abs(out["loss_yolo3_cls"].item() - math.log(2)) < 0.05
    assert out["loss_yolo3_box"].item() > 0


def test_eval_outputs_in_image_pixels() -> None:
    """Eval mode: boxes in each image's own pixels (the square input scaled back), labels 1..K."""
    model = small(64).eval()
    model.score_thresh = 0.0
    with torch.no_grad():
        out = model([torch.rand(3, 32, 128)])
    det = out[0]
    assert det["boxes"].shape[1] == 4 and len(det["boxes"]) == len(det["scores"]) == len(det["labels"]) > 0
    assert det["boxes"][:, [0, 2]].max() <= 128 and det["boxes"][:, [1, 3]].max() <= 32
    assert det["labels"].min() >= 1 and det["labels"].max() <= K


def test_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        build_yolo_v3(K, 100, width=0.125, depth=0.1)
    with pytest.raises(ValueError, match="box_loss"):
        build_yolo_v3(K, 64, width=0.125, depth=0.1, box_loss="l1")
    with pytest.raises(ValueError, match="num_anchors"):
        build_yolo_v3(K, 64, anchors=[(10.0, 10.0)] * 6)


def test_assigned_counts_objects_in_one_cell_on_distinct_anchors() -> None:
    """Three boxes centred in one 32 px cell: two of the same shape (one slot, the later kept) and a small one
    whose best anchor is on another scale (kept)."""
    boxes = torch.tensor([[40.0, 152.5, 160.0, 247.5], [41.0, 153.0, 161.0, 248.0], [94.0, 193.0, 106.0, 207.0]])
    found = small().assigned([{"boxes": boxes, "labels": torch.tensor([1, 2, 3])}])
    assert found[0].tolist() == [False, True, True]
