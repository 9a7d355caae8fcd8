"""U-Net network modules (imported by the builder in ``unet.py``)."""

from __future__ import annotations

import torch
from torch import nn


class DoubleConv(nn.Sequential):
    """Two padded 3x3 conv (+BN) + ReLU layers: ``[B, cin, H, W] -> [B, cout, H, W]``."""

    def __init__(self, cin: int, cout: int, batch_norm: bool) -> None:
        layers: list[nn.Module] = []
        for c_in in (cin, cout):
            layers.append(nn.Conv2d(c_in, cout, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Up(nn.Module):
    """2x2 up-convolution halving channels, concat with the encoder map, then DoubleConv."""

    def __init__(self, cin: int, cout: int, batch_norm: bool) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(cin // 2 + cout, cout, batch_norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """``x: [B, cin, h, w]``, ``skip: [B, cout, 2h, 2w]`` -> ``[B, cout, 2h, 2w]``."""
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNet(nn.Module):
    """Encoder: 4 x (DoubleConv, maxpool); bottleneck DoubleConv; decoder: 4 x Up; 1x1 conv head."""

    def __init__(self, in_channels: int, num_classes: int, base: int = 64, batch_norm: bool = True) -> None:
        super().__init__()
        widths = [base * 2**i for i in range(5)]  # 64, 128, 256, 512, 1024 at base 64
        self.encoders = nn.ModuleList()
        cin = in_channels
        for w in widths[:4]:
            self.encoders.append(DoubleConv(cin, w, batch_norm))
            cin = w
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = DoubleConv(widths[3], widths[4], batch_norm)
        self.decoders = nn.ModuleList(Up(widths[i + 1], widths[i], batch_norm) for i in reversed(range(4)))
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [B, 3, H, W]`` -> logits ``[B, num_classes, H, W]`` (H, W divisible by 16)."""
        skips = []
        for enc in self.encoders:
            x = enc(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for dec, skip in zip(self.decoders, reversed(skips), strict=True):
            x = dec(x, skip)
        return self.head(x)
