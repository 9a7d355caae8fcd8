"""YOLOv5 (v6.0+ layout): output layout, multipliers, the v5 target assignment on a hand-built example, decoding,
and the loss at initialisation derived from the Detect bias init."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bench.models import build_model
from bench.models.detection import _yolo_v5
from bench.models.detection._losses import ciou

# The hand-built example: a 64 px input, one 12 x 20 px GT centred at (21, 13); anchors chosen so that the
# w/h-ratio test (< 4) keeps anchors 1 and 2 on P3 and 0 and 1 on P4, none on P5 (sorted by area: P3 the
# smallest three).
SIZE = 64
GT_XYXY = (15.0, 3.0, 27.0, 23.0)
ANCHORS = [(4, 4), (10, 14), (12, 40), (24, 24), (30, 30), (56, 56), (60, 60), (64, 64), (64, 80)]
# Per scale: which anchors pass, and the 3 cells (row gj, column gi).
#  P3 (stride 8): centre (2.625, 1.625) cells, w/h (1.5, 2.5).  Anchor (4, 4): 20 / 4 = 5 >= 4, out; (10, 14):
#   ratios 1.2, 1.43; (12, 40): 1, 2.  Fractions 0.625 / 0.625: the neighbours nearest the centre are to the
#   right (x: 8 - 2.625 = 5.375, fraction 0.375 < 0.5) and below (y: 6.375): cells (1, 2), (1, 3), (2, 2).
#  P4 (stride 16): centre (1.3125, 0.8125), w/h (0.75, 1.25) against anchors 1.5, 1.875, 3.5: ratios 2, 2.5,
#   4.67 (out).  x fraction 0.3125 < 0.5 and x > 1: the left neighbour; y = 0.8125 is in the first row, and
#   4 - 0.8125 = 3.1875 has fraction 0.19: the neighbour below.  Cells (0, 1), (0, 0), (1, 1).
#  P5 (stride 32): anchors 60-80 px against 12 px: ratio >= 5, no positives.
EXPECTED = {
    0: {(a, gj, gi) for a in (1, 2) for gj, gi in ((1, 2), (1, 3), (2, 2))},
    1: {(a, gj, gi) for a in (0, 1) for gj, gi in ((0, 1), (0, 0), (1, 1))},
    2: set(),
}


def grid_targets(stride: int) -> torch.Tensor:
    """The GT as build_targets' ``[1, 6]`` row (image 0, class 1, cx, cy, w, h) in grid units."""
    x0, y0, x1, y1 = GT_XYXY
    return torch.tensor([[0.0, 1.0, (x0 + x1) / 2 / stride, (y0 + y1) / 2 / stride, (x1 - x0) / stride,
                          (y1 - y0) / stride]])


def model(k: int = 3, size: int = SIZE, **params: object) -> _yolo_v5.YoloV5Detector:
    torch.manual_seed(0)
    return build_model("yolo_v5", k, size, {"variant": "n", "anchors": ANCHORS, **params})


def test_output_layout_at_640() -> None:
    """v5n at 640 px, 80 classes: maps 80x80, 40x40, 20x20 of 3 * (5 + 80) = 255 channels (stride 8, 16, 32)."""
    net = build_model("yolo_v5", 80, 640, {"variant": "n"}).eval()
    raw = []
    hooks = [conv.register_forward_hook(lambda _m, _i, out: raw.append(out.shape)) for conv in net.detect.m]
    with torch.no_grad():
        outs = net.head_outputs(torch.zeros(1, 3, 640, 640))
    for h in hooks:
        h.remove()
    assert raw == [torch.Size([1, 255, n, n]) for n in (80, 40, 20)]
    assert [o.shape for o in outs] == [torch.Size([1, 3, n, n, 85]) for n in (80, 40, 20)]


def test_multipliers_follow_parse_model() -> None:
    """Channels ceil(c * width / 8) * 8, repeats max(round(n * depth), 1); explicit multipliers override."""
    with torch.device("meta"):
        s = build_model("yolo_v5", 80, 640, {"variant": "s"})
        x = build_model("yolo_v5", 80, 640, {"variant": "x"})
        own = build_model("yolo_v5", 80, 640, {"variant": None, "depth_multiple": 0.5, "width_multiple": 0.3})
    assert s.backbone.stem[0].out_channels == 32 and s.backbone.stem[0].kernel_size == (6, 6)
    assert s.backbone.stem[0].stride == (2, 2)
    assert len(s.backbone.stage4[1].m) == 3 and len(x.backbone.stage4[1].m) == 12  # 9 x 0.33, 9 x 1.33
    assert x.backbone.stage5[2].cv2[0].out_channels == 1280  # SPPF at 1024 x 1.25
    assert own.backbone.stem[0].out_channels == 24 and len(own.backbone.stage3[1].m) == 3  # ceil(19.2/8)*8; 6 x 0.5
    assert own.detect.m[2].in_channels == 312  # ceil(1024 * 0.3 / 8) * 8
    # Shortcuts in the backbone's bottlenecks, none in the neck's.
    assert all(b.add for b in s.backbone.stage3[1].m) and not any(b.add for b in s.neck.out3.m)


def test_builder_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        build_model("yolo_v5", 3, 80, {})
    with pytest.raises(ValueError, match="depth_multiple and width_multiple"):
        build_model("yolo_v5", 3, 64, {"variant": None, "width_multiple": 0.5})
    with pytest.raises(ValueError, match="anchors given"):
        build_model("yolo_v5", 3, 64, {"anchors": ANCHORS[:6]})


@pytest.mark.parametrize("scale", [0, 1, 2])
def test_target_assignment_hand_built(scale: int) -> None:
    """Which scale, which anchors (w/h ratio < 4, not IoU), which 3 cells, and the offsets to the cell corner."""
    stride = _yolo_v5.STRIDES[scale]
    anchors = torch.tensor(ANCHORS[3 * scale:3 * scale + 3], dtype=torch.float32) / stride
    n = SIZE // stride
    b, a, gj, gi, tbox, tcls = _yolo_v5.build_targets(grid_targets(stride), anchors, (n, n), 4.0)
    assert set(zip(a.tolist(), gj.tolist(), gi.tolist(), strict=True)) == EXPECTED[scale]
    assert len(a) == len(EXPECTED[scale]) and (b == 0).all() and (tcls == 1).all()
    if scale == 0:  # own cell (1, 2): (0.625, 0.625); right neighbour (1, 3): x offset 2.625 - 3 = -0.375
        own = (gj == 1) & (gi == 2)
        right = (gj == 1) & (gi == 3)
        assert torch.allclose(tbox[own], torch.tensor([[0.625, 0.625, 1.5, 2.5]]).expand(2, 4))
        assert torch.allclose(tbox[right][:, :2], torch.tensor([[-0.375, 0.625]]).expand(2, 2))


def test_decoding() -> None:
    """One confident (cell, anchor): xy = (2 sigma - 0.5 + c) * stride, wh = (2 sigma)^2 * anchor, label = argmax
    class + 1, score = objectness x class probability; boxes mapped back to image pixels."""
    net = model().eval()
    outs = [torch.full((1, 3, SIZE // s, SIZE // s, 8), -12.0) for s in _yolo_v5.STRIDES]
    cell = outs[1][0, 2, 1, 3]  # P4, anchor 2 (56 x 56), row 1, column 3
    cell[:4] = torch.tensor([0.0, math.log(3.0), 0.0, 0.0])  # sigma = 0.5, 0.75; wh = anchor
    cell[4], cell[7] = 12.0, 12.0  # objectness, class index 2
    scales = torch.tensor([[0.5, 2.0]])  # the image was 128 wide, 32 high
    det = net.decode(outs, scales)[0]
    cx, cy = (0.5 * 2 - 0.5 + 3) * 16, (0.75 * 2 - 0.5 + 1) * 16  # 56, 32 input px
    want = torch.tensor([(cx - 28) / 0.5, (cy - 28) / 2.0, min(cx + 28, SIZE) / 0.5, min(cy + 28, SIZE) / 2.0])
    assert det["labels"][0] == 3 and torch.allclose(det["boxes"][0], want)
    assert det["scores"][0] == pytest.approx(torch.sigmoid(torch.tensor(12.0)).item() ** 2, rel=1e-5)


def zero_head(net: _yolo_v5.YoloV5Detector) -> None:
    """Detect weights 0 and biases at exactly v5's prior: every logit is its bias, and each predicted box is its
    anchor centred in its cell."""
    with torch.no_grad():
        for conv in net.detect.m:
            conv.weight.zero_()
            conv.bias.zero_()
    net.detect.reset_biases(net.num_classes)


def anchor_at_centre(scale: int, a: int, gj: int, gi: int) -> torch.Tensor:
    """``[4]`` xyxy (grid units) of anchor ``a`` of ``scale`` centred in cell (gj, gi): the prediction of a zero head
    (xy = 2 sigma(0) - 0.5 = 0.5, wh = (2 sigma(0))^2 anchor = anchor)."""
    stride = _yolo_v5.STRIDES[scale]
    aw, ah = (v / stride for v in ANCHORS[3 * scale + a])
    return torch.tensor([gi + 0.5 - aw / 2, gj + 0.5 - ah / 2, gi + 0.5 + aw / 2, gj + 0.5 + ah / 2])


def test_bias_init_priors() -> None:
    """Objectness log(8 / (640 / s)^2), classes log(0.6 / (C - 0.99)), added to the conv's default bias."""
    net = model(k=80)
    zero_head(net)
    for conv, s in zip(net.detect.m, _yolo_v5.STRIDES, strict=True):
        b = conv.bias.view(3, 85)
        assert torch.allclose(b[:, 4], torch.tensor(math.log(8 / (640 / s) ** 2)))
        assert torch.allclose(b[:, 5:], torch.tensor(math.log(0.6 / 79.01)))
        assert (b[:, :4] == 0).all()


def test_initial_losses_derived_from_the_bias_init() -> None:
    """With the head at its bias prior, the three losses follow by hand from the assignment above: positives'
    predicted boxes are their anchors at the cell centre, t = their CIoU with the GT; BCE(b, t) = softplus(b) - t b.
    Gains: box 0.05, objectness 1.0 x (64 / 640)^2 with balance 4, 1, 0.4, classes 0.5 x 3 / 80."""
    k = 3
    net = model(k=k).train()
    zero_head(net)
    image = torch.rand(3, SIZE, SIZE)
    target = {"boxes": torch.tensor([GT_XYXY]), "labels": torch.tensor([2])}
    got = net([image], [target])
    box = obj = cls = 0.0
    bc = math.log(0.6 / (k - 0.99))
    per_positive_cls = (F.softplus(torch.tensor(-bc)) + (k - 1) * F.softplus(torch.tensor(bc))).item() / k
    for scale, stride in enumerate(_yolo_v5.STRIDES):
        n = SIZE // stride
        bo = math.log(8 / (640 / stride) ** 2)
        gt = torch.tensor(GT_XYXY) / stride
        t = torch.tensor([float(ciou(anchor_at_centre(scale, a, gj, gi), gt)) for a, gj, gi in EXPECTED[scale]])
        obj += (0.04, 0.01, 0.004)[scale] * (F.softplus(torch.tensor(bo)).item() - float(t.clamp(min=0).sum()) * bo
                                             / (3 * n * n))  # 4, 1, 0.4 x (64 / 640)^2
        if len(t):
            box += 0.05 * float((1 - t).mean())
            cls += 0.5 * k / 80 * per_positive_cls
    assert got["loss_yolo5_box"].item() == pytest.approx(box, rel=1e-4)
    assert got["loss_yolo5_obj"].item() == pytest.approx(obj, rel=1e-4)
    assert got["loss_yolo5_cls"].item() == pytest.approx(cls, rel=1e-4)


def test_losses_are_means_not_scaled_by_batch() -> None:
    """The batch twice over gives the same losses (v5's x batch-size factor is left to the lr)."""
    net = model().train()
    images = [torch.rand(3, SIZE, SIZE), torch.rand(3, 48, 80)]
    targets = [{"boxes": torch.tensor([GT_XYXY]), "labels": torch.tensor([2])},
               {"boxes": torch.tensor([[40.0, 10.0, 70.0, 40.0]]), "labels": torch.tensor([1])}]
    one, two = net(images, targets), net(images * 2, targets * 2)
    for key in one:
        assert two[key].item() == pytest.approx(one[key].item(), rel=1e-4), key


def test_assigned_keeps_every_object_that_passes_the_shape_test() -> None:
    """The hand-built GT and a copy of it (the same cells and anchors: v5 keeps both) are learnt; a 60x2 px
    sliver fails the w/h-ratio test on every anchor and gets no positive."""
    boxes = torch.tensor([GT_XYXY, GT_XYXY, (2.0, 30.0, 62.0, 32.0)])
    found = model().assigned([{"boxes": boxes, "labels": torch.tensor([1, 2, 3])}])
    assert found[0].tolist() == [True, True, False]
