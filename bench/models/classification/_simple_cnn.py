"""The guide's small MNIST CNN (imported by the builder in ``simple_cnn.py``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def conv_block(cin: int, cout: int, dropout: float) -> nn.Sequential:
    """conv 3x3 (padded) -> ReLU -> max-pool 2x2 -> BN -> dropout: ``[B, cin, H, W] -> [B, cout, H/2, W/2]``.

    The guide's order: batch norm after the pool normalises the pooled activations the next
    layer sees, and dropout closes the block.
    """
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(cout),
        nn.Dropout(dropout),
    )


class SimpleCNN(nn.Module):
    """``len(channels)`` conv blocks, then flatten -> dense(hidden) -> ReLU -> dropout -> dense(classes).

    ``x: [B, 3, S, S]`` -> logits ``[B, num_classes]``; the flattened map is
    ``channels[-1] x (S // 2**n)^2`` (floor-halved per block), so the first dense layer is sized from
    ``image_size``.
    """

    def __init__(
        self, num_classes: int, image_size: int, channels: Sequence[int] = (32, 64), hidden: int = 128,
        conv_dropout: float = 0.25, dense_dropout: float = 0.5,
    ) -> None:
        super().__init__()
        blocks, cin, side = [], 3, image_size
        for cout in channels:
            blocks.append(conv_block(cin, cout, conv_dropout))
            cin, side = cout, side // 2
        self.features = nn.Sequential(*blocks)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(cin * side * side, hidden)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dense_dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [B, 3, S, S]`` -> ``[B, num_classes]``."""
        x = self.flatten(self.features(x))  # [B, C * s * s]
        return self.fc2(self.dropout(self.relu(self.fc1(x))))
