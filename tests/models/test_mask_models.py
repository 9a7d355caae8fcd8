"""The mechanisms of mask_rcnn and panet, each on a tiny input (no data, no training).

Mask R-CNN: RoIAlign samples bilinearly without quantising (unlike RoIPool), one sigmoid mask per
class of which only the ground-truth class's enters the loss.  PANet: N2 is P2, every RoI is pooled
from every level, the fully-connected mask is class-agnostic.  Parameter counts: exact against
torchvision's maskrcnn_resnet50_fpn and against the layer-by-layer count of PANet's additions.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch
import torchvision
from torch import nn
from torchvision.ops import MultiScaleRoIAlign, roi_align, roi_pool

from bench.models import build_model
from bench.models.detection._panet import AdaptiveRoIAlign, BottomUpPath, FusedMaskPredictor

TINY = {"backbone": "resnet18", "fpn_channels": 32, "representation_size": 64, "mask_head_channels": 32,
        "box_batch_size_per_image": 32, "anchor_sizes": [16, 32, 64, 128, 256]}


def tiny(name: str, **params: object) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, 3, 64, {**TINY, **params})


def ramp(size: int, scale: float = 1.0) -> torch.Tensor:
    """``[1, 1, size, size]`` feature map whose value is its x coordinate (in feature pixels) x ``scale``."""
    return (torch.arange(size, dtype=torch.float32) * scale).expand(size, size)[None, None].clone()


def test_roi_align_differs_from_roi_pool_on_a_subpixel_box() -> None:
    """On f(x, y) = x, a 1x1 RoIAlign of [0.3, 0.3, 2.7, 2.7] samples the box centre bilinearly: 1.5;
    RoIPool rounds the box to pixels 0..3 and max-pools: 3."""
    f, box = ramp(8), torch.tensor([[0.0, 0.3, 0.3, 2.7, 2.7]])
    align = roi_align(f, box, output_size=1, spatial_scale=1.0, sampling_ratio=1, aligned=False)
    pool = roi_pool(f, box, output_size=1, spatial_scale=1.0)
    assert align.item() == pytest.approx(1.5) and pool.item() == 3.0


@pytest.mark.parametrize("name", ["mask_rcnn", "panet"])
def test_rois_are_pooled_without_quantisation(name: str) -> None:
    """The models' own poolers (box and mask): shifting a box by 1/4 px shifts every bin of a pooled
    ramp by exactly 1/4 px (RoIPool's rounding would leave it unchanged or jump by whole pixels)."""
    heads = tiny(name).roi_heads
    feats = OrderedDict((str(k), ramp(16 >> k, 4 * 2**k)) for k in range(4))  # P2..P5 (stride 4..32): x in image px
    box = torch.tensor([[10.2, 10.2, 30.2, 30.2]])
    for pooler in (heads.box_roi_pool, heads.mask_roi_pool):
        a, b = (pooler(feats, [box + d], [(64, 64)]) for d in (0.0, 0.25))
        if isinstance(a, list):  # panet: one grid per level; on P5 (stride 32) RoIAlign widens the 20 px box
            a, b = torch.stack(a[:3]), torch.stack(b[:3])  # to one feature pixel and samples clamp at the edge
        assert torch.allclose(b - a, torch.full_like(a, 0.25), atol=1e-5)


def test_mask_rcnn_mask_branch_shapes_and_size_knob() -> None:
    """One M x M mask per class (K + 1 with the background), M = 28 by default and set by ``mask_size``."""
    for m in (28, 14):
        heads = tiny("mask_rcnn", mask_size=m).roi_heads
        logits = heads.mask_predictor(heads.mask_head(torch.randn(2, 32, m // 2, m // 2)))
        assert logits.shape == (2, 4, m, m)
    with pytest.raises(ValueError, match="mask_size must be even"):
        tiny("mask_rcnn", mask_size=27)


def two_objects() -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    torch.manual_seed(1)
    masks = torch.zeros(2, 64, 64, dtype=torch.uint8)
    masks[0, 10:30, 12:34] = 1
    masks[1, 40:60, 35:55] = 1
    target = {"boxes": torch.tensor([[12.0, 10, 34, 30], [35, 40, 55, 60]]), "labels": torch.tensor([1, 3]),
              "masks": masks}
    return [torch.rand(3, 64, 64)], [target]


@pytest.mark.parametrize("name", ["mask_rcnn", "panet"])
def test_mask_loss_reads_only_the_ground_truth_class(name: str) -> None:
    """Per-class sigmoid masks: moving the logits of the background and of class 2 (in no ground truth)
    leaves ``loss_mask`` unchanged; moving those of the ground-truth classes 1 and 3 changes it.  (A
    softmax over classes would couple them.)  Initial mask logits are ~0, so ``loss_mask`` starts at ln 2."""
    model = tiny(name).train()
    logits = model.roi_heads.mask_predictor
    conv = logits.mask_fcn_logits if name == "mask_rcnn" else logits.fcn.mask_fcn_logits
    images, targets = two_objects()

    def loss_after(classes: list[int]) -> float:
        with torch.no_grad():
            conv.bias[classes] -= 3.0
            torch.manual_seed(2)  # the same RoI sampling each time
            return model(images, targets)["loss_mask"].item()

    base = loss_after([])
    assert base == pytest.approx(math.log(2), rel=0.05)
    assert loss_after([0, 2]) == pytest.approx(base, abs=1e-6)
    assert loss_after([1, 3]) > base + 0.3  # mostly foreground targets: BCE -> ~softplus(3) = 3.05 on them


def test_mask_rcnn_eval_outputs_masks_in_the_image() -> None:
    model = tiny("mask_rcnn", box_score_thresh=0.0).eval()
    with torch.no_grad():
        out = model([torch.rand(3, 64, 64)])[0]
    n = len(out["boxes"])
    assert n > 0 and out["masks"].shape == (n, 1, 64, 64)
    assert float(out["masks"].min()) >= 0.0 and float(out["masks"].max()) <= 1.0


def test_panet_n2_is_p2_and_the_path_follows_the_paper() -> None:
    """N2 = P2 exactly; N_{i+1} = ReLU(conv(ReLU(conv_stride2(N_i)) + P_{i+1})); "pool" = N5 max-pooled."""
    body = tiny("panet").backbone
    assert isinstance(body, BottomUpPath)
    body.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        p, n = body.fpn(x), body(x)
        assert torch.equal(n["0"], p["0"])
        expect = p["0"]
        for i, name in enumerate(["1", "2", "3"]):
            expect = torch.relu(body.fuse[i](torch.relu(body.down[i](expect)) + p[name]))
            assert torch.equal(n[name], expect) and not torch.equal(n[name], p[name])
        assert torch.equal(n["pool"], nn.functional.max_pool2d(n["3"], 1, 2))
    assert [c.stride for c in body.down] == [(2, 2)] * 3 and [c.kernel_size for c in body.fuse] == [(3, 3)] * 3


def test_adaptive_pooling_uses_every_level() -> None:
    """A 16 px box is assigned to P2 by FPN's rule (torchvision's pooler reads only that level); PANet's
    pooler reads all four: changing P5 changes its pooled grid and the fused box and mask features."""
    heads = tiny("panet").roi_heads
    assert isinstance(heads.box_roi_pool, AdaptiveRoIAlign) and isinstance(heads.mask_roi_pool, AdaptiveRoIAlign)
    torch.manual_seed(3)
    feats = OrderedDict((str(k), torch.randn(1, 32, 16 >> k, 16 >> k)) for k in range(4))
    moved = OrderedDict(feats, **{"3": feats["3"] + 1.0})
    box, shapes = [torch.tensor([[20.0, 20.0, 36.0, 36.0]])], [(64, 64)]
    single = MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
    assert torch.equal(single(feats, box, shapes), single(moved, box, shapes))  # the control: one level
    with torch.no_grad():
        for pool, head in ((heads.box_roi_pool, heads.box_head), (heads.mask_roi_pool, heads.mask_head)):
            a, b = pool(feats, box, shapes), pool(moved, box, shapes)
            assert len(a) == 4  # one [R, C, S, S] grid per level
            assert all(torch.equal(a[i], b[i]) for i in range(3)) and not torch.equal(a[3], b[3])
            assert not torch.equal(head(a), head(b))


def test_panet_fusion_is_the_elementwise_max_after_the_first_layer() -> None:
    heads = tiny("panet").roi_heads
    x = [torch.randn(5, 32, 7, 7) for _ in range(4)]
    head = heads.box_head
    with torch.no_grad():
        per_level = torch.stack([torch.relu(fc(grid.flatten(1))) for fc, grid in zip(head.fc1, x, strict=True)])
        assert torch.allclose(head(x), torch.relu(head.fc2(per_level.max(0).values)))
    assert tiny("panet", fusion="sum").roi_heads.box_head.fusion == "sum"
    with pytest.raises(ValueError, match="unknown fusion"):
        tiny("panet", fusion="mean")


def test_panet_fully_connected_mask_is_class_agnostic() -> None:
    """FC fusion: conv4_fc (C), conv5_fc (C/2), fc to M*M; the same M x M logits added to every class."""
    pred = FusedMaskPredictor(32, num_classes=4, pool_size=14, mask_size=28)
    assert pred.conv5_fc.out_channels == 16 and (pred.fc.in_features, pred.fc.out_features) == (16 * 14 * 14, 784)
    nn.init.normal_(pred.fc.weight, std=0.01)  # a trained-like fc, so its contribution is visible
    x = torch.randn(3, 32, 14, 14)
    with torch.no_grad():
        fused, fcn = pred(x), pred.fcn(torch.relu(pred.conv4(x)))
    added = fused - fcn  # [R, K + 1, M, M]
    assert added.abs().max() > 1e-3
    assert torch.allclose(added, added[:, :1].expand_as(added), atol=1e-6)


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_exactly() -> None:
    """With torchvision's FrozenBatchNorm mask_rcnn has exactly the published 44,401,393 parameters, and
    with trainable BN exactly torchvision's randomly initialised maskrcnn_resnet50_fpn; PANet adds
    exactly the layer-by-layer count of its additions (bench/models/detection/panet.py)."""
    from bench.models.detection.panet import PANET_R50_FPN_COCO

    with torch.device("meta"):
        frozen = params(build_model("mask_rcnn", 90, 800, {"norm": "frozen_bn"}))
        ours = params(build_model("mask_rcnn", 90, 800, {}))
        tv = params(torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None,
                                                                       num_classes=91))
        panet = params(build_model("panet", 90, 800, {"norm": "frozen_bn"}))
    assert frozen == 44_401_393 and ours == tv
    assert panet == PANET_R50_FPN_COCO
