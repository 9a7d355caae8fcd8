"""The guide's segmentation losses (bench.engine.segmentation_losses) against hand-computed values.

The example: one image of three pixels, two classes (background 0, foreground 1).
* pixel A, foreground: logits (0, ln 3), softmax (0.25, 0.75);
* pixel B, background: logits (0, 0), softmax (0.5, 0.5);
* pixel C, ignored (255): logits (9, -9), which must change nothing.
"""

from __future__ import annotations

import math

import pytest
import torch

from bench.engine.segmentation_losses import (
    SEGMENTATION_LOSSES,
    ce_loss,
    dice_loss,
    segmentation_loss,
    tversky_index,
)

LN2, LN43 = math.log(2), math.log(4 / 3)


def example() -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.tensor([[0.0, 0.0, 9.0], [math.log(3), 0.0, -9.0]])[None, :, None, :]  # [1, 2, 1, 3]
    target = torch.tensor([[[1, 0, 255]]])  # [1, 1, 3]
    return logits, target


def fg_sums() -> tuple[float, float, float]:
    """Foreground Σ p g, Σ p, Σ g over the valid pixels A and B: 0.75, 0.75 + 0.5, 1."""
    return 0.75, 1.25, 1.0


HAND = {
    # CE: -ln 0.75 at A, -ln 0.5 at B, mean over the 2 valid pixels
    ("ce", ()): (LN43 + LN2) / 2,
    # weighted CE (1, 3): (3 ln 4/3 + 1 ln 2) / (3 + 1)
    ("ce", (("class_weights", (1.0, 3.0)),)): (3 * LN43 + LN2) / 4,
    # BCE per channel: A (bg 0: sigmoid 0 = 0.5; fg 1: sigmoid ln 3 = 0.75), B (0.5 and 0.5): 4 terms
    ("bce", ()): (LN2 + LN43 + LN2 + LN2) / 4,
    # focal γ 2: (1 - 0.75)^2 ln 4/3 and (1 - 0.5)^2 ln 2
    ("focal", ()): (0.0625 * LN43 + 0.25 * LN2) / 2,
    ("focal", (("gamma", 0.0),)): (LN43 + LN2) / 2,  # γ 0 is CE
    # Dice (ε 0): 1 - 2 x 0.75 / (1.25 + 1) = 1/3; ε 1: 1 - 2.5 / 3.25
    ("dice", (("smooth", 0.0),)): 1 / 3,
    ("dice", ()): 1 - 2.5 / 3.25,
    # Jaccard (ε 0): 1 - 0.75 / (1.25 + 1 - 0.75) = 0.5
    ("jaccard", (("smooth", 0.0),)): 0.5,
    # Tversky α 0.3 (FP = 0.5), β 0.7 (FN = 0.25): 1 - 0.75 / (0.75 + 0.15 + 0.175)
    ("tversky", (("smooth", 0.0),)): 1 - 0.75 / 1.075,
    ("focal_tversky", (("smooth", 0.0),)): (1 - 0.75 / 1.075) ** 0.75,
    ("focal_tversky", (("smooth", 0.0), ("gamma", 2.0))): (1 - 0.75 / 1.075) ** 2,
}


@pytest.mark.parametrize(("name", "params"), list(HAND))
def test_hand_computed(name: str, params: tuple[tuple[str, object], ...]) -> None:
    logits, target = example()
    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in params}
    got = segmentation_loss(name, **kwargs)(logits, target).item()
    assert got == pytest.approx(HAND[(name, params)], rel=1e-5)


def test_every_loss_is_hand_checked() -> None:
    assert {name for name, _ in HAND} == set(SEGMENTATION_LOSSES)


def test_background_counts_when_asked() -> None:
    """Background sums: Σ p g = 0.5 (B), Σ p = 0.25 + 0.5, Σ g = 1; Dice (ε 0) = 1 / 1.75; the mean of both classes."""
    logits, target = example()
    got = dice_loss(logits, target, smooth=0.0, include_background=True).item()
    assert got == pytest.approx(((1 - 1 / 1.75) + 1 / 3) / 2, rel=1e-6)


def test_tversky_at_one_half_is_dice() -> None:
    logits, target = torch.randn(2, 3, 5, 5), torch.randint(0, 3, (2, 5, 5))
    ti = tversky_index(logits, target, 0.5, 0.5, smooth=0.0)  # the smoothing terms differ: 2 TP + ε vs TP + ε
    assert (1 - ti).mean().item() == pytest.approx(dice_loss(logits, target, smooth=0.0).item(), rel=1e-6)


@pytest.mark.parametrize("name", list(SEGMENTATION_LOSSES))
def test_finite_gradient_without_foreground(name: str) -> None:
    """An image with no foreground at all (common in the imbalanced view), and a batch that is all ignored."""
    torch.manual_seed(0)
    for target in (torch.zeros(2, 6, 6, dtype=torch.long), torch.full((2, 6, 6), 255)):
        logits = torch.randn(2, 2, 6, 6, requires_grad=True)
        loss = segmentation_loss(name)(logits, target)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logits.grad).all(), (name, target.unique())


def test_perfect_prediction_scores_near_zero() -> None:
    target = torch.randint(0, 3, (1, 8, 8))
    logits = 30 * (2 * torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() - 1)  # ±30
    for name in SEGMENTATION_LOSSES:
        assert segmentation_loss(name)(logits, target).item() < 1e-3, name


def test_bad_selection_and_labels_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown segmentation loss 'dise'; available: ce, bce, focal, dice"):
        segmentation_loss("dise")
    with pytest.raises(ValueError, match="'tversky': unknown parameter.s. gama; valid: alpha, beta, smooth"):
        segmentation_loss("tversky", gama=2)
    with pytest.raises(ValueError, match="ce class_weights: 3 values for 2 classes"):
        ce_loss(*example(), class_weights=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="label 4 in the target but the model has 2 outputs"):
        dice_loss(torch.zeros(1, 2, 2, 2), torch.full((1, 2, 2), 4))
