"""FC-DenseNet, "The One Hundred Layers Tiramisu" (Jégou et al. 2017, arXiv:1611.09326): network modules.

Sec. 3 and Tables 1-2 of the paper, and its released Lasagne code (SimJeg/FC-DenseNet, ``FC-DenseNet.py``):

* a 3x3 conv with ``first_filters`` (48) maps;
* **dense block** of n layers: layer i sees the concatenation of the block's input and the i-1 earlier
  layers' maps and adds k (growth rate) maps through BN-ReLU-3x3 conv-dropout (p = 0.2, Table 1);
* **transition down** (Table 1): BN-ReLU-1x1 conv (as many maps as its input) - dropout - 2x2 max pool;
  in the encoder the block's output (input + n k new maps) is both the skip and the transition's input;
* bottleneck dense block; from here on a dense block passes on **only its n k new maps** (Sec. 3.2: in the
  upsampling path a dense block's input is not concatenated to its output), so the feature count does not
  explode;
* **transition up**: a 3x3 transposed conv, stride 2, on only the previous block's new maps (as many
  filters as those maps), concatenated with the encoder's skip of that resolution, then a dense block;
* the **last** dense block's output is its input and its new maps (the released code's ``stack``), and a
  1x1 conv maps it to the classes (the paper's softmax follows).

Convolutions carry a bias and the transposed convs pad so the output is exactly 2x (Lasagne's 'valid'
deconvolution gives 2h+1 and the concatenation centre-crops it: the same map).
"""

from __future__ import annotations

import torch
from torch import nn

# Jégou et al. 2017 Sec. 4 (56, 67) and Table 2 (103): layers per dense block (5 down, bottleneck, 5 up), growth k.
VARIANTS: dict[int, tuple[tuple[int, ...], int]] = {
    56: ((4,) * 11, 12),
    67: ((5,) * 11, 16),
    103: ((4, 5, 7, 10, 12, 15, 12, 10, 7, 5, 4), 16),
}


class DenseLayer(nn.Sequential):
    """BN-ReLU-3x3 conv-dropout: ``[B, cin, H, W] -> [B, growth, H, W]``."""

    def __init__(self, cin: int, growth: int, dropout: float) -> None:
        super().__init__(nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, growth, 3, padding=1),
                         nn.Dropout(dropout))


class DenseBlock(nn.Module):
    """``n_layers`` dense layers; returns ``[input, new maps]`` (``keep_input``) or only the ``n_layers x growth``
    new maps (the decoder's blocks but the last)."""

    def __init__(self, cin: int, growth: int, n_layers: int, dropout: float, keep_input: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DenseLayer(cin + i * growth, growth, dropout) for i in range(n_layers))
        self.keep_input = keep_input
        self.out_channels = (cin if keep_input else 0) + n_layers * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [B, cin, H, W]`` -> ``[B, out_channels, H, W]``."""
        new: list[torch.Tensor] = []
        for layer in self.layers:
            new.append(layer(torch.cat([x, *new], dim=1)))
        return torch.cat([x, *new] if self.keep_input else new, dim=1)


class TransitionDown(nn.Sequential):
    """BN-ReLU-1x1 conv (``c`` maps)-dropout-2x2 max pool: ``[B, c, H, W] -> [B, c, H/2, W/2]``."""

    def __init__(self, c: int, dropout: float) -> None:
        super().__init__(nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.Conv2d(c, c, 1), nn.Dropout(dropout),
                         nn.MaxPool2d(2))


class TransitionUp(nn.Module):
    """3x3 transposed conv, stride 2, on the previous block's new maps, concatenated with the encoder skip:
    ``x: [B, c, h, w]``, ``skip: [B, s, 2h, 2w]`` -> ``[B, c + s, 2h, 2w]``."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(c, c, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.up(x), skip], dim=1)


class FCDenseNet(nn.Module):
    """First conv, (dense block, transition down) x P, bottleneck block, (transition up, dense block) x P, 1x1
    conv; ``layers`` has 2P + 1 entries (dense layers per block, down path, bottleneck, up path)."""

    def __init__(self, in_channels: int, num_classes: int, layers: tuple[int, ...], growth: int,
                 first_filters: int = 48, dropout: float = 0.2) -> None:
        super().__init__()
        if len(layers) % 2 != 1 or len(layers) < 3:
            raise ValueError(f"fc_densenet: layers needs 2P + 1 >= 3 entries (down, bottleneck, up), got {layers}")
        pools = len(layers) // 2
        self.pools = pools
        self.first = nn.Conv2d(in_channels, first_filters, 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downs = nn.ModuleList()
        c = first_filters
        skip_channels = []
        for n in layers[:pools]:
            block = DenseBlock(c, growth, n, dropout, keep_input=True)
            c = block.out_channels
            skip_channels.append(c)
            self.down_blocks.append(block)
            self.downs.append(TransitionDown(c, dropout))
        self.bottleneck = DenseBlock(c, growth, layers[pools], dropout, keep_input=False)
        new = self.bottleneck.out_channels  # only the new maps go up
        self.ups = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for i, (n, skip) in enumerate(zip(layers[pools + 1:], reversed(skip_channels), strict=True)):
            self.ups.append(TransitionUp(new))
            block = DenseBlock(new + skip, growth, n, dropout, keep_input=i == pools - 1)
            self.up_blocks.append(block)
            new = block.out_channels
        self.head = nn.Conv2d(new, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [B, C, H, W]`` -> logits ``[B, num_classes, H, W]`` (H, W divisible by 2^P)."""
        x = self.first(x)
        skips = []
        for block, down in zip(self.down_blocks, self.downs, strict=True):
            x = block(x)
            skips.append(x)
            x = down(x)
        x = self.bottleneck(x)
        for up, block, skip in zip(self.ups, self.up_blocks, reversed(skips), strict=True):
            x = block(up(x, skip))
        return self.head(x)
