"""Train-time augmentations: label-preserving, joint for label maps, bounded."""

from __future__ import annotations

import pytest
import torch

from bench.config.schema import Augment
from bench.engine.data import COLOR_SHIFT, augment

OPS = Augment.__args__  # every op the schema accepts


@pytest.mark.parametrize("op", OPS)
def test_every_op_keeps_shape_range_and_labels(op: str) -> None:
    torch.manual_seed(0)
    x = torch.rand(3, 32, 32)
    y = torch.randint(0, 4, (32, 32))
    for _ in range(5):
        ax, ay = augment(x, y, [op])
        assert ax.shape == x.shape and ay is not None and ay.shape == y.shape
        assert float(ax.min()) >= 0.0 and float(ax.max()) <= 1.0
        assert ay.dtype == torch.int64 and set(ay.unique().tolist()) <= set(range(4))


@pytest.mark.parametrize("op", ["hflip", "vflip", "rot90", "crop"])
def test_geometric_ops_move_image_and_labels_together(op: str) -> None:
    torch.manual_seed(1)
    y = torch.randint(0, 4, (32, 32))
    x = y.float().expand(3, 32, 32) / 3  # the image *is* the label map
    for _ in range(5):
        ax, ay = augment(x, y, [op])
        assert torch.equal((ax[0] * 3).round().long(), ay)


def test_rotate_and_shear_change_the_image() -> None:
    torch.manual_seed(2)
    x = torch.zeros(3, 32, 32)
    x[:, 8:24, 14:18] = 1.0  # a vertical bar
    assert not torch.equal(augment(x, None, ["rotate"])[0], x)
    assert not torch.equal(augment(x, None, ["shear"])[0], x)


def test_color_shift_is_a_per_channel_offset() -> None:
    torch.manual_seed(3)
    x = torch.full((3, 8, 8), 0.5)
    ax, _ = augment(x, None, ["color_shift"])
    offsets = (ax - x).flatten(1)
    assert torch.allclose(offsets, offsets[:, :1].expand_as(offsets))  # one offset per channel
    assert float(offsets.abs().max()) <= COLOR_SHIFT + 1e-6 and float(offsets.abs().max()) > 0
