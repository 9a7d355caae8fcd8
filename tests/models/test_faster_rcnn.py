"""Faster R-CNN's reference form: the RPN and the RoI pooling on one stride-16 map, with the paper's anchors and
sampling; the FPN option still builds as torchvision lays it out."""

from __future__ import annotations

import pytest
import torch

from bench.models import build_model


def test_c4_reference_is_the_papers_single_map_rpn() -> None:
    model = build_model("faster_rcnn", 3, 64, {"backbone": "resnet18"})
    rpn = model.rpn
    assert rpn.anchor_generator.sizes == ((128, 256, 512),)  # one map, 3 scales x 3 ratios
    assert rpn.anchor_generator.num_anchors_per_location() == [9]
    assert (rpn.proposal_matcher.high_threshold, rpn.proposal_matcher.low_threshold) == (0.7, 0.3)
    assert rpn.proposal_matcher.allow_low_quality_matches  # each GT's best anchor is positive too
    assert (rpn.fg_bg_sampler.batch_size_per_image, rpn.fg_bg_sampler.positive_fraction) == (256, 0.5)
    assert rpn.nms_thresh == 0.7 and rpn.head.conv.out_channels == 512
    pool = model.roi_heads.box_roi_pool
    assert (pool.feature, pool.op, pool.output_size, pool.scale) == ("res4", "pool", 14, 1 / 16)
    model.eval()
    with torch.no_grad():
        feats = model.backbone(torch.zeros(1, 3, 64, 64))
        assert list(feats) == ["res4"] and feats["res4"].shape[-2:] == (4, 4)  # stride 16
        pooled = pool(feats, [torch.tensor([[0.0, 0.0, 40.0, 30.0]])], [(64, 64)])
        assert pooled.shape == (1, 256, 14, 14)
        assert model.roi_heads.box_head(pooled).shape == (1, 512)  # res5 per RoI, then global average pooling


def test_fpn_option_builds_torchvision_layout() -> None:
    model = build_model("faster_rcnn", 3, 64, {"neck": "fpn", "backbone": "resnet18",
                                               "anchor_sizes": (16, 32, 64, 128, 256)})
    assert model.rpn.anchor_generator.sizes == ((16,), (32,), (64,), (128,), (256,))
    assert type(model.roi_heads.box_roi_pool).__name__ == "MultiScaleRoIAlign"


@pytest.mark.parametrize(("params", "match"), [
    ({"neck": "c4", "fpn_channels": 128}, "neck: fpn only"),
    ({"neck": "fpn", "anchor_sizes": (12, 24, 48)}, "one anchor size per level"),
    ({"neck": "fpn", "roi_op": "pool"}, "MultiScaleRoIAlign"),
    ({"neck": "p4"}, "unknown neck"),
])
def test_options_that_would_not_take_effect_raise(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_model("faster_rcnn", 3, 64, {"backbone": "resnet18", **params})
