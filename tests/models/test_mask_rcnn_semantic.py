"""mask_rcnn_semantic's two rules, on hand-built inputs: label map -> instance targets (one per 8-connected
component of each class), detections -> per-pixel class scores (score x mask, the highest wins, background where
below 0.5); and the wrapper around mask_rcnn's network (the classes, the modes, the params)."""

from __future__ import annotations

import pytest
import torch

from bench.models import build_model, check_params
from bench.models.segmentation._mask_rcnn_semantic import instance_targets, merge_detections

TINY = {"backbone": "resnet18", "fpn_channels": 32, "representation_size": 64, "mask_head_channels": 32,
        "mask_size": 14, "box_batch_size_per_image": 32, "anchor_sizes": [16, 32, 64, 128, 256]}


def label_map() -> torch.Tensor:
    """``[1, 12, 16]``: class 1 twice (a 3x4 block and an L whose foot touches its stem only diagonally), class 2
    once (touching the first class-1 block: different classes never merge), an ignored 255 patch."""
    y = torch.zeros(1, 12, 16, dtype=torch.int64)
    y[0, 1:4, 1:5] = 1  # rows 1-3, cols 1-4
    y[0, 1:4, 5:8] = 2  # rows 1-3, cols 5-7: adjacent to the first class-1 block
    y[0, 6:10, 10] = 1  # rows 6-9, col 10 ...
    y[0, 10, 11:14] = 1  # ... and row 10, cols 11-13, touching (9, 10) diagonally only
    y[0, 6:8, 1:3] = 255
    return y


def test_targets_are_the_connected_components_of_each_class() -> None:
    y = label_map()
    (t,) = instance_targets(y, num_classes=3)
    assert t["labels"].tolist() == [1, 1, 2]
    # pixel-edge boxes [x0, y0, x1 + 1, y1 + 1]
    assert t["boxes"].tolist() == [[1, 1, 5, 4], [10, 6, 14, 11], [5, 1, 8, 4]]
    assert t["boxes"].dtype == torch.float32 and t["masks"].dtype == torch.uint8 and t["masks"].shape == (3, 12, 16)
    for mask, k in zip(t["masks"], [1, 1, 2], strict=True):
        assert bool((y[0][mask.bool()] == k).all())  # each mask lies in its class
    assert int(t["masks"].sum()) == int(((y == 1) | (y == 2)).sum()) == 12 + 7 + 9  # every class pixel, once
    assert not t["masks"][:, 6:8, 1:3].any()  # ignored pixels are in no instance


def test_touching_same_class_objects_merge_and_an_empty_map_has_no_instances() -> None:
    y = torch.zeros(2, 8, 8, dtype=torch.int64)
    y[0, 1:3, 1:3] = 1
    y[0, 3:5, 3:5] = 1  # meets the first at a corner: one instance
    first, empty = instance_targets(y, num_classes=2)
    assert first["labels"].tolist() == [1] and first["boxes"].tolist() == [[1, 1, 5, 5]]
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,) and empty["masks"].shape == (0, 8, 8)


def test_merge_keeps_the_most_confident_instance_per_pixel() -> None:
    """Two overlapping detections on a 1 x 4 image: class 1 at score 0.9 with mask (1, 1, 0.6, 0), class 2 at
    0.8 with mask (0, 1, 1, 0.5); a second class-1 detection, score 0.3, everywhere 1 (max within a class)."""
    scores = torch.tensor([0.9, 0.8, 0.3])
    labels = torch.tensor([1, 2, 1])
    masks = torch.tensor([[1.0, 1.0, 0.6, 0.0], [0.0, 1.0, 1.0, 0.5], [1.0, 1.0, 1.0, 1.0]]).reshape(3, 1, 1, 4)
    out = merge_detections([{"scores": scores, "labels": labels, "masks": masks}], num_classes=3, size=(1, 4))
    assert out.shape == (1, 3, 1, 4)
    expect_1 = torch.tensor([0.9, 0.9, 0.54, 0.3])  # max(0.9 x mask, 0.3 x 1)
    expect_2 = torch.tensor([0.0, 0.8, 0.8, 0.4])
    assert torch.allclose(out[0, 1, 0], expect_1) and torch.allclose(out[0, 2, 0], expect_2)
    assert torch.allclose(out[0, 0, 0], 1 - torch.maximum(expect_1, expect_2))
    # pixel 1: both at 1.0 mask, the higher score wins; pixel 2: 0.8 x 1 beats 0.9 x 0.6; pixel 3: below 0.5
    assert out.argmax(1)[0, 0].tolist() == [1, 1, 2, 0]


def test_no_detections_is_all_background() -> None:
    none = {"scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 1, 5, 6)}
    out = merge_detections([none, none], num_classes=4, size=(5, 6))
    assert out.shape == (2, 4, 5, 6) and bool((out[:, 0] == 1).all()) and bool((out[:, 1:] == 0).all())


def test_wrapper_classes_modes_and_params() -> None:
    """num_classes includes the background: the detector gets K = 3 object classes (4 box scores, not 5); eval
    scores are probabilities in [0, 1]; the train-mode losses are Mask R-CNN's five; forward needs eval mode."""
    torch.manual_seed(0)
    model = build_model("mask_rcnn_semantic", 4, 64, TINY)
    assert model.detector.roi_heads.box_predictor.cls_score.out_features == 4
    x, y = torch.randn(2, 3, 64, 64), torch.zeros(2, 64, 64, dtype=torch.int64)
    y[0, 10:30, 10:30], y[1, 40:50, 20:44] = 1, 3
    model.train()
    losses = model.segmentation_loss(x, y)
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask"}
    with pytest.raises(RuntimeError, match="call segmentation_loss"):
        model(x)
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 4, 64, 64) and float(out.min()) >= 0 and float(out.max()) <= 1
    assert check_params("mask_rcnn_semantic", {"mask_size": 14}, "cfg") == {"mask_size": 14}  # mask_rcnn's knobs
    with pytest.raises(ValueError, match="did you mean 'mask_size'"):
        check_params("mask_rcnn_semantic", {"mask_sise": 14}, "cfg")
