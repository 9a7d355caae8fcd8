"""SSD300, SSDLite and RetinaNet: the catalog's layout facts and the configurable loss pieces, on hand-built
examples (bench/models/detection/{_ssd,_ssd300_vgg16,_retinanet}.py)."""

from __future__ import annotations

import math

import pytest
import torch

from bench.models import build_model
from bench.models.detection import _ssd
from bench.models.detection._ssd300_vgg16 import map_sizes

K = 3


def ssd_maps(model: torch.nn.Module, size: int) -> list[torch.Tensor]:
    model.eval()
    with torch.no_grad():
        return list(model.backbone(torch.zeros(1, 3, size, size)).values())


def test_ssd300_has_8732_default_boxes_on_six_levels_at_300px() -> None:
    """38, 19, 10, 5, 3, 1 maps with 4, 6, 6, 6, 4, 4 boxes per cell: 8732 (the paper's SSD300).  The layout
    does not depend on the width (1/8 here, for speed)."""
    model = build_model("ssd300_vgg16", K, 300, {"width": 0.125})
    maps = ssd_maps(model, 300)
    assert [m.shape[-1] for m in maps] == [38, 19, 10, 5, 3, 1] == map_sizes(300)
    assert model.anchor_generator.num_anchors_per_location() == [4, 6, 6, 6, 4, 4]
    images = model.transform([torch.rand(3, 64, 80)])[0]
    assert images.tensors.shape[-2:] == (300, 300)  # any input is resized to the fixed 300x300
    assert model.anchor_generator(images, maps)[0].shape == (8732, 4)
    # The head predicts (K+1) scores and 4 offsets for each of them.
    out = model.head(maps)
    assert out["cls_logits"].shape == (1, 8732, K + 1) and out["bbox_regression"].shape == (1, 8732, 4)


def test_ssd300_small_inputs_keep_six_levels() -> None:
    """Below ~270 px conv10_2 / conv11_2 pad instead of shrinking a map under 3x3 (the cpu and smoke inputs)."""
    assert map_sizes(128) == [16, 8, 4, 2, 2, 2]
    model = build_model("ssd300_vgg16", K, 128, {"width": 0.125, "norm": "bn"})
    assert [m.shape[-1] for m in ssd_maps(model, 128)] == [16, 8, 4, 2, 2, 2]


def test_default_box_scales_follow_the_papers_formula() -> None:
    """s_k = s_min + (s_max - s_min)(k - 1)/(m - 1), k = 1..6, then s_7 = 1 for the extra square box; the config's
    s_min, s_max and explicit scales take effect."""
    paper = _ssd.default_boxes([[2]] * 6, 0.2, 0.9)
    assert paper.scales == pytest.approx([0.2, 0.34, 0.48, 0.62, 0.76, 0.9, 1.0])
    model = build_model("ssd300_vgg16", K, 300, {"width": 0.125, "s_min": 0.1, "s_max": 0.6})
    assert model.anchor_generator.scales == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1.0])
    ladder = [0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05]  # torchvision's SSD300 COCO scales
    assert _ssd.default_boxes([[2]] * 6, 0.2, 0.9, ladder).scales == ladder
    # level 1 of the paper's boxes at 300 px: ratio-1 box of side 0.2 x 300 = 60, the extra one sqrt(0.2 x 0.34)
    wh = paper._wh_pairs[0] * 300
    extra = 300 * math.sqrt(0.2 * 0.34)
    assert wh[:3].flatten().tolist() == pytest.approx([60, 60, extra, extra, 60 * math.sqrt(2), 60 / math.sqrt(2)])


def test_hard_negatives_keep_the_ratio_of_highest_loss_negatives() -> None:
    loss = torch.tensor([[5.0, 0.1, 0.9, 0.3, 0.7, 0.5, 0.2, 0.8]])
    positive = torch.zeros(1, 8, dtype=torch.bool)
    positive[0, 0] = True  # the highest loss is a positive: never mined
    assert _ssd.hard_negatives(loss, positive, 3.0)[0].nonzero().flatten().tolist() == [2, 4, 7]
    assert _ssd.hard_negatives(loss, positive, 1.0)[0].nonzero().flatten().tolist() == [2]
    # more negatives asked for than exist: all of them, no positive
    assert _ssd.hard_negatives(loss, positive, 100.0)[0].tolist() == [False] + [True] * 7


@pytest.mark.parametrize("neg_to_pos", [3.0, 1.0])
def test_ssd_conf_loss_at_uniform_logits_is_one_plus_ratio_ln_k_plus_1(neg_to_pos: float) -> None:
    """Zero logits: every CE is ln(K+1); N positives + ratio x N mined negatives, over N: (1 + ratio) ln(K+1).
    The matched box's encoded offsets against zero predictions give the smooth L1 by hand."""
    model = build_model("ssd300_vgg16", K, 64, {"width": 0.125, "norm": "bn", "neg_to_pos": neg_to_pos})
    anchors = torch.tensor([[0.0, 0, 10, 10], [0, 0, 20, 20], [10, 10, 30, 30], [30, 30, 60, 60], [5, 5, 50, 50]])
    target = {"boxes": torch.tensor([[0.0, 0, 20, 20]]), "labels": torch.tensor([2])}
    matched = torch.tensor([-1, 0, -1, -1, -1])
    outputs = {"cls_logits": torch.zeros(1, 5, K + 1), "bbox_regression": torch.zeros(1, 5, 4)}
    losses = model.compute_loss([target], outputs, [anchors], [matched])
    assert set(losses) == {"loss_ssd_conf", "loss_ssd_loc"}
    assert losses["loss_ssd_conf"].item() == pytest.approx((1 + neg_to_pos) * math.log(K + 1))
    assert losses["loss_ssd_loc"].item() == pytest.approx(0.0, abs=1e-6)  # the anchor is the box: zero offsets
    # shift the GT by 2 px: encoded dx = 10 x 2/20 = 1 (variance 0.1), dy likewise; smooth L1(1) = 0.5 each
    target["boxes"] = torch.tensor([[2.0, 2, 22, 22]])
    assert model.compute_loss([target], outputs, [anchors], [matched])["loss_ssd_loc"].item() == pytest.approx(1.0)


def test_ssdlite_builds_its_six_levels_and_losses() -> None:
    model = build_model("ssdlite_mobilenet", K, 128, {"width_mult": 0.5})
    assert [m.shape[-1] for m in ssd_maps(model, 128)] == [8, 4, 2, 1, 1, 1]  # strides 16, 32, 64 .. (C4, C5, extras)
    assert model.anchor_generator.num_anchors_per_location() == [6] * 6
    model.train()  # two images: BatchNorm on the 1x1 extra maps needs more than one value per channel
    target = {"boxes": torch.tensor([[10.0, 10, 40, 50]]), "labels": torch.tensor([1])}
    assert set(model([torch.rand(3, 64, 64)] * 2, [target] * 2)) == {"loss_ssd_conf", "loss_ssd_loc"}


def small_retinanet(**params: object) -> torch.nn.Module:
    return build_model("retinanet", K, 64, {"backbone": "resnet18", "fpn_channels": 32,
                                            "anchor_base_sizes": [8, 16, 32, 64, 128], **params})


def test_retinanet_p3_to_p7_nine_anchors_and_matcher_thresholds() -> None:
    model = small_retinanet()
    model.eval()
    with torch.no_grad():
        maps = list(model.backbone(torch.zeros(1, 3, 128, 128)).values())
    assert [m.shape[-1] for m in maps] == [16, 8, 4, 2, 1]  # strides 8, 16, 32, 64, 128
    assert model.anchor_generator.num_anchors_per_location() == [9] * 5
    sizes = model.anchor_generator.sizes
    assert sizes[0] == pytest.approx((8, 8 * 2 ** (1 / 3), 8 * 2 ** (2 / 3)))
    assert model.anchor_generator.aspect_ratios[0] == (0.5, 1.0, 2.0)
    matcher = model.proposal_matcher
    assert (matcher.high_threshold, matcher.low_threshold, matcher.allow_low_quality_matches) == (0.5, 0.4, True)
    assert small_retinanet(fg_iou_thresh=0.6, bg_iou_thresh=0.3).proposal_matcher.low_threshold == 0.3


@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (0.5, 0.0)])
def test_retinanet_focal_alpha_gamma_take_effect(alpha: float, gamma: float) -> None:
    """One positive anchor (label 2: output 1) among three, one ignored: the loss is the α-balanced focal sum
    over the two valid anchors' K outputs, divided by the one positive."""
    head = small_retinanet(focal_alpha=alpha, focal_gamma=gamma).head.classification_head
    logits = torch.tensor([[[0.0, 1.0, -1.0], [2.0, -2.0, 0.5], [3.0, 3.0, 3.0]]])
    matched = torch.tensor([0, -1, -2])  # positive, background, ignored (IoU in [0.4, 0.5))
    target = {"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([2])}
    got = head.compute_loss([target], {"cls_logits": logits}, [matched]).item()
    p = torch.sigmoid(logits[0, :2])
    t = torch.zeros(2, K)
    t[0, 1] = 1
    p_t = p * t + (1 - p) * (1 - t)
    expected = (-(alpha * t + (1 - alpha) * (1 - t)) * (1 - p_t) ** gamma * p_t.log()).sum().item()
    assert got == pytest.approx(expected, rel=1e-5)


def test_retinanet_loss_names_and_smooth_l1_beta() -> None:
    model = small_retinanet(box_beta=0.5, score_thresh=0.005)
    model.train()
    target = {"boxes": torch.tensor([[10.0, 10, 40, 50]]), "labels": torch.tensor([3])}
    losses = model([torch.rand(3, 64, 64)], [target])
    assert set(losses) == {"loss_focal", "loss_retina_box"}
    model.eval()
    with torch.no_grad():  # at init every score is the prior 0.01 (> the 0.005 threshold): labels are 1..K
        labels = model([torch.rand(3, 64, 64)])[0]["labels"]
    assert len(labels) and set(labels.tolist()) <= set(range(1, K + 1))
    reg = model.head.regression_head
    anchors = torch.tensor([[0.0, 0, 10, 10]])
    outputs = {"bbox_regression": torch.zeros(1, 1, 4)}
    # GT 10 px right of the anchor: dx = 1 (weights 1), others 0; smooth L1 with β 0.5: |1| - 0.25 = 0.75
    shifted = {"boxes": torch.tensor([[10.0, 0, 20, 10]]), "labels": torch.tensor([1])}
    assert reg.compute_loss([shifted], outputs, [anchors], [torch.tensor([0])]).item() == pytest.approx(0.75)


def test_retinanet_gn_head_keeps_eight_channels_per_group_and_runs_at_batch_one() -> None:
    """At 64 px the P7 map is 1x1: 32 groups of a 32-channel head would hold one value each, which GroupNorm
    maps to its bias (and torch refuses at batch 1).  The head keeps the reference's 8 channels per group."""
    model = small_retinanet(head_norm="gn")
    groups = {m.num_groups for m in model.head.modules() if isinstance(m, torch.nn.GroupNorm)}
    assert groups == {4}
    assert {m.num_groups for m in build_model("retinanet", K, 64, {"head_norm": "gn"}).head.modules()
            if isinstance(m, torch.nn.GroupNorm)} == {32}  # 256 channels: torchvision's 32 groups
    model.eval()
    with torch.no_grad():
        out = model([torch.rand(3, 64, 64)])
    assert len(out) == 1 and out[0]["boxes"].shape[-1] == 4
