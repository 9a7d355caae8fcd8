"""Deep Residual U-Net (Zhang, Liu & Wang 2018, arXiv:1711.10684) network modules (builder: ``res_unet.py``).

Sec. II (Methodology: the residual unit of Fig. 3, the network of Table I) of the paper:

* every unit is a **pre-activation residual unit** (He et al. 2016, "Identity Mappings"): the residual
  branch is (BN-ReLU-conv) x 2 and the unit's output is ``residual(x) + shortcut(x)``, with no activation
  after the sum; the very first unit takes the raw image, so its first conv has no BN-ReLU before it
  (Fig. 3: "Conv" then "BN, ReLU, Conv" then addition);
* encoder: 3 units (64, 128, 256 filters), the 2nd and 3rd downsampling with a stride-2 first conv
  (the paper replaces pooling by strided convolutions); bridge: one unit (512, stride 2);
* decoder: 3 units (256, 128, 64), each after a 2x upsampling of the lower level concatenated with the
  encoder map of the same resolution;
* a 1x1 conv to the classes (the paper: 1 sigmoid channel for road / not road; here K+1 softmax logits).

The shortcut is the identity where the unit keeps shape and a 1x1 (strided) conv + BN ("projection",
He et al. 2016) where it changes width or resolution; in Table I every unit does, since the decoder's
inputs are concatenations.  The paper does not say how its shortcuts match dimensions.

``block="bottleneck"`` swaps each unit's residual branch for the pre-activation bottleneck
BN-ReLU-1x1 (width/4), BN-ReLU-3x3 (stride), BN-ReLU-1x1 (width): not in the ResUNet paper (its units
are basic), but the ResNet bottleneck of He et al. 2016 for deeper/wider variants.
"""

from __future__ import annotations

import torch
from torch import nn

ENCODER_WIDTHS = (64, 128, 256)  # Table I levels 1-3
BRIDGE_WIDTH = 512  # Table I level 4
BOTTLENECK_RATIO = 4  # a bottleneck branch runs at width / 4 (He et al. 2016)


def _pre_act(cin: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(cin), nn.ReLU(inplace=True)]


class ResidualUnit(nn.Module):
    """Pre-activation residual unit ``[B, cin, H, W] -> [B, cout, H/stride, W/stride]``.

    ``residual``: the branch (its last module is the last conv); ``shortcut``: identity or 1x1 conv + BN.
    ``first``: the unit sees the raw image, so the branch starts with a conv, not with BN-ReLU.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1, block: str = "basic", first: bool = False) -> None:
        super().__init__()
        lead = [] if first else _pre_act(cin)
        if block == "basic":
            layers = [*lead, nn.Conv2d(cin, cout, 3, stride, padding=1),
                      *_pre_act(cout), nn.Conv2d(cout, cout, 3, padding=1)]
        elif block == "bottleneck":
            mid = max(1, cout // BOTTLENECK_RATIO)
            layers = [*lead, nn.Conv2d(cin, mid, 1),
                      *_pre_act(mid), nn.Conv2d(mid, mid, 3, stride, padding=1),
                      *_pre_act(mid), nn.Conv2d(mid, cout, 1)]
        else:
            raise ValueError(f"res_unet: block must be 'basic' or 'bottleneck', got {block!r}")
        self.residual = nn.Sequential(*layers)
        same = cin == cout and stride == 1
        self.shortcut: nn.Module = nn.Identity() if same else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [B, cin, H, W]`` -> ``residual(x) + shortcut(x)``: ``[B, cout, H/stride, W/stride]``."""
        return self.residual(x) + self.shortcut(x)


class DecoderUnit(nn.Module):
    """2x upsampling of the lower level, concatenation with the encoder map, then a residual unit."""

    def __init__(self, cin: int, cskip: int, cout: int, block: str) -> None:
        super().__init__()
        # The paper says "up-sampling" without a kind; nearest (Keras UpSampling2D's default) has no weights, and
        # the paper's 7.8M leaves no room for learned up-convolutions (res_unet.py).
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.unit = ResidualUnit(cin + cskip, cout, block=block)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """``x: [B, cin, h, w]``, ``skip: [B, cskip, 2h, 2w]`` -> ``[B, cout, 2h, 2w]``."""
        return self.unit(torch.cat([self.up(x), skip], dim=1))


class ResUNet(nn.Module):
    """Encoder (3 units), bridge (1 unit), decoder (3 upsample-concat-units), 1x1 head; widths x ``width``."""

    def __init__(self, in_channels: int, num_classes: int, width: float = 1.0, block: str = "basic") -> None:
        super().__init__()
        enc = [max(1, round(w * width)) for w in ENCODER_WIDTHS]
        bridge = max(1, round(BRIDGE_WIDTH * width))
        self.encoders = nn.ModuleList()
        cin = in_channels
        for i, w in enumerate(enc):
            self.encoders.append(ResidualUnit(cin, w, stride=1 if i == 0 else 2, block=block, first=i == 0))
            cin = w
        self.bridge = ResidualUnit(cin, bridge, stride=2, block=block)
        self.decoders = nn.ModuleList()
        cin = bridge
        for w in reversed(enc):
            self.decoders.append(DecoderUnit(cin, w, w, block))
            cin = w
        self.head = nn.Conv2d(cin, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [B, C, H, W]`` -> logits ``[B, num_classes, H, W]`` (H, W divisible by 8)."""
        skips = []
        for enc in self.encoders:
            x = enc(x)
            skips.append(x)
        x = self.bridge(x)
        for dec, skip in zip(self.decoders, reversed(skips), strict=True):
            x = dec(x, skip)
        return self.head(x)
