"""The guide's MNIST example CNN, written here (no paper: a textbook small convnet)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import register_model
from bench.models.classification._common import require_min_size, tag_transfer

if TYPE_CHECKING:
    from torch import nn


@register_model(
    "simple_cnn",
    task="classification",
    source="bench",
    paper="the guide's MNIST example (Convolutional Neural Networks, MNIST_dataset__prediction.ipynb)",
    description="small CNN: [conv 3x3 -> ReLU -> max-pool -> BN -> dropout] x 2, flatten, dense 128, dropout, dense",
    published_params=None,
    published_ref="none: a textbook example network from the guide, not a published architecture",
    ref_image_size=28,
)
def build_simple_cnn(
    num_classes: int, image_size: int, channels: tuple[int, ...] = (32, 64), hidden: int = 128,
    conv_dropout: float = 0.25, dense_dropout: float = 0.5,
) -> nn.Module:
    """``[B, 3, S, S] -> [B, num_classes]``; each of the ``len(channels)`` blocks halves S (floor).

    ``channels``: filters per conv block; ``hidden``: width of the dense layer; dropout rates after
    each conv block and after the dense layer.
    """
    from bench.models.classification._simple_cnn import SimpleCNN

    if not channels:
        raise ValueError("simple_cnn needs at least one conv block (channels is empty)")
    require_min_size("simple_cnn", image_size, 2 ** len(channels))
    model = SimpleCNN(num_classes, image_size, channels, hidden, conv_dropout, dense_dropout)
    # The conv blocks, then the hidden dense layer, are the stages; fc2 is the classifier.
    stages = [f"features.{i}" for i in range(len(channels))] + ["fc1"]
    return tag_transfer(model, head="fc2", stages=stages)
