"""R-CNN's own mechanisms on tiny inputs: warped regions with context padding, the SVM stage (hard
negatives, ground-truth positives, scoring at test) and the stages that must not move the CNN."""

from __future__ import annotations

import pytest
import torch
import torchvision

from bench.models import build_model
from bench.models.detection._rcnn import RCNN, dilate_for_context, pool5_side, warp_regions

SMALL = {"width": 0.25, "fc_dim": 32, "warp_size": 63, "context_padding": 4, "regions_per_image": 8}


def scene() -> torch.Tensor:
    """A 1-channel-valued [3, 64, 64] image: background 0, a 30x10 bar of 1 (x 10..40, y 20..30) and a
    10x40 bar of 2 (x 50..60, y 10..50)."""
    im = torch.zeros(3, 64, 64)
    im[:, 20:30, 10:40] = 1.0
    im[:, 10:50, 50:60] = 2.0
    return im


def test_regions_of_any_size_and_aspect_warp_to_the_same_square_with_context() -> None:
    size, pad = 32, 4
    boxes = torch.tensor([[10.0, 20.0, 40.0, 30.0], [50.0, 10.0, 60.0, 50.0]])  # 3:1 wide, 1:4 tall
    out = warp_regions(scene(), boxes, size, pad)
    assert out.shape == (2, 3, size, size)
    for k, value in enumerate((1.0, 2.0)):
        inner = out[k, :, pad + 1:size - pad - 1, pad + 1:size - pad - 1]
        # The box fills the central (size - 2 pad) pixels, whatever its aspect (anisotropic warp) ...
        assert torch.allclose(inner, torch.full_like(inner, value), atol=1e-5)
        # ... and the outer pad pixels are its surroundings (background here), not the box.
        ring = torch.cat([out[k, :, :pad - 1].flatten(), out[k, :, size - pad + 1:].flatten(),
                          out[k, :, :, :pad - 1].flatten(), out[k, :, :, size - pad + 1:].flatten()])
        assert ring.abs().max() < 1e-5
    # Without context padding the box fills the whole warp (the outermost samples blend with the
    # pixels next to the box: bilinear sampling of a 10 px side at 32 px reaches 0.4 px beyond it).
    tight = warp_regions(scene(), boxes[:1], size, 0)
    assert torch.allclose(tight[0, :, 2:-2, 2:-2], torch.ones(3, size - 4, size - 4), atol=1e-5)


def test_context_dilation_is_p_pixels_at_the_warped_scale() -> None:
    # Paper: p = 16 at 227 px -> a box of width w grows by 16 w / 195 on each side.
    box = torch.tensor([[100.0, 50.0, 295.0, 89.0]])  # 195 x 39
    assert dilate_for_context(box, 227, 16)[0].tolist() == pytest.approx([84.0, 46.8, 311.0, 92.2])
    with pytest.raises(ValueError, match="context_padding"):
        dilate_for_context(box, 32, 16)


def test_context_outside_the_image_reads_zero() -> None:
    im = torch.ones(3, 16, 16)  # an image of the mean colour + 1 after normalisation
    out = warp_regions(im, torch.tensor([[0.0, 0.0, 16.0, 16.0]]), 24, 4)  # whole image: the context is outside
    assert out[0, :, 0:2].abs().max() < 1e-6 and out[0, :, :, 0:2].abs().max() < 1e-6
    assert torch.allclose(out[0, :, 6:18, 6:18], torch.ones(3, 12, 12))


def test_alexnet_trunk_is_torchvisions_at_width_one() -> None:
    with torch.device("meta"):
        ours = build_model("rcnn", 20, 227, {})
        tv = torchvision.models.alexnet()
    assert {k: v.shape for k, v in ours.features.state_dict().items()} == \
        {k: v.shape for k, v in tv.features.state_dict().items()}
    # fc6 and fc7 are torchvision's classifier.1 and .4; pool5 is 256 x 6 x 6 at 227 px, as in the paper.
    assert ours.fc[1].weight.shape == tv.classifier[1].weight.shape
    assert ours.fc[4].weight.shape == tv.classifier[4].weight.shape
    assert pool5_side(227) == 6 and pool5_side(63) == 1
    assert ours.cls_score.out_features == 21 and ours.svm.out_features == 20 and ours.bbox_reg.out_features == 80


def batch() -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    torch.manual_seed(0)
    images = [scene(), scene().flip(-1)]
    gt = torch.tensor([[10.0, 20.0, 40.0, 30.0], [50.0, 10.0, 60.0, 50.0]])
    flipped = gt[:, [2, 1, 0, 3]] * torch.tensor([-1.0, 1.0, -1.0, 1.0]) + torch.tensor([64.0, 0.0, 64.0, 0.0])
    jitter = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 20.0, 12.0], [30.0, 40.0, 60.0, 60.0],
                           [0.0, 0.0, 64.0, 64.0], [2.0, 2.0, 12.0, 12.0]])
    targets = []
    for boxes in (gt, flipped):
        props = torch.cat([boxes + jitter[1], boxes - jitter[1], jitter[2:]])
        targets.append({"boxes": boxes, "labels": torch.tensor([1, 2]), "proposals": props})
    return images, targets


def test_svm_and_regression_losses_never_reach_the_cnn() -> None:
    model = build_model("rcnn", 2, 64, SMALL)
    images, targets = batch()
    losses = model(images, targets)
    assert set(losses) == {"loss_finetune", "loss_svm", "loss_bbox"}
    assert losses["loss_svm"].item() == 2.0  # zero-initialised SVMs: every hinge term is 1, one mean per class
    (losses["loss_svm"] + losses["loss_bbox"]).backward()
    cnn = [*model.features.parameters(), *model.fc.parameters(), *model.cls_score.parameters()]
    assert all(p.grad is None for p in cnn)
    assert model.svm.weight.grad.abs().sum() > 0 and model.bbox_reg.weight.grad.abs().sum() > 0
    model.zero_grad()
    losses["loss_finetune"].backward()
    assert model.features[0].weight.grad.abs().sum() > 0 and model.svm.weight.grad is None


def test_hard_negatives_are_the_top_scoring_low_iou_regions() -> None:
    model: RCNN = build_model("rcnn", 1, 64, {**SMALL, "svm_hard_negatives": 2, "svm_pos_weight": 2.0,
                                              "svm_l2": 0.0})
    # One image, class 1: a positive (the ground truth) scoring 0.5; negatives (IoU < 0.3) scoring
    # 3, -2, 0 and -0.5; a region at IoU 0.5 (neither) scoring 9.
    scores = torch.tensor([[0.5], [3.0], [-2.0], [0.0], [-0.5], [9.0]])
    mined = [{"boxes": torch.zeros(6, 4), "is_pos": torch.tensor([[True]] + [[False]] * 5),
              "cls_iou": torch.tensor([[1.0], [0.0], [0.1], [0.29], [0.0], [0.5]])}]
    loss = model.svm_loss(scores, mined)
    # Hard negatives: the two highest-scoring negatives (3 and 0), hinge 1 + s; the positive, hinge 1 - s, weight 2.
    expect = (2 * (1 - 0.5) + (1 + 3.0) + (1 + 0.0)) / (2 + 1 + 1)
    assert loss.item() == pytest.approx(expect)


def test_detections_are_scored_by_the_svms_not_the_softmax() -> None:
    model = build_model("rcnn", 2, 64, SMALL).eval()
    images, targets = batch()
    with torch.no_grad():
        model.svm.bias.copy_(torch.tensor([0.25, -0.5]))  # zero weights: every region scores its class's bias
        model.cls_score.bias.copy_(torch.tensor([0.0, 50.0, -50.0]))  # the softmax would say otherwise
        out = model(images, targets)
    for det in out:
        assert len(det["boxes"]) > 0
        assert set(det["scores"].tolist()) <= {0.25, -0.5}
        assert torch.equal(det["scores"] == 0.25, det["labels"] == 1)
    with pytest.raises(ValueError, match="proposals"):
        model(images)
