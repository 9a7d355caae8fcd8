"""Spatial pyramid pooling of image regions (He et al. 2014, SPP-net, sec. 2.3 and appendix A).

A region of ``a_h x a_w`` cells of the conv feature map is max-pooled into ``n x n`` bins at every
pyramid level ``n`` with the paper's sliding windows: window ``ceil(a / n)``, stride ``floor(a / n)``
(bin ``i`` covers cells ``[i * floor(a/n), i * floor(a/n) + ceil(a/n))``), each side on its own.  The
levels' bins are concatenated into one vector of ``C * sum(n^2)`` values whatever the region's
size.  These are not adaptive pooling's windows (``[floor(i a / n), ceil((i + 1) a / n))``): for
``a = 7, n = 4`` SPP's windows are ``[0, 2), [1, 3), [2, 4), [3, 5)``, adaptive pooling's
``[0, 2), [1, 4), [3, 6), [5, 7)``.  Like the paper's formula, the windows of a level can stop
short of the region's far edge when ``a mod n > 1``; the 1 x 1 level always covers it all.

Regions are projected onto the feature map as in the paper's appendix A: a corner (x, y) in image
pixels maps to cell ``floor(x / S) + 1`` on the left/top and ``ceil(x / S) - 1`` on the
right/bottom, ``S`` the backbone's stride (the cell indices are inclusive).

The max over each window is exact and differentiable, computed for all regions at once with a
sparse table of running maxima (``range_max``): ``log2(L)`` shifted copies of the map, and any
window is the max of two of them.
"""

from __future__ import annotations

import torch
from torch import nn


def spp_windows(a: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Window offsets and lengths of one side at level ``n``: ``a [R]`` cells -> ``[R, n]`` each.

    Offset of bin ``i``: ``i * floor(a / n)``; length ``ceil(a / n)`` (so at least 1 for ``a >= 1``).
    """
    i = torch.arange(n, device=a.device)
    stride = torch.div(a, n, rounding_mode="floor")
    window = torch.div(a + n - 1, n, rounding_mode="floor")  # ceil(a / n) for integers
    return i[None, :] * stride[:, None], window[:, None].expand(-1, n)


def project_rois(rois: torch.Tensor, stride: int, height: int, width: int) -> torch.Tensor:
    """``rois [R, 4]`` xyxy pixels -> inclusive feature cells ``[R, 4]`` (x1, y1, x2, y2), long.

    Left/top ``floor(x / S) + 1``, right/bottom ``ceil(x / S) - 1`` (SPP-net appendix A), clipped
    to the ``height x width`` map; a region smaller than a cell keeps one cell (x2 >= x1).
    """
    lo = torch.floor(rois[:, :2] / stride).long() + 1
    hi = torch.ceil(rois[:, 2:] / stride).long() - 1
    limit = torch.tensor([width - 1, height - 1], device=rois.device)
    lo = torch.minimum(lo.clamp(min=0), limit)
    hi = torch.maximum(torch.minimum(hi, limit), lo)
    return torch.cat([lo, hi], dim=1)


def range_max(x: torch.Tensor, rows: torch.Tensor, start: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """Max of ``x [B, C, L]`` over windows ``[start, start + length)`` of the last axis.

    ``rows [W]`` picks each window's row of ``x``, ``start``/``length [W, n]`` (length >= 1, inside
    ``L``).  Returns ``[W, n, C]``.  A sparse table ``T_k[l] = max(x[l : l + 2^k])`` gives every
    window as ``max(T_k[s], T_k[e - 2^k])`` with ``k = floor(log2(length))``.
    """
    levels = int(length.max()).bit_length() if length.numel() else 1
    table = [x]
    for k in range(1, levels):
        prev, h = table[-1], 1 << (k - 1)
        table.append(torch.cat([torch.maximum(prev[..., :-h], prev[..., h:]), prev[..., -h:]], dim=-1))
    stacked = torch.stack(table)  # [levels, B, C, L]; the tail of each level is never read
    k = torch.floor(torch.log2(length.float())).long()
    end = start + length - (1 << k)
    r = rows[:, None].expand_as(start)
    return torch.maximum(stacked[k, r, :, start], stacked[k, r, :, end])  # [W, n, C]


def spatial_pyramid_pool(
    features: torch.Tensor, rois: torch.Tensor, batch_index: torch.Tensor, levels: tuple[int, ...], stride: int
) -> torch.Tensor:
    """Fixed-length SPP vectors of regions: ``[R, C * sum(n^2 for n in levels)]``.

    ``features [B, C, H, W]`` (stride ``stride``), ``rois [R, 4]`` xyxy in the input's pixels,
    ``batch_index [R]`` each region's image.  Per level, bins are ordered (channel, row, column),
    as a flattened ``[C, n, n]`` map; levels are concatenated in the order given.
    """
    b, c, h, w = features.shape
    cells = project_rois(rois, stride, h, w)
    x0, y0 = cells[:, 0], cells[:, 1]
    aw, ah = cells[:, 2] - x0 + 1, cells[:, 3] - y0 + 1
    out = []
    for n in levels:
        cs, cl = spp_windows(aw, n)
        rs, rl = spp_windows(ah, n)
        # Columns first, every row at once: [R, n_cols, C * H] -> regions x (n_cols * C) x H.
        by_col = range_max(features.reshape(b, c * h, w), batch_index, x0[:, None] + cs, cl)
        by_col = by_col.reshape(-1, n * c, h)
        # Then rows, within each region: [R, n_rows, n_cols * C].
        pooled = range_max(by_col, torch.arange(len(rois), device=rois.device), y0[:, None] + rs, rl)
        out.append(pooled.reshape(-1, n, n, c).permute(0, 3, 1, 2).flatten(1))  # [R, C * n * n]
    return torch.cat(out, dim=1)


class SpatialPyramidPool(nn.Module):
    """:func:`spatial_pyramid_pool` as a module: ``(features, rois, batch_index) -> [R, C * sum(n^2)]``."""

    def __init__(self, levels: tuple[int, ...], stride: int) -> None:
        super().__init__()
        self.levels, self.stride = tuple(levels), stride

    def forward(self, features: torch.Tensor, rois: torch.Tensor, batch_index: torch.Tensor) -> torch.Tensor:
        return spatial_pyramid_pool(features, rois, batch_index, self.levels, self.stride)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, stride={self.stride}"
