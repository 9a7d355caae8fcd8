"""YOLOv4's network body (Bochkovskiy et al. 2020, darknet's ``cfg/yolov4.cfg``): CSPDarknet53 + SPP + PANet.

``YoloV4Features(x [B, 3, S, S]) -> [P3, P4, P5]`` at strides 8, 16, 32 with ``channels`` (256, 512, 1024) at
width 1: the outputs of the 3x3 convs that precede the three 1x1 prediction convs in yolov4.cfg, which
``YoloV3Detector`` (``_yolo_v3.py``, the v3 head: target assignment, loss, decoding) owns.

Every conv is darknet's ``[convolutional] batch_normalize=1``: conv without bias, BN, activation.

* Backbone, CSPDarknet53 (Mish): a 3x3 stem (32), then five stages, each a stride-2 3x3 conv and a CSP block
  with 1, 2, 8, 8, 4 residual blocks (64, 128, 256, 512, 1024 channels).  A CSP block splits the input with
  two 1x1 convs (a shortcut part and a main part, half the channels each; stage 1 keeps all 64 in both), runs
  the residual blocks (1x1 then 3x3, added to their input) and a 1x1 on the main part, concatenates the two
  parts and fuses them with a 1x1.
* Neck (leaky ReLU 0.1): on C5, 1x1-3x3-1x1 (512), SPP (max pools 5, 9, 13 at stride 1, concatenated with
  their input: 2048), 1x1-3x3-1x1 (512) = N5.  Top-down FPN path: 1x1 (256) + 2x upsample, concatenated with
  a 1x1 (256) of C4, five convs alternating 1x1 / 3x3 (256 / 512) = N4; likewise with C3 (128 / 256) = N3.
  Bottom-up PAN path (the "PANet" of the paper, with concatenation instead of PANet's addition): a 3x3 of
  N3 gives P3; N3 -> stride-2 3x3 (256), concat N4, five convs (256 / 512) -> 3x3 (512) = P4; that -> stride-2
  3x3 (512), concat N5, five convs (512 / 1024) -> 3x3 (1024) = P5.

``width`` scales every channel count (rounded to a multiple of 8, at least 8) and ``depth`` the number of
residual blocks per stage (at least 1): the cpu and smoke profiles' knobs; 1.0 and 1.0 are yolov4.cfg.
"""

from __future__ import annotations

import torch
from torch import nn

STAGE_BLOCKS = (1, 2, 8, 8, 4)  # residual blocks per CSPDarknet53 stage
STAGE_CHANNELS = (64, 128, 256, 512, 1024)
SPP_POOLS = (5, 9, 13)
#: yolov4.cfg's COCO anchors (w, h) for its 608 px input, sorted by area: three per scale, stride 8 first.
COCO_ANCHORS_608: tuple[tuple[float, float], ...] = (
    (12, 16), (19, 36), (40, 28), (36, 75), (76, 55), (72, 146), (142, 110), (192, 243), (459, 401))


def default_anchors(image_size: int) -> list[tuple[float, float]]:
    """yolov4.cfg's anchors scaled from its 608 px input to ``image_size``."""
    return [(w * image_size / 608, h * image_size / 608) for w, h in COCO_ANCHORS_608]


def conv_bn(c_in: int, c_out: int, k: int, stride: int = 1, act: str = "leaky") -> nn.Sequential:
    """Darknet's batch-normalised conv: ``k x k`` conv (no bias, 'same' padding), BN, Mish or leaky ReLU 0.1."""
    activation = nn.Mish() if act == "mish" else nn.LeakyReLU(0.1)
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out), activation)


class Residual(nn.Module):
    """Darknet's residual block: ``x + conv3x3(conv1x1(x))`` (hidden width ``hidden``), Mish."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, hidden, 1, act="mish"), conv_bn(hidden, channels, 3, act="mish"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class CSPStage(nn.Module):
    """A stride-2 3x3 conv to ``c_out``, then the CSP block of ``blocks`` residual blocks (see the module doc).

    ``first``: stage 1 of CSPDarknet53, whose split keeps all ``c_out`` channels in both parts and whose
    residual block is a bottleneck (hidden ``c_out / 2``); later stages split in halves, hidden = part width.
    """

    def __init__(self, c_in: int, c_out: int, blocks: int, first: bool = False) -> None:
        super().__init__()
        part = c_out if first else c_out // 2
        hidden = c_out // 2 if first else part
        self.down = conv_bn(c_in, c_out, 3, 2, act="mish")
        self.split_short = conv_bn(c_out, part, 1, act="mish")
        self.split_main = conv_bn(c_out, part, 1, act="mish")
        self.blocks = nn.Sequential(*(Residual(part, hidden) for _ in range(blocks)))
        self.transition = conv_bn(part, part, 1, act="mish")
        self.fuse = conv_bn(2 * part, c_out, 1, act="mish")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(x)
        main = self.transition(self.blocks(self.split_main(x)))
        # yolov4.cfg's route order: the main part first, then the shortcut part.
        return self.fuse(torch.cat([main, self.split_short(x)], dim=1))


class CSPDarknet53(nn.Module):
    """``x [B, 3, S, S] -> (C3, C4, C5)``: the outputs of stages 3, 4, 5 (strides 8, 16, 32)."""

    def __init__(self, channels: tuple[int, ...], blocks: tuple[int, ...], stem: int) -> None:
        super().__init__()
        self.stem = conv_bn(3, stem, 3, act="mish")
        c_in, stages = stem, []
        for i, (c, n) in enumerate(zip(channels, blocks, strict=True)):
            stages.append(CSPStage(c_in, c, n, first=i == 0))
            c_in = c
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs[2], outs[3], outs[4]


class SPP(nn.Module):
    """Spatial pyramid pooling as in YOLOv4: stride-1 max pools (5, 9, 13), concatenated with the input
    (yolov4.cfg's route order: 13, 9, 5, input) -> ``4 * C`` channels, same resolution."""

    def __init__(self, pools: tuple[int, ...] = SPP_POOLS) -> None:
        super().__init__()
        self.pools = nn.ModuleList(nn.MaxPool2d(k, 1, k // 2) for k in pools)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([pool(x) for pool in reversed(self.pools)] + [x], dim=1)


def five_convs(c_in: int, c: int) -> nn.Sequential:
    """yolov4.cfg's neck stack: 1x1 (c), 3x3 (2c), 1x1 (c), 3x3 (2c), 1x1 (c), leaky."""
    return nn.Sequential(conv_bn(c_in, c, 1), conv_bn(c, 2 * c, 3), conv_bn(2 * c, c, 1), conv_bn(c, 2 * c, 3),
                         conv_bn(2 * c, c, 1))


class YoloV4Features(nn.Module):
    """CSPDarknet53 + SPP + PANet: ``x [B, 3, S, S]`` (S a multiple of 32) -> ``[P3, P4, P5]``, shapes
    ``[B, channels[i], S / stride, S / stride]`` for strides 8, 16, 32 (see the module docstring)."""

    def __init__(self, width: float = 1.0, depth: float = 1.0) -> None:
        super().__init__()
        if width <= 0 or depth <= 0:
            raise ValueError(f"yolo_v4: width and depth multipliers must be > 0, got width={width}, depth={depth}")

        def ch(c: int) -> int:  # channels at this width, a multiple of 8
            return max(8, int(round(c * width / 8)) * 8)

        c3, c4, c5 = ch(256), ch(512), ch(1024)
        blocks = tuple(max(1, round(n * depth)) for n in STAGE_BLOCKS)
        self.backbone = CSPDarknet53(tuple(ch(c) for c in STAGE_CHANNELS), blocks, stem=ch(32))
        h3, h4, h5 = c3 // 2, c4 // 2, c5 // 2  # the neck's 1x1 widths: 128, 256, 512
        # SPP block on C5 -> N5.
        self.pre_spp = nn.Sequential(conv_bn(c5, h5, 1), conv_bn(h5, c5, 3), conv_bn(c5, h5, 1))
        self.spp = SPP()
        self.post_spp = nn.Sequential(conv_bn(4 * h5, h5, 1), conv_bn(h5, c5, 3), conv_bn(c5, h5, 1))
        # Top-down path: N5 -> N4 -> N3.
        self.up5 = nn.Sequential(conv_bn(h5, h4, 1), nn.Upsample(scale_factor=2, mode="nearest"))
        self.lat4 = conv_bn(c4, h4, 1)
        self.td4 = five_convs(2 * h4, h4)
        self.up4 = nn.Sequential(conv_bn(h4, h3, 1), nn.Upsample(scale_factor=2, mode="nearest"))
        self.lat3 = conv_bn(c3, h3, 1)
        self.td3 = five_convs(2 * h3, h3)
        # Bottom-up path and the 3x3 convs before each prediction conv.
        self.out3 = conv_bn(h3, c3, 3)
        self.down3 = conv_bn(h3, h4, 3, 2)
        self.bu4 = five_convs(2 * h4, h4)
        self.out4 = conv_bn(h4, c4, 3)
        self.down4 = conv_bn(h4, h5, 3, 2)
        self.bu5 = five_convs(2 * h5, h5)
        self.out5 = conv_bn(h5, c5, 3)
        self.out_channels = (c3, c4, c5)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c3, c4, c5 = self.backbone(x)
        n5 = self.post_spp(self.spp(self.pre_spp(c5)))
        # yolov4.cfg's route order: the lateral (backbone) branch first, then the upsampled one.
        n4 = self.td4(torch.cat([self.lat4(c4), self.up5(n5)], dim=1))
        n3 = self.td3(torch.cat([self.lat3(c3), self.up4(n4)], dim=1))
        # Bottom-up: the downsampled map first, then the top-down one at that scale.
        p4 = self.bu4(torch.cat([self.down3(n3), n4], dim=1))
        p5 = self.bu5(torch.cat([self.down4(p4), n5], dim=1))
        return [self.out3(n3), self.out4(p4), self.out5(p5)]
