"""A fully connected CRF with Gaussian edge potentials, solved by mean-field (Krähenbühl & Koltun 2011).

DeepLab v1 and v2 post-process their softmax output with it.  For one image, labels ``x_i`` of its N pixels:

    E(x) = Σ_i ψ_u(x_i) + Σ_{i<j} μ(x_i, x_j) [w_app k_app(f_i, f_j) + w_smooth k_smooth(p_i, p_j)]

* unary ``ψ_u(l) = -log P_i(l)``, the network's probabilities;
* Potts compatibility ``μ(l, l') = [l != l']``;
* appearance (bilateral) kernel ``k_app = exp(-|p_i - p_j|² / 2θ_α² - |I_i - I_j|² / 2θ_β²)``, positions p in
  pixels and colours I on the 0..255 scale;
* smoothness kernel ``k_smooth = exp(-|p_i - p_j|² / 2θ_γ²)``.

Mean-field starts at ``Q = P`` and repeats ``Q_i(l) ∝ exp(-ψ_u(l) - Σ_{l'} μ(l, l') m_i(l'))`` with the
message ``m_i(l') = Σ_{j != i} [w_app k_app + w_smooth k_smooth](i, j) Q_j(l')``.  By default each kernel is
normalised symmetrically, ``k(i, j) / sqrt(d_i d_j)`` with ``d_i = Σ_j k(i, j)``, as the authors' code (and
pydensecrf, which DeepLab's post-processing is) does; ``normalization: none`` is the formula above.

**The message is exact** (every pair, no lattice): a dense ``[N, N]`` kernel, built in row blocks, for images
of up to ``max_pixels`` pixels (4096 = 64 x 64 by default).  **Larger images are a documented approximation:**
the unary and the image are average-pooled by the smallest integer factor ``s`` that brings them under
``max_pixels``; positions are measured in full-resolution pixels (the pooled pixel's centre); each pooled
pixel stands for ``s²`` pixels, so its messages are multiplied by ``s²``; and the messages are upsampled
bilinearly to full resolution, where the update uses the full-resolution unary.  The permutohedral lattice
of the paper is the other approximation it allows; this one is simpler and exact on small images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class CrfParams:
    """The CRF's weights and bandwidths (pixels; colour on 0..255) and the mean-field iterations.

    Defaults: DeepLab's published settings for PASCAL VOC (``bi_w 4, bi_xy_std 121, bi_rgb_std 5, pos_w 3,
    pos_xy_std 3``, 10 iterations); ``θ_α`` is in pixels, so smaller images want it scaled down.
    ``normalization``: ``symmetric`` (the reference code's default, densecrf 2 / pydensecrf: each kernel
    divided by ``sqrt(d_i d_j)``, ``d`` its row sums) or ``none`` (the paper's formula as written).
    """

    w_app: float = 4.0
    theta_alpha: float = 121.0
    theta_beta: float = 5.0
    w_smooth: float = 3.0
    theta_gamma: float = 3.0
    iterations: int = 10
    max_pixels: int = 4096
    normalization: Literal["symmetric", "none"] = "symmetric"

    def __post_init__(self) -> None:
        if self.normalization not in ("symmetric", "none"):
            raise ValueError(f"dense CRF normalization {self.normalization!r}: choose symmetric or none")


def _features(image: torch.Tensor, stride: int, params: CrfParams) -> tuple[torch.Tensor, torch.Tensor]:
    """``(smoothness features [N, 2], appearance features [N, 5])`` of ``image [3, h, w]`` (0..1), each scaled
    by its bandwidth so that a kernel is ``exp(-|f_i - f_j|² / 2)``; positions in full-resolution pixels."""
    _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    # the centre of a pooled pixel, in full-resolution pixel units
    pos = torch.stack([ys, xs], -1).reshape(-1, 2).to(image.device) * stride + (stride - 1) / 2
    rgb = image.float().reshape(3, -1).T * 255.0
    return pos / params.theta_gamma, torch.cat([pos / params.theta_alpha, rgb / params.theta_beta], 1)


def _kernel(feats: torch.Tensor, normalization: str, block: int = 1024) -> torch.Tensor:
    """The ``[N, N]`` message matrix of one kernel ``exp(-|f_i - f_j|² / 2)`` over ``feats [N, D]``: no pixel
    messages itself (zero diagonal); ``symmetric`` scales entry (i, j) by ``1 / sqrt(d_i d_j)``, with ``d_i``
    the kernel's row sum including the pixel itself."""
    n = len(feats)
    k = torch.empty(n, n, device=feats.device)
    for start in range(0, n, block):  # row blocks: cdist of every pair at once would hold [N, N, D]
        k[start:start + block] = torch.exp(-0.5 * torch.cdist(feats[start:start + block], feats).square())
    if normalization == "symmetric":
        s = k.sum(1).rsqrt()
        k = s[:, None] * k * s[None, :]
    k.fill_diagonal_(0.0)
    return k


def dense_crf(probs: torch.Tensor, image: torch.Tensor, params: CrfParams | None = None) -> torch.Tensor:
    """Mean-field marginals ``Q [C, H, W]`` of the dense CRF over ``probs [C, H, W]`` (softmax output, sums to
    1 over C) and ``image [3, H, W]`` (RGB, 0..1).  The label map is ``Q.argmax(0)``."""
    p = params or CrfParams()
    if probs.dim() != 3 or image.dim() != 3 or image.shape[0] != 3 or probs.shape[1:] != image.shape[1:]:
        raise ValueError(f"dense_crf: expected probs [C, H, W] and image [3, H, W] of the same size, got "
                         f"{tuple(probs.shape)} and {tuple(image.shape)}")
    c, h, w = probs.shape
    unary = -torch.log(probs.float().clamp(min=1e-8))  # [C, H, W]
    stride = 1
    while (-(-h // stride)) * (-(-w // stride)) > p.max_pixels:
        stride += 1
    small_img = F.avg_pool2d(image[None].float(), stride, ceil_mode=True)[0] if stride > 1 else image.float()
    smooth_f, app_f = _features(small_img, stride, p)
    # The kernels depend on the image only: built once, each iteration is one matrix product.
    kernel = p.w_app * _kernel(app_f, p.normalization) + p.w_smooth * _kernel(smooth_f, p.normalization)
    q = F.softmax(-unary, 0)
    for _ in range(p.iterations):
        q_small = F.avg_pool2d(q[None], stride, ceil_mode=True)[0] if stride > 1 else q
        msg = kernel @ q_small.reshape(c, -1).T  # [n, C]
        msg = msg.T.reshape(c, *q_small.shape[1:]) * stride**2  # each pooled pixel stands for stride² pixels
        if stride > 1:
            msg = F.interpolate(msg[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        # Potts: a label pays for the messages of every other label, Σ_{l' != l} m(l') = Σ m - m(l)
        pairwise = msg.sum(0, keepdim=True) - msg
        q = F.softmax(-unary - pairwise, 0)
    return q


class CrfPostprocessor:
    """A segmentation model's ``postprocess``: softmax, the dense CRF per image, argmax.

    ``__call__(logits [B, C, H, W], images [B, 3, H, W] RGB in [0, 1]) -> labels [B, H, W]``; a builder sets it as
    ``model.postprocess`` (DeepLab v1 / v2, ``crf: true``) and ``SegmentationTask.predict`` applies it.
    """

    def __init__(self, params: CrfParams | None = None) -> None:
        self.params = params or CrfParams()

    def __call__(self, logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        probs = F.softmax(logits.float(), 1)
        return torch.stack([dense_crf(p, im, self.params).argmax(0) for p, im in zip(probs, images, strict=True)])
