"""YOLOv4: yolov4.cfg's layer layout (CSPDarknet53 + SPP + PANet), the v3 head's output maps and the target
assignment of a hand-built example through the v4 model.

The full-width model at 416 px is built and run on the meta device (shapes only, no arithmetic), so the exact
reference layout is checked in milliseconds.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.models import build_model
from bench.models.detection import _yolo_v4

# yolov3.cfg's COCO anchors at 416 px: integers, so the hand-built boxes below can match them exactly.
ANCHORS = [(10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119), (116, 90), (156, 198), (373, 326)]


def test_output_maps_at_416_are_13_26_52_with_3_times_5_plus_c_channels() -> None:
    with torch.device("meta"):
        model = build_model("yolo_v4", 80, 416, {})
        feats = model.features(torch.empty(2, 3, 416, 416))
        raw = model.raw_outputs(torch.empty(2, 3, 416, 416))
    assert [tuple(f.shape) for f in feats] == [(2, 256, 52, 52), (2, 512, 26, 26), (2, 1024, 13, 13)]
    assert [tuple(r.shape) for r in raw] == [(2, 255, 52, 52), (2, 255, 26, 26), (2, 255, 13, 13)]
    # darknet's layout per map: 3 anchors x (t_x, t_y, t_w, t_h, objectness, 80 class scores).
    assert tuple(model.split(torch.zeros(1, 255, 13, 13)).shape) == (1, 3, 13, 13, 85)


def test_layer_layout_is_yolov4_cfg() -> None:
    """yolov4.cfg has 110 convolutions: 72 in CSPDarknet53 (Mish), 35 in SPP + PANet (leaky), 3 predictions."""
    with torch.device("meta"):
        model = build_model("yolo_v4", 80, 416, {})
    backbone, features = model.features.backbone, model.features
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 110
    assert sum(isinstance(m, nn.Conv2d) for m in backbone.modules()) == 72
    assert sum(isinstance(m, nn.Mish) for m in backbone.modules()) == 72
    assert sum(isinstance(m, nn.LeakyReLU) for m in features.modules()) == 35
    assert not any(isinstance(m, nn.Mish) for name, m in features.named_modules() if not name.startswith("backbone"))
    assert sum(p.numel() for p in backbone.parameters()) == 26_617_184
    assert [len(stage.blocks) for stage in backbone.stages] == [1, 2, 8, 8, 4]
    assert [k.kernel_size for k in features.spp.pools] == [5, 9, 13]
    assert model.box_loss == "ciou"  # the paper's bag of freebies


def test_spp_keeps_resolution_and_concatenates_pools_with_input() -> None:
    x = torch.randn(1, 4, 7, 7)
    out = _yolo_v4.SPP()(x)
    assert out.shape == (1, 16, 7, 7)
    assert torch.equal(out[:, 12:], x)  # the input last, as yolov4.cfg's route -1,-3,-5,-6
    assert torch.equal(out[:, :4], nn.functional.max_pool2d(x, 13, 1, 6))


def test_width_and_depth_multipliers() -> None:
    f = _yolo_v4.YoloV4Features(width=0.25, depth=0.34)
    assert f.out_channels == (64, 128, 256)
    assert [len(stage.blocks) for stage in f.backbone.stages] == [1, 1, 3, 3, 1]
    out = f(torch.zeros(1, 3, 64, 64))
    assert [tuple(o.shape) for o in out] == [(1, 64, 8, 8), (1, 128, 4, 4), (1, 256, 2, 2)]
    with pytest.raises(ValueError, match="multipliers must be > 0"):
        _yolo_v4.YoloV4Features(width=0.0)


def test_default_anchors_are_yolov4_cfg_scaled_from_608() -> None:
    assert _yolo_v4.default_anchors(608)[0] == (12, 16)
    assert _yolo_v4.default_anchors(304)[-1] == (229.5, 200.5)
    model = build_model("yolo_v4", 3, 608, {"width": 0.125, "depth": 0.1})  # no anchors given: the cfg's
    assert model.anchors.tolist() == [list(a) for a in _yolo_v4.COCO_ANCHORS_608]
    with pytest.raises(ValueError, match="2 anchors given but num_anchors is 9"):
        build_model("yolo_v4", 3, 608, {"anchors": ANCHORS[:2]})


def test_target_assignment_of_a_hand_built_example_through_the_model() -> None:
    """Three boxes, each the shape of one anchor, on a 208 px image (the model resizes it 2x to 416): each goes
    to that anchor's scale, the anchor's index within the scale, and the cell holding its centre."""
    torch.manual_seed(0)
    model = build_model("yolo_v4", 3, 416, {"width": 0.125, "depth": 0.1, "anchors": ANCHORS})
    # Boxes in 416 px input coordinates, then halved for the 208 px image.
    boxes416 = torch.tensor([
        [40.0, 60.0, 50.0, 73.0],     # 10 x 13 = anchor 0 -> stride 8, anchor 0, centre (45, 66.5) -> cell (8, 5)
        [200.0, 150.0, 262.0, 195.0],  # 62 x 45 = anchor 4 -> stride 16, anchor 1, centre (231, 172.5) -> (10, 14)
        [222.0, 1.0, 378.0, 199.0],   # 156 x 198 = anchor 7 -> stride 32, anchor 1, centre (300, 100) -> (3, 9)
    ])
    target = {"boxes": boxes416 / 2, "labels": torch.tensor([1, 2, 3])}
    seen: list = []
    assign = model.assign

    def spy(targets, grids):  # noqa: ANN001, ANN202 - the model's own signature
        seen.append((list(grids), assign(targets, grids)))
        return seen[-1][1]

    model.assign = spy  # type: ignore[method-assign]
    model.train()
    losses = model([torch.rand(3, 208, 208)], [target])
    assert set(losses) == {"loss_yolo3_box", "loss_yolo3_obj", "loss_yolo3_cls"}
    assert all(torch.isfinite(v) for v in losses.values())
    grids, per_scale = seen[0]
    assert grids == [52, 26, 13]
    got = [[(int(p["a"][n]), int(p["j"][n]), int(p["i"][n]), int(p["label"][n])) for n in range(len(p["a"]))]
           for p in per_scale]
    # Per scale: (anchor within the scale, cell row, cell column, class 0..K-1).
    assert got == [[(0, 8, 5, 0)], [(1, 10, 14, 1)], [(1, 3, 9, 2)]]
    assert per_scale[0]["txy"][0].tolist() == pytest.approx([45 / 8 - 5, 66.5 / 8 - 8])
    assert per_scale[1]["twh"][0].tolist() == pytest.approx([0.0, 0.0], abs=1e-6)  # the box is its anchor
