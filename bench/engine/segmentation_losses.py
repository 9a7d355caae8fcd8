"""The guide's segmentation losses, in one place, for every semantic segmentation model.

Every loss takes ``logits [B, C, H, W]`` (class 0 is background, ``C = K + 1``) and ``target [B, H, W]``
long labels in ``0..C-1`` or ``ignore_index``; ignored pixels take no part in any term.  Each returns a
scalar, and names its reduction:

* ``ce``: softmax cross-entropy, **mean over valid pixels**; ``class_weights [C]`` makes it weighted CE
  (torch's convention: the weighted sum divided by the sum of the pixels' weights);
* ``bce``: one-vs-rest binary cross-entropy, a sigmoid per class channel against the one-hot target,
  **mean over valid pixels x channels** (for a binary view, C = 2: background and foreground);
* ``focal``: softmax focal loss ``-α (1 - p_t)^γ log p_t`` (Lin et al. 2017), **mean over valid pixels**;
* ``dice``: soft Dice loss ``1 - (2 Σ p g + ε) / (Σ p + Σ g + ε)`` (Milletari et al. 2016, V-Net);
* ``jaccard``: soft Jaccard loss ``1 - (Σ p g + ε) / (Σ p + Σ g - Σ p g + ε)``;
* ``tversky``: ``1 - TI``, ``TI = (Σ p g + ε) / (Σ p g + α Σ p (1 - g) + β Σ (1 - p) g + ε)`` (Salehi et
  al. 2017; α weighs false positives, β false negatives; α = β = 0.5 is Dice);
* ``focal_tversky``: ``(1 - TI)^γ`` (Abraham & Khan 2019).

The overlap losses use softmax probabilities ``p`` and one-hot targets ``g``; their sums run over every
valid pixel of the batch (one volume, as V-Net computes it), **per class, then the mean over classes**:
the foreground classes by default (``include_background: false``), as the guide uses them against class
imbalance.  ``ε`` (``smooth``, default 1) keeps a class absent from both prediction and target at loss 0
with a finite gradient (an image without foreground is common in the imbalanced view).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from bench.engine.data import IGNORE_INDEX

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _valid(target: torch.Tensor, ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mask [B, H, W] bool of the scored pixels, target with ignored pixels set to class 0)``."""
    valid = target != ignore_index
    return valid, torch.where(valid, target, torch.zeros_like(target))


def _one_hot(target: torch.Tensor, num_classes: int, valid: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` float one-hot of ``target``, zero at ignored pixels."""
    if target.numel() and int(target.max()) >= num_classes:
        raise ValueError(f"segmentation loss: label {int(target.max())} in the target but the model has "
                         f"{num_classes} outputs (classes 0..{num_classes - 1}, ignore index separately)")
    g = F.one_hot(target, num_classes).permute(0, 3, 1, 2).float()
    return g * valid[:, None].float()


def ce_loss(logits: torch.Tensor, target: torch.Tensor, class_weights: list[float] | None = None,
            ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Softmax cross-entropy, mean over valid pixels (weighted CE: divided by the summed pixel weights)."""
    weight = None
    if class_weights is not None:
        if len(class_weights) != logits.shape[1]:
            raise ValueError(f"ce class_weights: {len(class_weights)} values for {logits.shape[1]} classes "
                             "(background first)")
        weight = torch.tensor(class_weights, dtype=torch.float32, device=logits.device)
    if not bool((target != ignore_index).any()):
        return logits.float().sum() * 0  # every pixel ignored: no loss, a zero (not NaN) gradient
    return F.cross_entropy(logits.float(), target, weight=weight, ignore_index=ignore_index)


def bce_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """One-vs-rest BCE: a sigmoid per class channel against the one-hot target, mean over valid pixels x C."""
    valid, t = _valid(target, ignore_index)
    g = _one_hot(t, logits.shape[1], valid)
    per = F.binary_cross_entropy_with_logits(logits.float(), g, reduction="none")  # [B, C, H, W]
    n = valid.sum() * logits.shape[1]
    return (per * valid[:, None]).sum() / n.clamp(min=1)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: float = 1.0,
               ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Softmax focal loss ``-α (1 - p_t)^γ log p_t``, mean over valid pixels (γ = 0, α = 1: CE)."""
    valid, t = _valid(target, ignore_index)
    logp_t = F.log_softmax(logits.float(), 1).gather(1, t[:, None])[:, 0]  # [B, H, W]
    per = -alpha * (1 - logp_t.exp()) ** gamma * logp_t
    return (per * valid).sum() / valid.sum().clamp(min=1)


def _overlap_sums(logits: torch.Tensor, target: torch.Tensor, include_background: bool,
                  ignore_index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per class over every valid pixel of the batch: ``(Σ p g, Σ p, Σ g)``, each ``[C]`` (or ``[C - 1]``)."""
    valid, t = _valid(target, ignore_index)
    p = F.softmax(logits.float(), 1) * valid[:, None]
    g = _one_hot(t, logits.shape[1], valid)
    if not include_background:
        p, g = p[:, 1:], g[:, 1:]
    dims = (0, 2, 3)
    return (p * g).sum(dims), p.sum(dims), g.sum(dims)


def tversky_index(logits: torch.Tensor, target: torch.Tensor, alpha: float, beta: float, smooth: float = 1.0,
                  include_background: bool = False, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """``[C']`` Tversky index per scored class (module docstring); α = β = 0.5 is soft Dice, 1 and 1 Jaccard."""
    tp, sp, sg = _overlap_sums(logits, target, include_background, ignore_index)
    fp, fn = sp - tp, sg - tp
    return (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0, include_background: bool = False,
              ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """``1 - (2 Σ p g + ε) / (Σ p + Σ g + ε)`` per class, mean over the scored classes."""
    tp, sp, sg = _overlap_sums(logits, target, include_background, ignore_index)
    return (1 - (2 * tp + smooth) / (sp + sg + smooth)).mean()


def jaccard_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0,
                 include_background: bool = False, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """``1 - (Σ p g + ε) / (Σ p + Σ g - Σ p g + ε)`` per class, mean over the scored classes."""
    tp, sp, sg = _overlap_sums(logits, target, include_background, ignore_index)
    return (1 - (tp + smooth) / (sp + sg - tp + smooth)).mean()


def tversky_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.3, beta: float = 0.7,
                 smooth: float = 1.0, include_background: bool = False,
                 ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """``1 - TI`` per class, mean over the scored classes (defaults: Salehi et al.'s α 0.3, β 0.7)."""
    return (1 - tversky_index(logits, target, alpha, beta, smooth, include_background, ignore_index)).mean()


def focal_tversky_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.3, beta: float = 0.7,
                       gamma: float = 0.75, smooth: float = 1.0, include_background: bool = False,
                       ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """``(1 - TI)^γ`` per class, mean over the scored classes (Abraham & Khan: γ = 3/4, α 0.3, β 0.7)."""
    ti = tversky_index(logits, target, alpha, beta, smooth, include_background, ignore_index)
    # clamp: at TI = 1 exactly, (1 - TI)^γ with γ < 1 has an infinite derivative
    return (1 - ti).clamp(min=1e-6).pow(gamma).mean()


#: name -> loss function; a model config selects one by name with keyword parameters.
SEGMENTATION_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "ce": ce_loss,
    "bce": bce_loss,
    "focal": focal_loss,
    "dice": dice_loss,
    "jaccard": jaccard_loss,
    "tversky": tversky_loss,
    "focal_tversky": focal_tversky_loss,
}


def segmentation_loss(name: str, **params: Any) -> LossFn:
    """The loss ``name`` with ``params`` bound: ``fn(logits [B, C, H, W], target [B, H, W]) -> scalar``.

    Unknown names and parameters are errors that list the valid ones (checked here, before any training).
    """
    import inspect

    if name not in SEGMENTATION_LOSSES:
        raise ValueError(f"unknown segmentation loss {name!r}; available: {', '.join(SEGMENTATION_LOSSES)}")
    fn = SEGMENTATION_LOSSES[name]
    accepted = [p for p in inspect.signature(fn).parameters if p not in ("logits", "target")]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"segmentation loss {name!r}: unknown parameter(s) {', '.join(unknown)}; "
                         f"valid: {', '.join(accepted)}")

    def bound(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return fn(logits, target, **params)

    return bound
