"""FCN-32s, FCN-16s and FCN-8s on VGG16 (Long, Shelhamer & Darrell 2015), the layout of the authors' Caffe nets.

* VGG16's 13 convs (3x3, ReLU) in 5 blocks, each closed by a 2x2/2 max pool (Caffe's ceil rounding); the
  first conv pads 100 px, so that any input survives the 7x7 ``fc6`` and the crops below line up;
* ``fc6`` / ``fc7``: the classifier made convolutional (7x7 conv 4096, 1x1 conv 4096, ReLU, dropout 0.5);
* ``score_fr``: 1x1 conv to the classes, zero-initialised (so training starts at the uniform prediction);
* **FCN-32s**: one deconvolution x32 (kernel 64), fixed to bilinear interpolation, cropped at offset 19;
* **FCN-16s**: ``score_fr`` upsampled x2 by a **learnable** deconvolution (kernel 4, bilinear init), plus
  ``score_pool4`` (1x1 conv on pool4, zero init, cropped at offset 5); the sum upsampled x16 (fixed
  bilinear, kernel 32), cropped at offset 27;
* **FCN-8s**: FCN-16s's fused map upsampled x2 again (learnable), plus ``score_pool3`` (cropped at 9); the
  sum upsampled x8 (fixed bilinear, kernel 16), cropped at offset 31.

The deconvolutions have no bias, as in the reference.  This is the staged FCN-8s (no 0.01 / 0.0001 scaling
of the pool outputs, which the "at-once" variant adds for fine-tuning from ImageNet weights).  ``width``
scales every conv's channels and ``fc_dim`` the two fc convs (small profiles); ``batch_norm`` adds BN after
each VGG conv (not in the paper: it makes random-init training possible at small batch).
"""

from __future__ import annotations

import torch
from torch import nn

VGG16: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
# (output stride, crop offset of the final upsampling) per variant, and the skip crops (Caffe's offsets)
FINAL = {32: (64, 32, 19), 16: (32, 16, 27), 8: (16, 8, 31)}  # stride -> (kernel, stride, crop offset)
POOL4_OFFSET, POOL3_OFFSET = 5, 9


def bilinear_kernel(channels: int, size: int) -> torch.Tensor:
    """``[channels, channels, size, size]`` weights of a per-channel bilinear upsampling deconvolution."""
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    og = torch.arange(size, dtype=torch.float32)
    filt = 1 - (og - centre).abs() / factor
    weight = torch.zeros(channels, channels, size, size)
    weight[range(channels), range(channels)] = filt[:, None] * filt[None, :]
    return weight


def upsample(channels: int, kernel: int, stride: int, learnable: bool) -> nn.ConvTranspose2d:
    """A bias-free deconvolution initialised to bilinear interpolation; fixed unless ``learnable``."""
    deconv = nn.ConvTranspose2d(channels, channels, kernel, stride, bias=False)
    with torch.no_grad():
        deconv.weight.copy_(bilinear_kernel(channels, kernel))
    deconv.weight.requires_grad_(learnable)
    return deconv


def crop(x: torch.Tensor, offset: int, like: torch.Tensor) -> torch.Tensor:
    """``x [B, C, H, W]`` cropped at ``(offset, offset)`` to ``like``'s spatial size (Caffe's Crop layer)."""
    h, w = like.shape[-2:]
    if x.shape[-2] < offset + h or x.shape[-1] < offset + w:
        raise ValueError(f"fcn: cannot crop {tuple(x.shape[-2:])} at offset {offset} to {(h, w)}")
    return x[..., offset:offset + h, offset:offset + w]


def score(cin: int, num_classes: int) -> nn.Conv2d:
    """A zero-initialised 1x1 scoring conv (the reference's score layers start at zero)."""
    conv = nn.Conv2d(cin, num_classes, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class FCN(nn.Module):
    """``x [B, 3, H, W] -> logits [B, num_classes, H, W]`` at output stride ``stride`` (32, 16 or 8)."""

    def __init__(self, num_classes: int, stride: int, width: float = 1.0, fc_dim: int = 4096,
                 batch_norm: bool = False, dropout: float = 0.5) -> None:
        super().__init__()
        if stride not in FINAL:
            raise ValueError(f"fcn: stride {stride}: choose 32, 16 or 8")
        self.output_stride = stride  # read by the contract test (what this stride can draw)
        blocks: list[nn.Sequential] = []
        layers: list[nn.Module] = []
        cin, widths = 3, []
        for v in VGG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
                blocks.append(nn.Sequential(*layers))
                widths.append(cin)
                layers = []
                continue
            cout = max(1, round(int(v) * width))
            layers.append(nn.Conv2d(cin, cout, 3, padding=100 if not blocks and not layers else 1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.ReLU(inplace=True))
            cin = cout
        self.to_pool3 = nn.Sequential(*blocks[:3])
        self.to_pool4, self.to_pool5 = blocks[3], blocks[4]
        self.fc = nn.Sequential(
            nn.Conv2d(cin, fc_dim, 7), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Conv2d(fc_dim, fc_dim, 1), nn.ReLU(inplace=True), nn.Dropout(dropout),
        )
        self.score_fr = score(fc_dim, num_classes)
        if stride <= 16:
            self.upscore2 = upsample(num_classes, 4, 2, learnable=True)
            self.score_pool4 = score(widths[3], num_classes)
        if stride == 8:
            self.upscore_pool4 = upsample(num_classes, 4, 2, learnable=True)
            self.score_pool3 = score(widths[2], num_classes)
        kernel, up, self.final_offset = FINAL[stride]
        self.upscore = upsample(num_classes, kernel, up, learnable=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool3 = self.to_pool3(x)
        pool4 = self.to_pool4(pool3)
        s = self.score_fr(self.fc(self.to_pool5(pool4)))
        if self.output_stride <= 16:
            s = self.upscore2(s)
            s = s + crop(self.score_pool4(pool4), POOL4_OFFSET, s)
        if self.output_stride == 8:
            s = self.upscore_pool4(s)
            s = s + crop(self.score_pool3(pool3), POOL3_OFFSET, s)
        return crop(self.upscore(s), self.final_offset, x)
