"""Global thresholding with Otsu's threshold (imported by the builder in ``threshold_otsu.py``).

Per image: grey levels 0..255 (BT.709 luma of the RGB image, as ``skimage.color.rgb2gray``, rounded), their
256-bin histogram, and the level ``t`` that maximises the between-class variance (Otsu 1979, Sec. II:
``sigma_B^2(k) = w0(k) w1(k) (mu0(k) - mu1(k))^2`` for the classes ``<= k`` and ``> k``).  A pixel is above
the threshold when its level is ``> t`` (skimage's convention: ``image > threshold_otsu(image)``).

Which side is foreground is the one fitted parameter, the polarity ``s`` (``ThresholdOtsu.polarity``): the
scores are ``[-s q / 2, s q / 2]`` (background, foreground) with ``q = +1`` above the threshold and ``-1`` at or
below it, so the prediction (argmax) is the bright side for ``s > 0``, the dark side for ``s < 0``, and
background everywhere at ``s = 0`` (the initial value: the untrained model is the all-background baseline,
and its loss is exactly the chance loss ln 2).

The trainer fits ``s`` like any parameter.  Per pixel the scores give a logistic loss in ``s`` alone, and with
the pixels' class weights inverse to the class frequencies (``train.loss: ce`` with ``class_weights``, the
model config) the objective over a training set is ``(1 + a - b) softplus(-s) + (1 - a + b) softplus(s)``
(up to a constant factor), where ``a = P(above | foreground)`` and ``b = P(above | background)``: convex, with
its minimum at ``s* = ln((1 + a - b) / (1 - a + b))``, whose sign is that of ``a - b``.  So training chooses
the polarity with the higher balanced accuracy (Youden's J = ``|a - b|``); unweighted cross-entropy would
instead choose the one with the higher pixel accuracy, which at 2% foreground is decided by how the
threshold splits the background.
"""

from __future__ import annotations

import torch
from torch import nn

from bench.engine.data import MEAN, STD

#: ITU-R BT.709 luma weights, those of ``skimage.color.rgb2gray``.
LUMA = (0.2125, 0.7154, 0.0721)
LEVELS = 256


def grey_levels(rgb01: torch.Tensor) -> torch.Tensor:
    """``rgb01 [B, 3, H, W]`` in [0, 1] -> grey levels ``[B, H, W]`` (float64, integers 0..255).

    The RGB values are first snapped to the 8-bit grid they were read from (the engine's normalisation
    is undone in float32), so the levels are those of ``round(rgb2gray(image_uint8) * 255)``.
    """
    rgb = torch.round(rgb01.double().clamp(0, 1) * 255) / 255
    luma = torch.tensor(LUMA, dtype=torch.float64, device=rgb.device)
    return torch.round(torch.einsum("bchw,c->bhw", rgb, luma) * 255)


def otsu_thresholds(levels: torch.Tensor) -> torch.Tensor:
    """Otsu's threshold of each image: ``levels [B, H, W]`` (integers 0..255) -> ``[B]`` levels (float64).

    A pixel is above the threshold when its level is greater.  The same arithmetic as
    ``skimage.filters.threshold_otsu`` on a uint8 image (its class weights, means and argmax, first maximum
    on ties); bins below the darkest or above the brightest pixel have an empty class and variance 0.  A
    constant image's threshold is its level (nothing above it).
    """
    b = levels.shape[0]
    flat = levels.reshape(b, -1).long().clamp(0, LEVELS - 1)
    counts = torch.zeros(b, LEVELS, dtype=torch.float64, device=levels.device)
    counts.scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.float64))
    centres = torch.arange(LEVELS, dtype=torch.float64, device=levels.device)
    weight1 = counts.cumsum(1)  # pixels <= k
    weight2 = counts.flip(1).cumsum(1).flip(1)  # pixels >= k
    mean1 = (counts * centres).cumsum(1) / weight1
    mean2 = (counts * centres).flip(1).cumsum(1) / weight2.flip(1)
    mean2 = mean2.flip(1)
    # class <= k against class >= k + 1, for k = 0..254
    variance = weight1[:, :-1] * weight2[:, 1:] * (mean1[:, :-1] - mean2[:, 1:]) ** 2
    variance = torch.nan_to_num(variance, nan=0.0)  # an empty class (0 / 0 mean): no split there
    best = variance.argmax(1).double()
    constant = variance.amax(1) <= 0
    return torch.where(constant, levels.reshape(b, -1).amin(1).double(), best)


class ThresholdOtsu(nn.Module):
    """Otsu thresholding of each image, foreground on the fitted side: ``x [B, 3, S, S]`` (the engine's
    normalised images) -> scores ``[B, 2, S, S]`` (background, foreground).  See the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.polarity = nn.Parameter(torch.zeros(()))

    def above(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, S, S]`` bool: each pixel's grey level above its image's Otsu threshold."""
        levels = grey_levels(x.detach().float() * STD + MEAN)
        return levels > otsu_thresholds(levels)[:, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = self.above(x).to(self.polarity.dtype) * 2 - 1  # +1 above, -1 at or below
        fg = self.polarity * side / 2
        return torch.stack([-fg, fg], dim=1)
