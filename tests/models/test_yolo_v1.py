"""YOLO v1 (bench/models/detection/_yolo_v1.py): output layout, target assignment and loss on a hand-built
example, decoding.

The hand-built example: a 448 px input, S = 7 (64 px cells), B = 2, C = 3, one object
``[100, 200, 180, 300]`` xyxy (class 2): centre (140, 250) -> column 140 // 64 = 2, row 250 // 64 = 3, offsets
x = 140/64 - 2 = 0.1875, y = 250/64 - 3 = 0.90625, w = 80/448, h = 100/448.
"""

from __future__ import annotations

import math

import pytest
import torch

from bench.models import build_model
from bench.models.detection._yolo_v1 import YoloV1, build_targets, feature_side

X, Y, W, H = 0.1875, 0.90625, 80 / 448, 100 / 448
ROW, COL = 3, 2
GT = [{"boxes": torch.tensor([[100.0, 200.0, 180.0, 300.0]]), "labels": torch.tensor([2])}]


def small(num_classes: int = 3, image_size: int = 448, **kw: float) -> YoloV1:
    """A narrow YOLO v1 (the geometry and loss are the reference's; only the channel counts shrink)."""
    return YoloV1(num_classes, image_size, width=0.125, fc_dim=16, **kw)


def test_reference_output_is_7x7x30_at_448() -> None:
    # The paper's configuration (VOC: C = 20): the last conv map is 7x7 and the output S x S x (B*5 + C).
    assert feature_side(448) == 7
    with torch.device("meta"):
        model = build_model("yolo_v1", 20, 448, {})
        out = model.raw(torch.empty(2, 3, 448, 448))
    assert out.shape == (2, 7, 7, 30)


def test_grid_is_the_output_layout_not_the_conv_map() -> None:
    # A 128 px input has a 2x2 last conv map (stride 64) and still a 7x7 grid; S and B change the layout.
    assert feature_side(128) == 2
    model = YoloV1(3, 128, width=0.125, fc_dim=16, grid_size=5, boxes_per_cell=3).eval()
    assert model.raw(torch.rand(2, 3, 128, 128)).shape == (2, 5, 5, 3 * 5 + 3)
    dets = model([torch.rand(3, 64, 80)])
    assert set(dets[0]) == {"boxes", "scores", "labels"}


def test_targets_hand_built() -> None:
    t = build_targets(GT, 7, 448, torch.device("cpu"))
    assert t["mask"].sum() == 1 and t["mask"][0, ROW, COL]
    assert torch.allclose(t["xy"][0, ROW, COL], torch.tensor([X, Y]))
    assert torch.allclose(t["sqrt_wh"][0, ROW, COL], torch.tensor([math.sqrt(W), math.sqrt(H)]))
    assert t["label"][0, ROW, COL] == 1  # label 2 of 1..K is class index 1


def test_one_object_per_cell_keeps_the_largest() -> None:
    # Two centres in cell (3, 2): the 80x100 box and a 10x10 one at (150, 220); the cell keeps the larger.
    both = [{"boxes": torch.tensor([[100.0, 200.0, 180.0, 300.0], [145.0, 215.0, 155.0, 225.0]]),
             "labels": torch.tensor([2, 3])}]
    for order in ([0, 1], [1, 0]):
        t = build_targets([{k: v[order] for k, v in both[0].items()}], 7, 448, torch.device("cpu"))
        assert t["mask"].sum() == 1 and t["label"][0, ROW, COL] == 1
        assert torch.allclose(t["sqrt_wh"][0, ROW, COL], torch.tensor([math.sqrt(W), math.sqrt(H)]))


def hand_output(model: YoloV1, conf: tuple[float, float], boxes: tuple[list[float], list[float]],
                probs: list[float]) -> torch.Tensor:
    """All-zero output except cell (ROW, COL): its two (x, y, sqrt_w, sqrt_h) boxes, confidences, class probs."""
    out = torch.zeros(1, 7, 7, model.per_cell)
    for j in range(2):
        out[0, ROW, COL, 5 * j: 5 * j + 4] = torch.tensor(boxes[j])
        out[0, ROW, COL, 5 * j + 4] = conf[j]
    out[0, ROW, COL, 10:] = torch.tensor(probs)
    return out


def test_loss_hand_built_second_predictor_responsible() -> None:
    model = small()
    # Predictor 0: a small box elsewhere in the cell (IoU 0).  Predictor 1: the object's centre, half its width
    # (w/2 x h inside w x h: IoU = 1/2), so it is the responsible one and its confidence target is 0.5.
    half_w = math.sqrt(W / 2)
    out = hand_output(model, (0.3, 0.6), ([0.9, 0.1, 0.1, 0.1], [X, Y, half_w, math.sqrt(H)]), [0.2, 0.7, 0.1])
    got = {k: v.item() for k, v in model.loss(out, GT).items()}
    expect = {
        "loss_yolo1_coord": 5.0 * (math.sqrt(W) - half_w) ** 2,   # x, y, sqrt_h exact; sqrt_w off
        "loss_yolo1_obj": (0.6 - 0.5) ** 2,                        # confidence vs IoU 1/2
        "loss_yolo1_noobj": 0.5 * 0.3**2,                          # predictor 0 (every other one outputs 0)
        "loss_yolo1_cls": 0.2**2 + 0.3**2 + 0.1**2,                # vs one-hot (0, 1, 0)
    }
    assert got == pytest.approx(expect, rel=1e-5, abs=1e-7)


def test_loss_hand_built_first_predictor_responsible_and_batch_mean() -> None:
    model = small(lambda_coord=2.0, lambda_noobj=0.25)
    # Predictor 0 is the object exactly (IoU 1); predictor 1 overlaps it less and becomes a "noobj" predictor.
    out = hand_output(model, (0.8, 0.4), ([X, Y, math.sqrt(W), math.sqrt(H)], [X, Y, 0.2, 0.2]), [0.0, 1.0, 0.0])
    one = {k: v.item() for k, v in model.loss(out, GT).items()}
    assert one == pytest.approx({"loss_yolo1_coord": 0.0, "loss_yolo1_obj": (0.8 - 1.0) ** 2,
                                 "loss_yolo1_noobj": 0.25 * 0.4**2, "loss_yolo1_cls": 0.0}, abs=1e-6)
    # Two images, the second empty: every term is summed over the batch and divided by its size (2).
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    two = {k: v.item() for k, v in model.loss(torch.cat([out, out]), [*GT, empty]).items()}
    expect = {k: v / 2 for k, v in one.items()}
    expect["loss_yolo1_noobj"] = (0.25 * 0.4**2 + 0.25 * (0.8**2 + 0.4**2)) / 2  # in image 2 both are noobj
    assert two == pytest.approx(expect, abs=1e-6)


def test_init_loss_is_the_prior() -> None:
    # Zero last-layer weights: every box empty, confidence 0.5, class probs 1/3 (see YoloV1._init_weights).
    model = small().train()
    got = {k: v.item() for k, v in model([torch.rand(3, 448, 448)], GT).items()}
    assert got["loss_yolo1_noobj"] == pytest.approx(0.5 * 0.25 * 97)
    assert got["loss_yolo1_obj"] == pytest.approx(0.25)
    assert got["loss_yolo1_cls"] == pytest.approx(2 / 3)
    assert got["loss_yolo1_coord"] == pytest.approx(5.0 * (X - 0.5) ** 2 + 5.0 * (Y - 0.5) ** 2 + 5.0 * (W + H))


def test_decoding_class_confidence_and_per_class_nms() -> None:
    model = small(score_thresh=0.05, nms_iou=0.5).eval()
    out = torch.zeros(1, 7, 7, model.per_cell)
    # Cell (3, 2), both predictors on the object (same box): class-specific confidences 0.8 x 0.7 and
    # 0.5 x 0.7 for class 2; NMS keeps the first.  Cell (0, 0): a 64 x 64 box of class 3 at 0.9 x 0.5.
    # Out-of-range linear outputs are clamped: conf 1.2 -> 1, a negative class prob -> 0.
    for j, c in enumerate((0.8, 0.5)):
        out[0, ROW, COL, 5 * j: 5 * j + 5] = torch.tensor([X, Y, math.sqrt(W), math.sqrt(H), c])
    out[0, ROW, COL, 10:] = torch.tensor([0.1, 0.7, -0.3])
    out[0, 0, 0, 0:5] = torch.tensor([0.5, 0.5, math.sqrt(1 / 7), math.sqrt(1 / 7), 1.2])
    out[0, 0, 0, 10:] = torch.tensor([0.0, -0.5, 0.5])
    scales = torch.tensor([[448 / 896, 448 / 448]])  # an 896 x 448 (W x H) image resized to the input
    det = model.detect(out, scales)[0]
    order = det["scores"].argsort(descending=True)
    boxes, scores, labels = det["boxes"][order], det["scores"][order], det["labels"][order]
    assert labels[:2].tolist() == [2, 3]
    assert scores[:2].tolist() == pytest.approx([0.56, 0.5])
    assert torch.allclose(boxes[0], torch.tensor([200.0, 200.0, 360.0, 300.0]), atol=1e-3)  # x doubled back
    assert torch.allclose(boxes[1], torch.tensor([0.0, 0.0, 128.0, 64.0]), atol=1e-3)
    # The remaining detections: the object's class-1 score 0.8 x 0.1 = 0.08 (another class, so not suppressed)
    # and cell (3, 2)'s second box for class 1 (0.05, not above the threshold); nothing else.
    assert scores[2:].tolist() == pytest.approx([0.08]) and labels[2:].tolist() == [1]


def test_builder_checks() -> None:
    with pytest.raises(ValueError, match="norm"):
        build_model("yolo_v1", 3, 64, {"norm": "gn"})
    with pytest.raises(ValueError, match="stride"):
        build_model("yolo_v1", 3, 16, {"width": 0.125, "fc_dim": 16})  # 16 -> 8 -> 4, 2, 1, 0


def test_tied_predictors_share_the_responsibility() -> None:
    """At initialisation every predictor is the same empty box (IoU 0 with every object): ties go to a random
    predictor, so each of the B gets coordinate gradients, not only the first."""
    torch.manual_seed(0)
    model = small().train()
    out = torch.zeros(1, 7, 7, model.boxes * 5 + 3, requires_grad=True)
    picked = set()
    for _ in range(20):
        out.grad = None
        model.loss(out, GT)["loss_yolo1_coord"].backward()
        g = out.grad[0, ROW, COL, : model.boxes * 5].reshape(model.boxes, 5).abs().sum(-1)
        picked.add(int(g.argmax()))
    assert picked == set(range(model.boxes))


def test_assigned_names_the_one_object_each_cell_trains() -> None:
    # Cell (3, 2) holds two centres (the 80x100 box and a 10x10 one): only the larger is learnt; a third box
    # alone in cell (0, 0) is.  An image without boxes gives an empty mask.
    boxes = torch.tensor([[145.0, 215.0, 155.0, 225.0], [100.0, 200.0, 180.0, 300.0], [10.0, 10.0, 40.0, 40.0]])
    found = small().assigned([{"boxes": boxes, "labels": torch.tensor([1, 2, 3])},
                              {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}])
    assert found[0].tolist() == [False, True, True] and found[1].shape == (0,)
