"""The guide's detection losses, in one place: each one-stage detector picks its terms from here.

Classification / objectness terms take logits; box terms take boxes or box encodings.  Every function
names its reduction (``"sum"``, ``"mean"`` or ``"none"``); the detectors normalise the sums
themselves (by positives, by images), as their papers do.

* ``focal_loss``: α-balanced sigmoid focal loss (Lin et al. 2017), ``-α_t (1 - p_t)^γ log p_t``;
* ``bce_loss``: binary cross-entropy on logits (YOLOv3's objectness and per-class scores);
* ``ce_loss``: softmax cross-entropy (SSD's confidence loss);
* ``smooth_l1_loss``: Huber-style ``0.5 x^2 / β`` below ``β``, ``|x| - 0.5 β`` above (Fast R-CNN, SSD);
* ``sum_squared_loss``: weighted ``Σ w (p - t)^2`` (YOLO v1 and v2);
* ``giou_loss`` / ``ciou_loss``: ``1 - GIoU`` (Rezatofighi et al. 2019) and ``1 - CIoU`` (Zheng et al.
  2020) of paired ``xyxy`` boxes (YOLO v4 and v5).

``BOX_LOSSES`` and ``CLASS_LOSSES`` name the selectable ones; ``box_loss(name)`` / ``class_loss(name)``
look them up with an error that lists the valid names.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

Reduction = Literal["none", "mean", "sum"]
EPS = 1e-7


def reduce(x: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    """``x`` summed, averaged or returned elementwise."""
    if reduction == "sum":
        return x.sum()
    if reduction == "mean":
        return x.mean() if x.numel() else x.sum()  # the mean of nothing is 0 (no positives), not NaN
    if reduction == "none":
        return x
    raise ValueError(f"reduction {reduction!r}: choose none, mean or sum")


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0,
               reduction: Reduction = "sum") -> torch.Tensor:
    """α-balanced focal loss on sigmoid ``logits`` (any shape) and 0/1 ``targets`` (same shape, float).

    ``FL = -α_t (1 - p_t)^γ log p_t`` with ``p_t = p`` and ``α_t = α`` where the target is 1, ``1 - p`` and
    ``1 - α`` where it is 0.  ``γ = 0`` is α-balanced BCE; ``alpha < 0`` turns the balancing off.
    """
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return reduce(loss, reduction)


def bce_loss(logits: torch.Tensor, targets: torch.Tensor, reduction: Reduction = "sum",
             pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy of sigmoid ``logits`` against ``targets`` in [0, 1] (same shape)."""
    return reduce(F.binary_cross_entropy_with_logits(logits, targets, reduction="none", pos_weight=pos_weight),
                  reduction)


def ce_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: Reduction = "sum",
            weight: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax cross-entropy: ``logits [N, C]``, ``labels [N]`` in 0..C-1; ``weight [C]`` per class."""
    return reduce(F.cross_entropy(logits, labels, weight=weight, reduction="none"), reduction)


def smooth_l1_loss(pred: torch.Tensor, target: torch.Tensor, beta: float = 1.0,
                   reduction: Reduction = "sum") -> torch.Tensor:
    """Smooth L1 of ``pred - target`` (same shape): ``0.5 x^2 / β`` for ``|x| < β``, else ``|x| - 0.5 β``."""
    if beta <= 0:
        return reduce((pred - target).abs(), reduction)
    x = (pred - target).abs()
    return reduce(torch.where(x < beta, 0.5 * x * x / beta, x - 0.5 * beta), reduction)


def sum_squared_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | float = 1.0,
                     reduction: Reduction = "sum") -> torch.Tensor:
    """``w (pred - target)^2`` elementwise (``weight`` broadcasts: YOLO's λ_coord, λ_noobj masks)."""
    return reduce(weight * (pred - target) ** 2, reduction)


def _iou_terms(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                          torch.Tensor]:
    """For paired ``a, b [..., 4] xyxy``: (IoU, union area, enclosing box ``[..., 4]``, ``[..., 2]`` widths and
    heights of a, of b)."""
    wh_a = (a[..., 2:] - a[..., :2]).clamp(min=0)
    wh_b = (b[..., 2:] - b[..., :2]).clamp(min=0)
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = wh_a.prod(-1) + wh_b.prod(-1) - inter
    iou = inter / (union + EPS)
    enclosing = torch.cat([torch.minimum(a[..., :2], b[..., :2]), torch.maximum(a[..., 2:], b[..., 2:])], -1)
    return iou, union, enclosing, wh_a, wh_b


def giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Generalised IoU of paired boxes ``[..., 4] xyxy`` -> ``[...]`` in (-1, 1]:
    ``IoU - |C \\ (A ∪ B)| / |C|`` with ``C`` the smallest enclosing box."""
    iou, union, c, _, _ = _iou_terms(a, b)
    area_c = (c[..., 2:] - c[..., :2]).prod(-1)
    return iou - (area_c - union) / (area_c + EPS)


def ciou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Complete IoU of paired boxes ``[..., 4] xyxy`` -> ``[...]``:
    ``IoU - ρ²/c² - α v`` with ``ρ`` the centre distance, ``c`` the enclosing box's diagonal,
    ``v = 4/π² (atan(w_b/h_b) - atan(w_a/h_a))²`` and ``α = v / (1 - IoU + v)`` (no gradient through α)."""
    iou, _, c, wh_a, wh_b = _iou_terms(a, b)
    c2 = ((c[..., 2:] - c[..., :2]) ** 2).sum(-1) + EPS
    rho2 = ((((a[..., :2] + a[..., 2:]) - (b[..., :2] + b[..., 2:])) / 2) ** 2).sum(-1)
    v = (4 / math.pi**2) * (torch.atan(wh_b[..., 0] / (wh_b[..., 1] + EPS))
                            - torch.atan(wh_a[..., 0] / (wh_a[..., 1] + EPS))) ** 2
    with torch.no_grad():
        alpha = v / (1 - iou + v + EPS)
    return iou - rho2 / c2 - alpha * v


def giou_loss(pred: torch.Tensor, target: torch.Tensor, reduction: Reduction = "sum") -> torch.Tensor:
    """``1 - GIoU`` of paired ``pred, target [..., 4] xyxy``."""
    return reduce(1 - giou(pred, target), reduction)


def ciou_loss(pred: torch.Tensor, target: torch.Tensor, reduction: Reduction = "sum") -> torch.Tensor:
    """``1 - CIoU`` of paired ``pred, target [..., 4] xyxy``."""
    return reduce(1 - ciou(pred, target), reduction)


#: Box-regression losses a config may select (``box_loss: ciou``), each ``(pred, target, reduction)``.
BOX_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "smooth_l1": smooth_l1_loss, "sum_squared": sum_squared_loss, "giou": giou_loss, "ciou": ciou_loss,
}
#: Classification / objectness losses on logits, each ``(logits, targets, reduction=...)``.
CLASS_LOSSES: dict[str, Callable[..., torch.Tensor]] = {"focal": focal_loss, "bce": bce_loss, "ce": ce_loss}


def _lookup(table: dict[str, Callable[..., torch.Tensor]], kind: str, name: str) -> Callable[..., torch.Tensor]:
    if name not in table:
        raise ValueError(f"unknown {kind} loss {name!r}; valid: {', '.join(table)}")
    return table[name]


def box_loss(name: str) -> Callable[..., torch.Tensor]:
    """The box loss called ``name`` (``BOX_LOSSES``)."""
    return _lookup(BOX_LOSSES, "box", name)


def class_loss(name: str) -> Callable[..., torch.Tensor]:
    """The classification loss called ``name`` (``CLASS_LOSSES``)."""
    return _lookup(CLASS_LOSSES, "classification", name)
