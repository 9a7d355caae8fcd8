"""The mechanisms of the proposal-based detectors (fast_rcnn, spp_net) on tiny inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bench.models.detection import _region as R
from bench.models.detection._spp import project_rois, spatial_pyramid_pool, spp_windows


def brute_spp(features: torch.Tensor, cells: list[int], levels: tuple[int, ...]) -> torch.Tensor:
    """The pyramid of one region ``cells`` (inclusive x1, y1, x2, y2), by explicit loops over the
    catalog's windows: bin i starts at i * floor(a / n) and spans ceil(a / n) cells."""
    x1, y1, x2, y2 = cells
    aw, ah = x2 - x1 + 1, y2 - y1 + 1
    parts = []
    for n in levels:
        m = torch.empty(features.shape[0], n, n)
        for i in range(n):
            for j in range(n):
                ys, xs = y1 + i * (ah // n), x1 + j * (aw // n)
                m[:, i, j] = features[:, ys:ys + math.ceil(ah / n), xs:xs + math.ceil(aw / n)].amax((1, 2))
        parts.append(m.flatten())
    return torch.cat(parts)


def test_spp_windows_are_ceil_and_floor() -> None:
    offsets, lengths = spp_windows(torch.tensor([13, 7, 2]), 6)
    assert offsets[0].tolist() == [0, 2, 4, 6, 8, 10] and lengths[0].tolist() == [3] * 6  # conv5 13x13, 6x6 bins
    assert offsets[1].tolist() == [0, 1, 2, 3, 4, 5] and lengths[1].tolist() == [2] * 6
    assert offsets[2].tolist() == [0] * 6 and lengths[2].tolist() == [1] * 6  # a < n: stride 0, window 1
    offsets, lengths = spp_windows(torch.tensor([7]), 4)
    assert offsets[0].tolist() == [0, 1, 2, 3] and lengths[0].tolist() == [2] * 4


def test_spp_gives_a_fixed_length_vector_equal_to_the_catalog_windows() -> None:
    torch.manual_seed(0)
    features = torch.randn(2, 5, 12, 14)
    # A large and a small proposal (and one smaller than a cell) on two images.
    rois = torch.tensor([[0.0, 0.0, 220.0, 190.0], [40.0, 30.0, 100.0, 80.0], [5.0, 5.0, 9.0, 9.0]])
    index = torch.tensor([0, 1, 1])
    levels = (4, 2, 1)
    out = spatial_pyramid_pool(features, rois, index, levels, 16)
    assert out.shape == (3, 5 * (16 + 4 + 1))
    cells = project_rois(rois, 16, 12, 14)
    assert cells.tolist() == [[1, 1, 13, 11], [3, 2, 6, 4], [1, 1, 1, 1]]  # floor(x/16)+1, ceil(x/16)-1, clipped
    for r in range(3):
        assert torch.equal(out[r], brute_spp(features[index[r]], cells[r].tolist(), levels))
    # Not adaptive pooling: for a = 7 cells at n = 4 the windows differ ([0,2),[1,3),... vs [0,2),[1,4),...).
    x = torch.arange(7.0).view(1, 1, 1, 7).expand(1, 1, 7, 7).contiguous()
    ours = spatial_pyramid_pool(x, torch.tensor([[0.0, 0.0, 112.0, 112.0]]) - 16, torch.tensor([0]), (4,), 16)
    assert ours.view(4, 4)[0].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert F.adaptive_max_pool2d(x, 4).view(4, 4)[0].tolist() == [1.0, 3.0, 5.0, 6.0]


def test_spp_gradient_reaches_the_window_maxima() -> None:
    features = torch.zeros(1, 1, 8, 8, requires_grad=True)
    with torch.no_grad():
        features[0, 0, 3, 4] = 5.0
    out = spatial_pyramid_pool(features, torch.tensor([[0.0, 0.0, 128.0, 128.0]]), torch.tensor([0]), (1,), 16)
    out.sum().backward()
    assert features.grad is not None and features.grad[0, 0, 3, 4] == 1.0 and features.grad.sum() == 1.0


def test_box_coding_round_trip_and_normalisation() -> None:
    rois = torch.tensor([[10.0, 10.0, 50.0, 30.0], [0.0, 0.0, 8.0, 8.0]])
    gt = torch.tensor([[12.0, 8.0, 56.0, 34.0], [1.0, 1.0, 9.0, 7.0]])
    t = R.encode_boxes(rois, gt)
    # tx = (gx - px) / pw / 0.1: centres 34 vs 30 over width 40 -> 0.1 / 0.1 = 1.
    assert torch.allclose(t[0, 0], torch.tensor(1.0))
    assert torch.allclose(R.decode_boxes(rois, t), gt, atol=1e-4)
    two = R.decode_boxes(rois, torch.cat([torch.zeros_like(t), t], dim=1))  # per-class layout [N, 4k]
    assert torch.allclose(two[:, :4], rois) and torch.allclose(two[:, 4:], gt, atol=1e-4)


def test_roi_sampling_follows_the_iou_thresholds_and_the_foreground_fraction() -> None:
    torch.manual_seed(0)
    gt = torch.tensor([[10.0, 10.0, 30.0, 30.0]])
    jitter = torch.rand(200, 4) * 16 - 8
    proposals = torch.cat([gt + jitter, torch.tensor([[100.0, 100.0, 120.0, 120.0]])])
    rois, labels, matched = R.sample_rois(proposals, gt, torch.tensor([2]), batch_size=64, fg_fraction=0.25,
                                          fg_iou=0.5, bg_iou=(0.1, 0.5))
    from torchvision.ops import box_iou

    iou = box_iou(rois, gt)[:, 0]
    fg = labels > 0
    assert fg.sum() == 16 and len(rois) == 64 and (labels[fg] == 2).all()
    assert (iou[fg] >= 0.5).all() and ((iou[~fg] >= 0.1) & (iou[~fg] < 0.5)).all()
    assert torch.equal(matched, gt.expand(64, 4))
    # The far box (IoU 0) is never background under the [0.1, 0.5) rule; the ground truth joins the candidates.
    assert not (rois == torch.tensor([100.0, 100.0, 120.0, 120.0])).all(1).any()
    rois, labels, _ = R.sample_rois(torch.zeros(0, 4), gt, torch.tensor([2]), batch_size=64, fg_fraction=0.25,
                                    fg_iou=0.5, bg_iou=(0.1, 0.5))
    assert torch.equal(rois, gt) and labels.tolist() == [2]


def test_postprocess_is_per_class_nms() -> None:
    rois = torch.tensor([[10.0, 10.0, 30.0, 30.0], [11.0, 10.0, 31.0, 30.0], [60.0, 60.0, 70.0, 70.0]])
    logits = torch.tensor([[0.0, 5.0, 5.0], [0.0, 4.0, -9.0], [9.0, -9.0, -9.0]])  # K = 2
    det = R.postprocess(logits, torch.zeros(3, 12), rois, (64, 64), score_thresh=0.05, nms_thresh=0.3,
                        detections_per_img=100)
    # RoIs 0 and 1 overlap (IoU 0.9): class 1 keeps only RoI 1's box (p = 0.98 > 0.50); class 2's box
    # of RoI 0 survives beside it (NMS never compares classes); RoI 2 is background (p < 0.05).
    by_label = dict(zip(det["labels"].tolist(), det["boxes"], strict=True))
    assert sorted(by_label) == [1, 2]
    assert torch.equal(by_label[1], rois[1]) and torch.equal(by_label[2], rois[0])


@pytest.mark.parametrize("name", ["fast_rcnn", "spp_net"])
def test_detector_runs_once_per_image_and_pools_every_proposal(name: str) -> None:
    """One backbone call per batch whatever the number of proposals, fixed-size pooled features."""
    from bench.models import build_model

    torch.manual_seed(0)
    model = build_model(name, 3, 64, {"backbone": "resnet18", "fc_width": 32})
    calls: list[tuple[int, ...]] = []
    model.backbone.register_forward_hook(lambda m, i, o: calls.append(tuple(i[0].shape)))
    pooled: list[tuple[int, ...]] = []
    model.pool.register_forward_hook(lambda m, i, o: pooled.append(tuple(o.shape)))
    props = [torch.tensor([[0.0, 0.0, 64.0, 64.0], [5.0, 5.0, 20.0, 15.0]]), torch.tensor([[30.0, 30.0, 40.0, 60.0]])]
    model.eval()
    with torch.no_grad():
        out = model([torch.rand(3, 64, 64), torch.rand(3, 64, 64)], [{"proposals": p} for p in props])
    assert calls == [(2, 3, 64, 64)] and pooled[0][0] == 3 and len(out) == 2
    width = {"fast_rcnn": 256 * 49, "spp_net": 256 * (36 + 9 + 4 + 1)}[name]
    assert pooled[0][1] == width
