"""R-FCN's own mechanism on tiny inputs: position-sensitive RoI pooling keeps the k x k bin structure, voting
averages the bins, and the dilated res5 keeps the stride-16 map the RPN and the score maps share."""

from __future__ import annotations

import pytest
import torch

from bench.models import build_model
from bench.models.detection import _r_fcn, _rpn


@pytest.mark.parametrize("op", ["pool", "align"])
def test_position_sensitive_pooling_keeps_the_bin_structure(op: str) -> None:
    """Maps whose channel (g, i, j) is the constant c[g, i, j] pool to exactly c[g, i, j] in bin (i, j) of
    group g, for RoIs of any size and place: each bin reads only its own channel."""
    k, groups, stride = 3, 2, 16
    c = torch.arange(groups * k * k, dtype=torch.float32).reshape(groups, k, k) + 1.0
    maps = c.reshape(1, groups * k * k, 1, 1).expand(1, -1, 8, 8).contiguous()  # a 128 px image at stride 16
    boxes = [torch.tensor([[0.0, 0.0, 128.0, 128.0], [20.0, 36.0, 70.0, 60.0], [50.0, 50.0, 66.0, 66.0]])]
    pooled = _r_fcn.ps_pool(maps, boxes, k, stride, op, sampling_ratio=2)
    assert pooled.shape == (3, groups, k, k)
    assert torch.equal(pooled, c.expand(3, -1, -1, -1))
    # Voting: each group's score is the mean of its k x k bins.
    assert torch.allclose(_r_fcn.Vote()(pooled), c.mean(dim=(1, 2)).expand(3, -1))


def test_bins_read_their_own_part_of_the_roi() -> None:
    """A map that is 1 only in the top-left cell of a 2x2-cell RoI, on bin (0, 0)'s channel: bin (0, 0) sees it,
    the other bins (reading other channels) do not, so position is encoded by the channel, not the pooling."""
    k = 2
    maps = torch.zeros(1, k * k, 4, 4)
    maps[0, 0, 1, 1] = 1.0  # channel of bin (0, 0), cell (row 1, col 1)
    maps[0, 3, 1, 1] = 5.0  # bin (1, 1)'s channel at the same cell: outside bin (1, 1) of the RoI
    pooled = _r_fcn.ps_pool(maps, [torch.tensor([[16.0, 16.0, 48.0, 48.0]])], k, 16, "pool", 0)
    assert pooled[0, 0].tolist() == [[1.0, 0.0], [0.0, 0.0]]


def test_predictor_repeats_the_class_agnostic_box_for_every_class() -> None:
    voted = torch.tensor([[0.1, 0.2, 0.3, 1.0, 2.0, 3.0, 4.0]])  # 3 classes (background included) + 4 deltas
    logits, deltas = _r_fcn.RFCNPredictor(3)(voted)
    assert torch.equal(logits, voted[:, :3])
    assert torch.equal(deltas.reshape(1, 3, 4), voted[:, 3:].expand(1, 3, 4))


def test_dilated_res5_keeps_stride_16() -> None:
    body = _r_fcn.DilatedBody(_rpn.resnet_trunk("r_fcn", "resnet18", "bn")).eval()
    with torch.no_grad():
        out = body(torch.zeros(1, 3, 64, 96))
    assert out["res4"].shape == (1, 256, 4, 6) and out["res5"].shape == (1, 512, 4, 6)
    assert all(m.dilation == (2, 2) for m in body.layer4.modules() if isinstance(m, torch.nn.Conv2d)
               and m.kernel_size == (3, 3))


def test_rpn_reads_only_res4() -> None:
    """The RPN shares res4 (as in the paper), not res5: one map, 9 anchors per location."""
    model = build_model("r_fcn", 3, 64, {"backbone": "resnet18", "k": 3, "anchor_sizes": (12, 24, 48)})
    assert model.rpn.feature == "res4"
    assert model.rpn.anchor_generator.num_anchors_per_location() == [9]
    assert model.rpn.head.conv.in_channels == 256  # resnet18's res4 width
