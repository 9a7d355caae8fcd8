"""hog_svm: the HOG descriptor against a plain NumPy loop and scikit-image, the SVM against LinearSVC.

Conventions (``bench.models.classification._hog``): 9 bins centred on 10, 30, ..., 170 degrees;
unsigned angle ``atan2(g_row, g_col) mod 180`` with rows pointing down; reflect-padded centred
differences; votes split linearly between the two nearest centres; cell sums; 2x2-cell blocks,
L2-Hys with ``v / sqrt(|v|^2 + eps^2)``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.models import build_model
from bench.models.classification._hog import (
    BT601,
    HOG,
    HOGSVM,
    cell_histograms,
    descriptor_length,
    dominant_channel,
    gradients,
    orientation_votes,
)

EPS, CLIP = 1e-5, 0.2


# --- (a) an independent, deliberately naive NumPy implementation -------------------------------

def reflect(i: int, n: int) -> int:
    """Index ``i`` in ``[-1, n]`` reflected into ``[0, n)`` without repeating the edge (-1 -> 1)."""
    return 1 if i < 0 else (n - 2 if i >= n else i)


def naive_hog(img: np.ndarray, cell: int = 8, bins: int = 9, block: int = 2, norm: str = "L2-Hys",
              colour: str = "max") -> np.ndarray:
    """HOG of ``img [C, H, W]`` (float64) by loops over pixels, cells and blocks."""
    if colour == "grey" and img.shape[0] == 3:
        img = sum(w * img[c] for c, w in enumerate(BT601))[None]
    n_ch, h, w = img.shape
    hist = np.zeros((h // cell, w // cell, bins))
    width = 180.0 / bins
    for y in range(h):
        for x in range(w):
            best = None  # (magnitude, g_row, g_col) of the strongest channel, first one on ties
            for c in range(n_ch):
                g_row = img[c, reflect(y + 1, h), x] - img[c, reflect(y - 1, h), x]
                g_col = img[c, y, reflect(x + 1, w)] - img[c, y, reflect(x - 1, w)]
                mag = math.hypot(g_row, g_col)
                if best is None or mag > best[0]:
                    best = (mag, g_row, g_col)
            mag, g_row, g_col = best
            angle = math.degrees(math.atan2(g_row, g_col)) % 180.0
            pos = angle / width - 0.5  # bin i is centred on (i + 0.5) * width
            lo = math.floor(pos)
            frac = pos - lo
            hist[y // cell, x // cell, lo % bins] += mag * (1 - frac)
            hist[y // cell, x // cell, (lo + 1) % bins] += mag * frac
    out = []
    for by in range(h // cell - block + 1):
        for bx in range(w // cell - block + 1):
            v = hist[by:by + block, bx:bx + block, :].ravel()
            if norm in ("L2", "L2-Hys"):
                v = v / math.sqrt(float(np.sum(v * v)) + EPS**2)
                if norm == "L2-Hys":
                    v = np.minimum(v, CLIP)
                    v = v / math.sqrt(float(np.sum(v * v)) + EPS**2)
            else:
                v = v / (float(np.sum(v)) + EPS)
                if norm == "L1-sqrt":
                    v = np.sqrt(v)
            out.append(v)
    return np.concatenate(out)


def torch_hog(img: np.ndarray, **kw: object) -> np.ndarray:
    """Our module on one ``[C, H, W]`` image, as float64 NumPy."""
    return HOG(**kw)(torch.from_numpy(img).float()[None])[0].double().numpy()


@pytest.mark.parametrize(("size", "norm", "colour"), [
    (32, "L2-Hys", "max"), (24, "L2-Hys", "grey"), (16, "L2", "max"), (16, "L1", "max"), (16, "L1-sqrt", "grey"),
])
def test_matches_naive_numpy_loops(size: int, norm: str, colour: str) -> None:
    rng = np.random.default_rng(size)
    for _ in range(2):
        img = rng.normal(0.0, 1.0, (3, size, size))  # the engine's normalised range
        ours, ref = torch_hog(img, block_norm=norm, colour=colour), naive_hog(img, norm=norm, colour=colour)
        assert ours.shape == ref.shape == (descriptor_length(size),)
        np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_other_cell_block_and_bin_counts() -> None:
    img = np.random.default_rng(1).normal(0.0, 1.0, (3, 24, 24))
    np.testing.assert_allclose(torch_hog(img, cell_size=6, bins=12, block_size=3),
                               naive_hog(img, cell=6, bins=12, block=3), atol=1e-5)


def test_batched_equals_one_by_one() -> None:
    x = torch.randn(5, 3, 32, 32)
    hog = HOG()
    np.testing.assert_allclose(hog(x), torch.cat([hog(x[i:i + 1]) for i in range(5)]), atol=1e-6)


# --- (b) the proportional vote split on single-orientation ramps -------------------------------

def ramp(theta_deg: float, size: int = 32) -> torch.Tensor:
    """``I = cos(t) col + sin(t) row``: every interior gradient is ``2 (sin t, cos t)`` (row, col), angle t."""
    t = math.radians(theta_deg)
    r, c = np.mgrid[0:size, 0:size].astype(np.float64)
    return torch.from_numpy(math.cos(t) * c + math.sin(t) * r)[None, None].float()


def cells_of(x: torch.Tensor) -> torch.Tensor:
    """Cell histograms ``[bins, rows, cols]`` of one image."""
    return cell_histograms(orientation_votes(*dominant_channel(*gradients(x)), 9), 8)[0]


@pytest.mark.parametrize(("theta", "expected"), [
    (20.0, {0: 64.0, 1: 64.0}),   # halfway between the 10 and 30 degree centres: half each
    (25.0, {0: 32.0, 1: 96.0}),   # 3/4 of the way to 30: 1/4 stays with 10
    (30.0, {1: 128.0}),           # on a centre: no split
    (90.0, {4: 128.0}),
    (5.0, {0: 96.0, 8: 32.0}),    # wraps: 5 is 5 deg from 10 and 15 deg from 170 (= -10)
    (175.0, {8: 96.0, 0: 32.0}),
    (-20.0, {7: 64.0, 8: 64.0}),  # a gradient at -20 deg is the unsigned orientation 160
])
def test_proportional_vote_split(theta: float, expected: dict[int, float]) -> None:
    # Interior cell (1, 1) of a 32 px ramp: 64 pixels of magnitude 2, so 128 to share.
    hist = cells_of(ramp(theta))[:, 1, 1]
    want = torch.zeros(9)
    for k, v in expected.items():
        want[k] = v
    torch.testing.assert_close(hist, want, atol=1e-3, rtol=0)


def test_border_pixels_at_zero_degrees_split_between_170_and_10() -> None:
    # Cell (0, 1) of the 20-degree ramp: 56 interior pixels as above, and the 8 pixels of row 0,
    # whose row derivative is 0 (reflect padding): angle exactly 0, magnitude 2 cos 20, split
    # half to the 10-degree bin and half to the 170-degree bin.
    hist = cells_of(ramp(20.0))[:, 0, 1]
    edge = 8 * 2 * math.cos(math.radians(20.0)) / 2
    want = torch.zeros(9)
    want[0], want[1], want[8] = 56.0 + edge, 56.0, edge
    torch.testing.assert_close(hist, want, atol=1e-3, rtol=0)


# --- (c) scikit-image, where the conventions agree ---------------------------------------------
#
# skimage.feature.hog bins *hard*: a pixel goes whole to bin floor(angle / 20) = [20i, 20i + 20),
# with no vote split (its Cython ``cell_hog``), and averages cells instead of summing them.  On a
# general image the two therefore differ by design.  They agree exactly when every pixel's angle
# lies on one of our centres (10, 30, ..., 170 = the middles of its bins), where our split gives
# the whole vote to that bin, and the mean/sum factor 64 cancels in block normalisation (up to
# eps).  A gradient angle that is exactly 10 + 20i degrees needs tan(angle) = g_row / g_col: only
# 90 degrees is rational, so the test images are (1) images constant along rows (every gradient
# vertical, any magnitudes, any dominant channel), compared in full, and (2) linear ramps at each
# of the 9 centres, compared on the blocks away from the image border (border pixels have one
# derivative 0, hence angle 0 or 90 degrees; 0 falls on a bin edge of both conventions).

hog_skimage = pytest.importorskip("skimage.feature").hog


def skimage_hog(img: np.ndarray) -> np.ndarray:
    """``img [C, H, W]``; grey when C == 1, the max-magnitude channel otherwise (as ours)."""
    kw = {"orientations": 9, "pixels_per_cell": (8, 8), "cells_per_block": (2, 2), "block_norm": "L2-Hys"}
    if img.shape[0] == 1:
        return hog_skimage(img[0], **kw)
    return hog_skimage(np.moveaxis(img, 0, -1), channel_axis=-1, **kw)


@pytest.mark.parametrize("channels", [1, 3])
def test_matches_skimage_on_vertical_gradients(channels: int) -> None:
    rng = np.random.default_rng(channels)
    for size in (16, 32, 48):
        img = np.repeat(rng.uniform(0, 1, (channels, size, 1)), size, axis=2)  # each row constant
        np.testing.assert_allclose(torch_hog(img), skimage_hog(img), atol=1e-5)


@pytest.mark.parametrize("centre", [10 + 20 * i for i in range(9)])
def test_matches_skimage_on_ramps_at_bin_centres(centre: int) -> None:
    t = math.radians(centre)
    r, c = np.mgrid[0:48, 0:48].astype(np.float64)
    img = (0.3 * (math.cos(t) * c + math.sin(t) * r))[None]
    # 48 px: 6x6 cells, 5x5 blocks; blocks 1..3 use cells 1..4, none of which holds a border pixel.
    ours, ref = (h.reshape(5, 5, 36)[1:4, 1:4] for h in (torch_hog(img), skimage_hog(img)))
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    assert np.count_nonzero(ours[0, 0] > 1e-3) == 4  # one bin per cell, the centre's own


# --- the builder ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("size", "dim"), [(16, 36), (32, 324), (64, 1764), (128, 15 * 15 * 36)])
def test_descriptor_length(size: int, dim: int) -> None:
    model = build_model("hog_svm", 3, size, {})
    assert model.hog(torch.zeros(1, 3, size, size)).shape == (1, dim) == (1, ((size // 8) - 1) ** 2 * 36)
    assert model.svm.in_features == dim and not list(model.hog.parameters())


@pytest.mark.parametrize("size", [8, 20, 36])
def test_bad_image_size_is_a_clear_error(size: int) -> None:
    with pytest.raises(ValueError, match=r"multiple of the cell size 8 and >= 16"):
        build_model("hog_svm", 3, size, {})


# --- (d) the SVM against scikit-learn's LinearSVC ------------------------------------------------

def shapes_features(project: Path, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """HOG descriptors ``[N, 324]`` (float64) and labels of the first ``per_class`` 32 px train images."""
    from bench.engine.data import ClassificationDataset

    root = project / "datasets" / "shapes" / "classification" / "train"
    paths, labels = [], []
    for k, cls in enumerate(sorted(p.name for p in root.iterdir())):
        files = sorted((root / cls).glob("*.png"))[:per_class]
        paths += files
        labels += [k] * len(files)
    ds = ClassificationDataset(paths, labels, 32, ())
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    with torch.no_grad():
        return HOG()(x).double(), torch.tensor(labels)


def linearsvc_objective(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray, c: float) -> float:
    """liblinear's primal for L2-reg squared hinge, summed over the one-vs-rest problems."""
    t = np.where(y[:, None] == np.arange(w.shape[0])[None], 1.0, -1.0)
    hinge = np.maximum(0.0, 1.0 - t * (x @ w.T + b))
    return 0.5 * (np.sum(w * w) + np.sum(b * b)) + c * np.sum(hinge * hinge)


def test_svm_head_matches_linearsvc(project: Path) -> None:
    from sklearn.svm import LinearSVC

    x, y = shapes_features(project, per_class=100)
    n, c_sk = len(y), 0.1
    # Our C is LinearSVC's times N (the loss is a mean over images, divided by C).
    model = HOGSVM(HOG(), 32, 3, C=c_sk * n).double()
    opt = torch.optim.LBFGS(model.svm.parameters(), lr=1, max_iter=1000, tolerance_grad=1e-10,
                            tolerance_change=1e-14, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = model.training_loss(model.svm(x), y)
        loss.backward()
        return loss

    opt.step(closure)
    # LinearSVC regularises the intercept too (liblinear appends a constant feature of
    # intercept_scaling = 1 whose weight is the intercept); our loss does the same.
    svc = LinearSVC(C=c_sk, loss="squared_hinge", fit_intercept=True, intercept_scaling=1.0, tol=1e-8,
                    max_iter=100_000).fit(x.numpy(), y.numpy())
    w, b = model.svm.weight.detach().numpy(), model.svm.bias.detach().numpy()
    ours = linearsvc_objective(w, b, x.numpy(), y.numpy(), c_sk)
    theirs = linearsvc_objective(svc.coef_, svc.intercept_, x.numpy(), y.numpy(), c_sk)
    with torch.no_grad():  # the documented scaling: C * training_loss is LinearSVC's objective
        assert model.C * model.training_loss(model.svm(x), y).item() == pytest.approx(ours, rel=1e-9)
    assert ours == pytest.approx(theirs, rel=0.01), (ours, theirs)
    with torch.no_grad():
        agree = (model.svm(x).argmax(1).numpy() == svc.predict(x.numpy())).mean()
    assert agree >= 0.97, agree
