"""The dense CRF (bench.engine.dense_crf): the mean-field update against a pixel-by-pixel loop, sharpening toward
an image edge, and the downsampled approximation against the exact result."""

from __future__ import annotations

import math

import pytest
import torch

from bench.engine.dense_crf import CrfParams, dense_crf


def naive_crf(probs: torch.Tensor, image: torch.Tensor, p: CrfParams) -> torch.Tensor:
    """The paper's mean-field written out pair by pair (float64), for a handful of pixels."""
    c, h, w = probs.shape
    pix = [(y, x) for y in range(h) for x in range(w)]
    rgb = image.double() * 255

    def k_app(i: tuple[int, int], j: tuple[int, int]) -> float:
        d2, c2 = (i[0] - j[0]) ** 2 + (i[1] - j[1]) ** 2, float(((rgb[:, i[0], i[1]] - rgb[:, j[0], j[1]]) ** 2).sum())
        return math.exp(-d2 / (2 * p.theta_alpha**2) - c2 / (2 * p.theta_beta**2))

    def k_smooth(i: tuple[int, int], j: tuple[int, int]) -> float:
        return math.exp(-((i[0] - j[0]) ** 2 + (i[1] - j[1]) ** 2) / (2 * p.theta_gamma**2))

    # symmetric normalisation: each kernel over sqrt(d_i d_j), d its row sums (the pixel itself included)
    deg = {kern: {i: sum(kern(i, j) for j in pix) for i in pix} for kern in (k_app, k_smooth)}
    norm = {kern: (lambda i, j, d=d: 1 / math.sqrt(d[i] * d[j])) if p.normalization == "symmetric"
            else (lambda i, j: 1.0) for kern, d in deg.items()}
    unary = -torch.log(probs.double().clamp(min=1e-8))
    q = torch.softmax(-unary, 0)
    for _ in range(p.iterations):
        new = torch.empty_like(q)
        for yi, xi in pix:
            m = torch.zeros(c, dtype=torch.float64)
            for yj, xj in pix:
                if (yi, xi) == (yj, xj):
                    continue
                i, j = (yi, xi), (yj, xj)
                k = p.w_app * k_app(i, j) * norm[k_app](i, j) + p.w_smooth * k_smooth(i, j) * norm[k_smooth](i, j)
                m += k * q[:, yj, xj]
            energy = unary[:, yi, xi] + (m.sum() - m)  # Potts: the messages of every other label
            new[:, yi, xi] = torch.softmax(-energy, 0)
        q = new
    return q


@pytest.mark.parametrize("normalization", ["symmetric", "none"])
def test_matches_the_pairwise_loop(normalization: str) -> None:
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(3, 4, 5), 0)
    image = torch.rand(3, 4, 5)
    p = CrfParams(w_app=2.0, theta_alpha=3.0, theta_beta=40.0, w_smooth=1.0, theta_gamma=1.5, iterations=3,
                  normalization=normalization)
    torch.testing.assert_close(dense_crf(probs, image, p).double(), naive_crf(probs, image, p), atol=1e-5, rtol=0)


def edge_scene() -> tuple[torch.Tensor, torch.Tensor]:
    """An 8 x 40 image, dark left of column 20 and bright from it; the foreground probability rises softly
    around column 14 (a blurred, misplaced boundary)."""
    image = torch.full((3, 8, 40), 0.1)
    image[:, :, 20:] = 0.9
    x = torch.arange(40, dtype=torch.float32)
    fg = torch.sigmoid((x - 14) / 3).expand(8, 40)
    return torch.stack([1 - fg, fg]), image


def boundary(probs: torch.Tensor) -> float:
    """Mean over rows of the first column labelled foreground."""
    return (probs.argmax(0) == 0).sum(1).float().mean().item()


def test_sharpens_toward_the_image_edge() -> None:
    probs, image = edge_scene()
    p = CrfParams(w_app=5.0, theta_alpha=10.0, theta_beta=10.0, w_smooth=1.0, theta_gamma=1.0, iterations=10)
    q = dense_crf(probs, image, p)
    assert boundary(probs) == 15.0  # sigmoid > 0.5 from column 15
    assert boundary(q) == 20.0  # the labels follow the edge

    def entropy(t: torch.Tensor) -> float:
        return float(-(t * t.clamp(min=1e-12).log()).sum(0).mean())

    assert entropy(q) < 0.5 * entropy(probs)  # and the map is sharper
    torch.testing.assert_close(q.sum(0), torch.ones(8, 40))


def test_downsampled_approximation_agrees_with_the_exact_labels() -> None:
    """64 x 64 exactly (4096 pixels), then pooled by 2 (max_pixels 1024): the label maps agree almost everywhere."""
    torch.manual_seed(1)
    image = torch.zeros(3, 64, 64)
    image[:, 16:48, 20:52] = 1.0  # a bright square
    truth = (image[0] > 0.5).float()
    noisy = (0.7 * truth + 0.15 + 0.25 * torch.randn(64, 64)).clamp(0.01, 0.99)
    probs = torch.stack([1 - noisy, noisy])
    p = CrfParams(w_app=5.0, theta_alpha=8.0, theta_beta=20.0, w_smooth=2.0, theta_gamma=1.0, iterations=5)
    exact = dense_crf(probs, image, p).argmax(0)
    approx = dense_crf(probs, image, CrfParams(**{**p.__dict__, "max_pixels": 1024})).argmax(0)
    assert (exact == approx).float().mean() > 0.97
    assert (exact.float() == truth).float().mean() > (probs.argmax(0).float() == truth).float().mean()


def test_bad_shapes_are_an_error() -> None:
    with pytest.raises(ValueError, match=r"expected probs \[C, H, W\] and image \[3, H, W\] of the same size"):
        dense_crf(torch.rand(2, 4, 4), torch.rand(3, 4, 5))


def test_agrees_with_pydensecrf() -> None:
    """The oracle, where the optional `crf` extra (pydensecrf2, built from source) is installed: a noisy
    3-class scene through both, with the same kernels and 5 iterations.  The reference's permutohedral
    lattice is itself an approximation, so agreement is measured, not exact."""
    dcrf = pytest.importorskip("pydensecrf.densecrf")
    import numpy as np

    torch.manual_seed(0)
    h, w, c = 24, 32, 3
    rgb = torch.zeros(h, w, 3, dtype=torch.uint8)
    rgb[6:18, 8:26] = 204
    rgb[:, 20:, 0] = (rgb[:, 20:, 0].int() + 38).to(torch.uint8)
    truth = torch.zeros(h, w, dtype=torch.long)
    truth[6:18, 8:26] = 1
    truth[:, 28:] = 2
    logits = 2.0 * torch.nn.functional.one_hot(truth, c).permute(2, 0, 1).float() + 1.2 * torch.randn(c, h, w)
    probs = torch.softmax(logits, 0)
    p = CrfParams(w_app=4.0, theta_alpha=10.0, theta_beta=13.0, w_smooth=3.0, theta_gamma=3.0, iterations=5)
    d = dcrf.DenseCRF2D(w, h, c)
    d.setUnaryEnergy(np.ascontiguousarray(-np.log(probs.numpy().reshape(c, -1).clip(1e-8)), dtype=np.float32))
    d.addPairwiseGaussian(sxy=p.theta_gamma, compat=p.w_smooth)
    d.addPairwiseBilateral(sxy=p.theta_alpha, srgb=p.theta_beta, rgbim=np.ascontiguousarray(rgb.numpy()),
                           compat=p.w_app)
    ref = torch.from_numpy(np.array(d.inference(p.iterations))).reshape(c, h, w)
    ours = dense_crf(probs, rgb.permute(2, 0, 1).float() / 255, p)
    agreement = (ours.argmax(0) == ref.argmax(0)).float().mean().item()
    print(f"label agreement {agreement:.4f}, mean |dQ| {(ours - ref).abs().mean().item():.4f}")
    assert agreement >= 0.97 and (ours - ref).abs().mean() < 0.02
    assert (ours.argmax(0) == truth).float().mean() > (probs.argmax(0) == truth).float().mean() + 0.1
