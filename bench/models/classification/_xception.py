"""Xception (Chollet 2017) as its three flows, from timm's ``legacy_xception`` modules.

timm's ``legacy_xception`` is Chollet's network layer for layer (22,855,952 parameters at 1000
classes, the paper's Table 3 figure): separable convs are a depthwise 3x3 then a pointwise 1x1
with nothing between them, every conv is followed by BN, and each of the 12 blocks has a residual
link (1x1 stride-2 conv + BN when the shape changes).  Its modules sit flat on the model (conv1,
bn1, ..., block12, conv3, bn4); here they are regrouped, unchanged and in the same order, into the
paper's entry, middle and exit flows (Fig. 5) so the transfer modes see whole stages.
"""

from __future__ import annotations

import torch
from torch import nn

# Chollet 2017, Sec. 4.3: "a dropout layer of rate 0.5 is included before the logistic regression
# layer" in the ImageNet experiments.
DROPOUT = 0.5


class Xception(nn.Module):
    """``x [B, 3, S, S] -> logits [B, K]``; total stride 32 (10x10 exit map at 299 px), any S >= 16."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        import timm

        flat = timm.create_model("legacy_xception", pretrained=False, num_classes=num_classes)
        blocks = [getattr(flat, f"block{i}") for i in range(1, 13)]
        self.stem = nn.Sequential(flat.conv1, flat.bn1, flat.act1, flat.conv2, flat.bn2, flat.act2)
        self.entry_flow = nn.Sequential(*blocks[:3])     # 128, 256, 728 channels, each stride 2
        self.middle_flow = nn.Sequential(*blocks[3:11])  # 8 x (3 separable convs, 728 channels) + identity
        self.exit_flow = nn.Sequential(                  # block 728 -> 1024 (stride 2), sep 1536, sep 2048
            blocks[11], flat.conv3, flat.bn3, flat.act3, flat.conv4, flat.bn4, flat.act4,
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(DROPOUT)
        self.fc = flat.fc  # 2048 -> num_classes
        self.bench_head = "fc"
        self.bench_stages = (
            "stem", *(f"entry_flow.{i}" for i in range(3)), *(f"middle_flow.{i}" for i in range(8)), "exit_flow",
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.exit_flow(self.middle_flow(self.entry_flow(self.stem(x))))
        return self.fc(self.dropout(self.pool(x).flatten(1)))

