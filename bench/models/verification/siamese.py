"""Siamese networks for verification (task ``verification``): contrastive and triplet training."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn

_NO_COUNT = "none published: the catalog's Siamese models are written here on a small backbone (no paper network)"


@register_model(
    "siamese_contrastive",
    task="verification",
    source="bench",
    paper="Hadsell, Chopra & LeCun 2006, Dimensionality Reduction by Learning an Invariant Mapping (CVPR)",
    description="twin CNN with shared weights, contrastive loss Y*D^2 + (1-Y)*max(m - D, 0)^2",
    published_ref=_NO_COUNT,
)
def build_siamese_contrastive(
    num_classes: int, image_size: int, margin: float = 1.0, width: int = 32, embedding_dim: int = 64
) -> nn.Module:
    """Embedding net ``[B, 3, S, S] -> [B, embedding_dim]`` (unit norm); ``num_classes`` is unused by the net."""
    from bench.models.verification._siamese import Siamese

    _check_size(image_size)
    return Siamese("contrastive", margin, width, embedding_dim)


@register_model(
    "siamese_triplet",
    task="verification",
    source="bench",
    paper="Schroff, Kalenichenko & Philbin 2015, FaceNet (arXiv:1503.03832), Sec. 3.1",
    description="twin CNN with shared weights, triplet loss max(d(a,p) - d(a,n) + margin, 0)",
    published_ref=_NO_COUNT,
)
def build_siamese_triplet(
    num_classes: int, image_size: int, margin: float = 0.2, width: int = 32, embedding_dim: int = 64
) -> nn.Module:
    """Embedding net ``[B, 3, S, S] -> [B, embedding_dim]`` (unit norm); ``num_classes`` is unused by the net."""
    from bench.models.verification._siamese import Siamese

    _check_size(image_size)
    return Siamese("triplet", margin, width, embedding_dim)


def _check_size(image_size: int) -> None:
    if image_size < 16:
        raise ValueError(f"Siamese embedding net pools 4 times: image_size must be >= 16, got {image_size}")
