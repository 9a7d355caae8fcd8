"""FCN-32s/16s/8s (``bench/models/segmentation/_fcn.py``): the skips, the deconvolutions and the crops."""

from __future__ import annotations

import pytest
import torch

from bench.models.segmentation._fcn import FCN, bilinear_kernel

K = 4


def tiny(stride: int) -> FCN:
    torch.manual_seed(0)
    return FCN(K, stride, width=1 / 16, fc_dim=8).eval()


@pytest.mark.parametrize("stride", [32, 16, 8])
@pytest.mark.parametrize("size", [32, 37, 64])
def test_output_at_input_resolution(stride: int, size: int) -> None:
    """Pad 100 and Caffe's crops give logits at the input's size, odd sizes included."""
    with torch.no_grad():
        assert tiny(stride)(torch.rand(2, 3, size, size)).shape == (2, K, size, size)


def test_skips_per_variant() -> None:
    """16s adds a pool4 score, 8s a pool4 and a pool3 score; 32s neither."""
    names = {s: {n for n, _ in tiny(s).named_children()} for s in (32, 16, 8)}
    assert not {"score_pool4", "score_pool3"} & names[32]
    assert "score_pool4" in names[16] and "score_pool3" not in names[16]
    assert {"score_pool4", "score_pool3", "upscore_pool4"} <= names[8]


@pytest.mark.parametrize("stride", [16, 8])
def test_skip_scores_reach_the_output_through_learnable_deconvolutions(stride: int) -> None:
    """The x2 deconvolutions are trained (bilinear init); the final one is fixed bilinear; a skip score changes
    the output and receives gradient."""
    model = tiny(stride)
    assert model.upscore2.weight.requires_grad and not model.upscore.weight.requires_grad
    assert torch.equal(model.upscore2.weight, bilinear_kernel(K, 4))
    if stride == 8:
        assert model.upscore_pool4.weight.requires_grad
    skip = model.score_pool3 if stride == 8 else model.score_pool4
    x = torch.rand(1, 3, 48, 48)
    with torch.no_grad():
        before = model(x)
        skip.bias.fill_(1.0)  # zero-initialised: a skip that starts silent must still feed the sum
        skip.bias[0] = -1.0
        after = model(x)
    assert not torch.allclose(before, after)
    model.train()
    model(x)[:, 1].sum().backward()
    assert skip.weight.grad is not None and skip.weight.grad.abs().sum() > 0
    assert model.upscore2.weight.grad is not None and model.upscore.weight.grad is None


def test_score_layers_start_at_the_uniform_prediction() -> None:
    """Zero-initialised score layers: every logit is 0 before training (loss ln K)."""
    with torch.no_grad():
        out = tiny(8)(torch.rand(1, 3, 40, 40))
    assert torch.count_nonzero(out) == 0


def test_bilinear_kernel_interpolates() -> None:
    """The x2 kernel upsamples a constant map to the same constant away from the border."""
    up = torch.nn.functional.conv_transpose2d(torch.ones(1, 1, 6, 6), bilinear_kernel(1, 4), stride=2)
    assert torch.allclose(up[..., 2:-2, 2:-2], torch.ones(1, 1, 10, 10))
