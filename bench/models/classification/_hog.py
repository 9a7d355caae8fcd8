"""HOG descriptor (Dalal & Triggs, CVPR 2005) in batched torch ops, and a linear SVM on it.

The descriptor, for an image ``[C, H, W]`` (H, W multiples of the cell size):

1. Gradients by the centred ``[-1, 0, 1]`` filter along rows and columns, no smoothing (the
   paper's best, Sec. 6.2).  Borders are reflect-padded, so the edge pixel's derivative across
   the border is 0 -- what scikit-image and OpenCV (``BORDER_REFLECT_101``) do.
2. Colour (``colour="max"``, the paper's rule): gradients per channel, and each pixel keeps the
   channel's gradient with the largest magnitude (first channel on ties).  ``colour="grey"``
   first converts to grey with the ITU-R BT.601 weights (PIL's ``convert("L")``).
3. Unsigned orientation ``theta = atan2(g_row, g_col) mod 180 deg`` with rows pointing down (as
   in scikit-image and OpenCV).  ``bins`` bins of ``180/bins`` degrees; bin ``i`` is centred on
   ``(i + 0.5) * 180/bins`` (10, 30, ..., 170 for 9 bins; OpenCV's convention, and the centres of
   scikit-image's hard bins ``[20i, 20i + 20)``).  Each pixel's magnitude is split between the two
   nearest centres in proportion to closeness (linear interpolation in orientation), wrapping
   around 180 -> 0: a pixel at 5 deg gives 3/4 to the 10-deg bin and 1/4 to the 170-deg bin.
4. Cell histograms: votes summed over ``cell_size x cell_size`` cells (sums, not scikit-image's
   means; block normalisation removes the difference up to ``eps``).
5. Blocks of ``block_size x block_size`` cells with a stride of one cell, each block's
   ``block_size**2 * bins`` vector normalised (``block_norm``, default L2-Hys: ``v / sqrt(|v|^2 +
   eps^2)``, clip at 0.2, renormalise the same way; ``eps = 1e-5`` in units of the input's
   gradient sums, the formula scikit-image uses).
6. The descriptor is the blocks in row-major order, each ``[cell_row, cell_col, bin]``: the
   layout of ``skimage.feature.hog(..., feature_vector=True)``.

Left out of the paper's pipeline (as in scikit-image): the Gaussian spatial window over each
block (sigma = half the block width) and the trilinear interpolation of votes between
neighbouring cells; votes go to their own cell only.  No gamma compression (the paper found
square-root gamma only marginally useful, and the engine's inputs are normalised to about
[-2, 2], where a square root is undefined).  The engine feeds ``(x - 0.5) / 0.25``: a positive
affine map of the pixels, so gradients are 4x those of [0, 1] pixels and angles are unchanged;
block normalisation cancels the scale (up to ``eps``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BLOCK_NORMS = ("L2-Hys", "L2", "L1", "L1-sqrt")
COLOUR_MODES = ("max", "grey")
BT601 = (0.299, 0.587, 0.114)


def descriptor_length(image_size: int, cell_size: int = 8, bins: int = 9, block_size: int = 2) -> int:
    """Length of the descriptor of a square ``image_size`` input: ``((S/cell) - block + 1)^2 * block^2 * bins``."""
    blocks = image_size // cell_size - block_size + 1
    return blocks * blocks * block_size * block_size * bins


def gradients(x: torch.Tensor, context: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Centred differences of ``x [B, C, H, W]``: ``(g_row, g_col)``, each ``[B, C, H, W]``.

    ``g_row[r, c] = x[r+1, c] - x[r-1, c]`` (rows point down), reflect padding at the borders.
    With ``context``, ``x`` already carries one pixel of real surroundings on each side, which the
    border derivatives use instead of a reflection: the outputs are then ``[B, C, H - 2, W - 2]``
    (``hog_detector``'s crops, so a crop's descriptor equals its window's in the whole image).
    """
    p = x if context else F.pad(x, (1, 1, 1, 1), mode="reflect")
    return p[..., 2:, 1:-1] - p[..., :-2, 1:-1], p[..., 1:-1, 2:] - p[..., 1:-1, :-2]


def dominant_channel(g_row: torch.Tensor, g_col: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel, the gradient of the channel with the largest magnitude: ``[B, C, H, W]`` -> ``[B, H, W]`` x2."""
    # max(dim).indices, not argmax: same result (first channel on ties, as numpy's argmax) and
    # ~10x faster on CPU for a reduction over a non-innermost axis.
    k = torch.hypot(g_row, g_col).max(dim=1, keepdim=True).indices
    return g_row.gather(1, k)[:, 0], g_col.gather(1, k)[:, 0]


def orientation_votes(g_row: torch.Tensor, g_col: torch.Tensor, bins: int) -> torch.Tensor:
    """Each pixel's magnitude split between its two nearest orientation bins: ``[B, H, W]`` -> ``[B, bins, H, W]``."""
    mag = torch.hypot(g_row, g_col)
    theta = torch.remainder(torch.atan2(g_row, g_col), math.pi)  # unsigned, [0, pi]; pi wraps like 0
    pos = theta * (bins / math.pi) - 0.5  # in bin units, relative to the first centre
    lo = torch.floor(pos)
    frac = pos - lo  # share of the upper neighbour
    lo = lo.long()[:, None]
    # Two scatters (each writes one value per pixel, so deterministic on GPU too); ~8x faster on
    # CPU than summing one-hot vectors.
    votes = mag.new_zeros(mag.shape[0], bins, *mag.shape[1:])
    votes.scatter_add_(1, torch.remainder(lo, bins), (mag * (1 - frac))[:, None])
    return votes.scatter_add_(1, torch.remainder(lo + 1, bins), (mag * frac)[:, None])


def cell_histograms(votes: torch.Tensor, cell_size: int) -> torch.Tensor:
    """Votes summed over cells: ``[B, bins, H, W]`` -> ``[B, bins, H/cell, W/cell]``."""
    b, k, h, w = votes.shape
    return votes.reshape(b, k, h // cell_size, cell_size, w // cell_size, cell_size).sum(dim=(3, 5))


def normalise(v: torch.Tensor, method: str, eps: float, clip: float) -> torch.Tensor:
    """Block normalisation of ``v [..., D]`` (non-negative) along the last axis, Dalal & Triggs Sec. 6.4."""
    if method in ("L2", "L2-Hys"):
        v = v / torch.sqrt(v.pow(2).sum(-1, keepdim=True) + eps**2)
        if method == "L2-Hys":
            v = v.clamp(max=clip)
            v = v / torch.sqrt(v.pow(2).sum(-1, keepdim=True) + eps**2)
        return v
    if method in ("L1", "L1-sqrt"):
        v = v / (v.sum(-1, keepdim=True) + eps)
        return v.sqrt() if method == "L1-sqrt" else v
    raise ValueError(f"unknown block norm {method!r}; choose one of {', '.join(BLOCK_NORMS)}")


class HOG(nn.Module):
    """Fixed HOG feature extractor (no parameters): ``x [B, C, H, W]`` -> descriptor ``[B, D]``.

    ``C`` is 3 (or 1); ``H`` and ``W`` must be multiples of ``cell_size`` with room for one block.
    Computed in float32 even under autocast (angles and normalisation need the precision).
    """

    def __init__(self, cell_size: int = 8, bins: int = 9, block_size: int = 2, block_norm: str = "L2-Hys",
                 colour: str = "max", eps: float = 1e-5, clip: float = 0.2) -> None:
        super().__init__()
        if block_norm not in BLOCK_NORMS:
            raise ValueError(f"unknown block norm {block_norm!r}; choose one of {', '.join(BLOCK_NORMS)}")
        if colour not in COLOUR_MODES:
            raise ValueError(f"unknown colour mode {colour!r}; choose one of {', '.join(COLOUR_MODES)}")
        self.cell_size, self.bins, self.block_size = cell_size, bins, block_size
        self.block_norm, self.colour, self.eps, self.clip = block_norm, colour, eps, clip

    def extra_repr(self) -> str:
        return (f"cell_size={self.cell_size}, bins={self.bins}, block_size={self.block_size}, "
                f"block_norm={self.block_norm!r}, colour={self.colour!r}, eps={self.eps}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_grid(x).flatten(1)

    def block_grid(self, x: torch.Tensor, context: bool = False) -> torch.Tensor:
        """The normalised blocks of ``x [B, C, H, W]`` on their grid: ``[B, nbr, nbc, block^2 * bins]``.

        ``nbr = H / cell - block + 1`` (likewise ``nbc``); flattened, this is the descriptor.  With
        ``context`` (see ``gradients``) the input is ``[B, C, H + 2, W + 2]``: one extra pixel per
        side that only feeds the border derivatives.
        """
        h, w = (n - 2 for n in x.shape[-2:]) if context else x.shape[-2:]
        cs, bs = self.cell_size, self.block_size
        if h % cs or w % cs or h < cs * bs or w < cs * bs:
            extra = " (after the 1-px context border)" if context else ""
            raise ValueError(f"HOG needs H and W multiples of the cell size {cs} and >= {cs * bs} "
                             f"(one {bs}x{bs}-cell block), got {h}x{w}{extra}")
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            if self.colour == "grey" and x.shape[1] == 3:
                x = (x * x.new_tensor(BT601).view(1, 3, 1, 1)).sum(1, keepdim=True)
            g_row, g_col = dominant_channel(*gradients(x, context))
            hist = cell_histograms(orientation_votes(g_row, g_col, self.bins), cs)  # [B, bins, nr, nc]
            blocks = hist.unfold(2, bs, 1).unfold(3, bs, 1)  # [B, bins, nbr, nbc, bs_row, bs_col]
            blocks = blocks.permute(0, 2, 3, 4, 5, 1).flatten(3)  # [B, nbr, nbc, bs*bs*bins]
            return normalise(blocks, self.block_norm, self.eps, self.clip)


class HOGSVM(nn.Module):
    """HOG descriptor + one-vs-rest linear SVM: ``x [B, C, S, S]`` -> SVM scores ``[B, K]``.

    The scores are the engine's logits (their softmax ranks classes as the SVM does).  The head is
    initialised at zero, liblinear's starting point: the problem is convex with one minimum.

    ``training_loss`` is the primal of scikit-learn's ``LinearSVC()`` (liblinear, L2-regularised
    squared hinge, one-vs-rest, intercept as a weight on a constant feature 1, hence regularised)
    averaged over images and divided by ``C``::

        loss = mean_i sum_k max(0, 1 - t_ik s_ik)^2 + (|W|^2 + |b|^2) / (2 C),  t_ik = +1 if y_i = k else -1

    Over N training images, ``C * loss = 0.5 (|W|^2 + |b|^2) + (C / N) sum_i sum_k max(...)^2``,
    which is ``LinearSVC(C=C/N, intercept_scaling=1)``'s objective summed over its K binary
    problems: the same minimiser; this ``C`` is LinearSVC's C times the number of training images.
    The mean makes a mini-batch loss an unbiased estimate, with gradients that do not grow with N.
    Because the regulariser is in the loss, train it without the optimiser's weight decay.
    """

    bench_head = "svm"

    def __init__(self, hog: HOG, image_size: int, num_classes: int, C: float) -> None:
        super().__init__()
        self.hog, self.C = hog, C
        self.svm = nn.Linear(descriptor_length(image_size, hog.cell_size, hog.bins, hog.block_size), num_classes)
        nn.init.zeros_(self.svm.weight)
        nn.init.zeros_(self.svm.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.svm(self.hog(x))

    def training_loss(self, scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The objective above for scores ``[B, K]`` and labels ``y [B]`` (at least float32: autocast's
        half-precision scores are promoted)."""
        return squared_hinge(_at_least_fp32(scores), y) + self.regulariser()

    def regulariser(self) -> torch.Tensor:
        """``(|W|^2 + |b|^2) / (2 C)``."""
        w, b = _at_least_fp32(self.svm.weight), _at_least_fp32(self.svm.bias)
        return (w.pow(2).sum() + b.pow(2).sum()) / (2 * self.C)


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.promote_types(t.dtype, torch.float32))


def squared_hinge(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One-vs-rest squared hinge ``mean_i sum_k max(0, 1 - t_ik s_ik)^2`` of ``scores [B, K]``, ``y [B]``."""
    t = 2 * F.one_hot(y, scores.shape[1]).to(scores.dtype) - 1
    return F.relu(1 - t * scores).pow(2).sum(1).mean()
