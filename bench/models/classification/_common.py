"""Helpers shared by the classification builders (no torch import: registry modules use them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def require_min_size(name: str, image_size: int, stride: int) -> None:
    """Raise unless ``image_size`` survives the network's total ``stride`` (last map at least 1x1)."""
    if image_size < stride:
        raise ValueError(f"{name} needs image_size >= {stride} (total stride {stride}), got {image_size}")


def tag_transfer(model: Any, head: str, stages: Sequence[str] | None = None) -> Any:
    """Set the transfer-mode attributes of ``model`` (see ``bench.models``) and return it.

    ``head``: module path of the final classifier; ``stages``: module paths of the backbone stages,
    input to output, where the top-level children are not the natural stages.
    """
    model.bench_head = head
    if stages is not None:
        model.bench_stages = tuple(stages)
    return model
