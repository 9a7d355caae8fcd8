"""FastFCN (Wu et al. 2019, arXiv:1903.11816): a plain strided ResNet + Joint Pyramid Upsampling (JPU) + FCN head.

* Backbone (Sec. 3.1, Fig. 1c): the original, undilated ResNet (output stride 32); its last three stages
  C3, C4, C5 (layer2, layer3, layer4: strides 8, 16, 32) feed the JPU;
* **JPU** (Sec. 3.3, Fig. 4): a 3x3 conv + BN + ReLU on each of C3, C4, C5 to width C (512); C4 and C5
  upsampled bilinearly to C3's size; concatenated (3C); four parallel **separable** convs at dilations 1, 2, 4, 8
  (depthwise 3x3, BN, pointwise 1x1, as the authors' ``SeparableConv2d``), each to C, + BN + ReLU; concatenated:
  4C channels at output stride 8 ("generating the same resolution as dilated FCN, 1/8");
* head: the FCN head, i.e. the paper's "FCN" baseline with JPU (Table 1's ablation setting; the authors'
  ``encoding/models/fcn.py``): 3x3 conv to 1/4 of its input (512) + BN + ReLU + dropout 0.1, 1x1 conv to the
  classes (torchvision's ``FCNHead`` is that layer for layer); logits upsampled bilinearly to the input;
* training only (``aux_loss``): the authors' auxiliary FCN head on C4 (their scripts train with ``--aux``,
  weight 0.2, ``experiments/segmentation/option.py``): ``{"out", "aux"}`` in train mode, the plain logits in eval.

Differences from the authors' code: torchvision's ResNet stem (one 7x7 conv) rather than PyTorch-Encoding's
deep stem (three 3x3 convs).  The authors upsample with ``align_corners=True``; so does this.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.fcn import FCNHead

from bench.models.segmentation._resnet_trunk import ResNetTrunk, check_backbone

JPU_DILATIONS = (1, 2, 4, 8)
STAGES = {"layer2": "c3", "layer3": "c4", "layer4": "c5"}  # the paper's C3, C4, C5 (strides 8, 16, 32)


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    """3x3 conv (no bias) + BN + ReLU: JPU's per-stage projection to its width."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 at ``dilation`` (groups = ``cin``), BN, pointwise 1x1 to ``cout``; no biases (the authors')."""

    def __init__(self, cin: int, cout: int, dilation: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cin, 3, padding=dilation, dilation=dilation, groups=cin, bias=False),
            nn.BatchNorm2d(cin),
            nn.Conv2d(cin, cout, 1, bias=False),
        )


class JPU(nn.Module):
    """``(c3 [B, C3, H, W], c4 [B, C4, H/2, W/2], c5 [B, C5, H/4, W/4]) -> [B, 4 width, H, W]``."""

    def __init__(self, in_channels: tuple[int, int, int], width: int = 512) -> None:
        super().__init__()
        self.conv3, self.conv4, self.conv5 = (conv_bn_relu(c, width) for c in in_channels)
        self.dilations = nn.ModuleList(
            nn.Sequential(SeparableConv(3 * width, width, d), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
            for d in JPU_DILATIONS)
        self.out_channels = len(JPU_DILATIONS) * width

    def forward(self, c3: torch.Tensor, c4: torch.Tensor, c5: torch.Tensor) -> torch.Tensor:
        size = c3.shape[-2:]
        feats = [F.interpolate(self.conv5(c5), size=size, mode="bilinear", align_corners=True),
                 F.interpolate(self.conv4(c4), size=size, mode="bilinear", align_corners=True),
                 self.conv3(c3)]  # the authors' order: C5, C4, C3
        feat = torch.cat(feats, dim=1)
        return torch.cat([branch(feat) for branch in self.dilations], dim=1)


class FastFCN(nn.Module):
    """``x [B, 3, H, W] -> logits [B, num_classes, H, W]`` (H, W any size; the JPU output is at stride 8), or in
    training with ``aux_loss`` ``{"out": logits, "aux": logits of the FCN head on C4}``."""

    def __init__(self, num_classes: int, backbone: str = "resnet50", backbone_width: float = 1.0,
                 jpu_width: int = 512, aux_loss: bool = True, aux_weight: float = 0.2) -> None:
        super().__init__()
        check_backbone(backbone, backbone_width, "fastfcn")
        if jpu_width < 1:
            raise ValueError(f"fastfcn: jpu_width must be >= 1, got {jpu_width}")
        trunk = ResNetTrunk(backbone, backbone_width)  # no dilation: output stride 32
        self.backbone = IntermediateLayerGetter(trunk, return_layers=STAGES)
        self.jpu = JPU(trunk.channels[1:], jpu_width)
        self.head = FCNHead(self.jpu.out_channels, num_classes)
        self.aux_head = FCNHead(trunk.channels[2], num_classes) if aux_loss else None
        self.aux_weight = aux_weight  # the engine's weight of the aux loss
        self.output_stride = 8  # the JPU's map, which the logits are upsampled from (contract test)

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        size = x.shape[-2:]
        feats = self.backbone(x)  # c3 [B, C3, H/8, W/8], c4 [B, C4, H/16, W/16], c5 [B, C5, H/32, W/32]
        logits = self.head(self.jpu(feats["c3"], feats["c4"], feats["c5"]))
        out = F.interpolate(logits, size=size, mode="bilinear", align_corners=True)
        if not self.training or self.aux_head is None:
            return out
        aux = F.interpolate(self.aux_head(feats["c4"]), size=size, mode="bilinear", align_corners=True)
        return {"out": out, "aux": aux}
