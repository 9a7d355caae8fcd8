"""DeepLab v3 (Chen et al. 2017, arXiv:1706.05587) as torchvision builds it, with the engine's output contract.

torchvision's ``DeepLabV3`` (``torchvision.models.segmentation``):

* a ResNet whose layer3 and layer4 are dilated (2, 4) instead of strided: output stride 8 (Sec. 3.2);
* ``DeepLabHead``: ASPP (Sec. 3.3): a 1x1 conv, three 3x3 atrous convs at rates 12, 24, 36 (the paper's
  rates at output stride 8: "(6, 12, 18) ... doubled when output_stride = 8"), and the **image-level pooling
  branch** (global average pooling, 1x1 conv 256, BN, ReLU, bilinearly upsampled: broadcast over the map),
  each 256 channels with BN; concatenated, 1x1 conv 256 + BN + ReLU (+ dropout 0.5); then torchvision adds a
  3x3 conv 256 + BN + ReLU before the final 1x1 classifier;
* optionally (``aux_loss``) torchvision's ``FCNHead`` on layer3 (3x3 conv to 1/4 of the channels, BN, ReLU,
  dropout 0.1, 1x1 to the classes): a training-only auxiliary loss, weighted 0.5 in torchvision's reference
  training script (``references/segmentation/train.py``);
* logits upsampled bilinearly to the input.  No CRF (v3 drops it, Sec. 4).

Differences from the paper, all torchvision's: no Multi-Grid in block4 (the paper's best uses rates
(1, 2, 4) x 4 there); the extra 3x3 conv in the head; the aux head.

``torchvision.models.segmentation.deeplabv3_resnet50/101`` return ``{"out", "aux"}`` in both modes.
``DeepLabV3`` here keeps torchvision's modules (``backbone``, ``classifier``, ``aux_classifier``: the same
state-dict keys, so torchvision's weights would load) and returns ``{"out", "aux"}`` in training (the engine
adds ``aux_weight`` x the aux loss) and the plain ``out`` tensor in eval (the aux head is not run).

Smaller trunks (ResNet-18/34, or scaled widths: the small profiles) are assembled from the same torchvision
parts (``IntermediateLayerGetter``, ``ASPP``, ``FCNHead``) over ``_resnet_trunk.ResNetTrunk``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import segmentation as tvseg
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabHead
from torchvision.models.segmentation.fcn import FCNHead

from bench.models.segmentation._resnet_trunk import ResNetTrunk, check_backbone

OUTPUT_STRIDE = 8
ATROUS_RATES = (12, 24, 36)  # the paper's (6, 12, 18) at output stride 16, doubled at 8 (Sec. 4.2)
TORCHVISION = {"resnet50": tvseg.deeplabv3_resnet50, "resnet101": tvseg.deeplabv3_resnet101}


def deeplab_head(in_channels: int, num_classes: int, channels: int = 256) -> nn.Sequential:
    """torchvision's ``DeepLabHead`` (ASPP, 3x3 conv, BN, ReLU, 1x1 classifier) with ``channels`` in place of
    its fixed 256 (the same modules and indices, so the same state-dict keys)."""
    if channels == 256:
        return DeepLabHead(in_channels, num_classes, ATROUS_RATES)
    return nn.Sequential(
        ASPP(in_channels, ATROUS_RATES, out_channels=channels),
        nn.Conv2d(channels, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.Conv2d(channels, num_classes, 1),
    )


def assemble(num_classes: int, backbone: str, width: float, aux_loss: bool,
             head_channels: int) -> tuple[nn.Module, nn.Module, nn.Module | None]:
    """``(backbone, classifier, aux_classifier)`` from torchvision's parts over a dilated ``ResNetTrunk``."""
    trunk = ResNetTrunk(backbone, width, dilate=(False, True, True))
    layers = {"layer4": "out", **({"layer3": "aux"} if aux_loss else {})}
    body = IntermediateLayerGetter(trunk, return_layers=layers)
    aux = FCNHead(trunk.channels[2], num_classes) if aux_loss else None
    return body, deeplab_head(trunk.channels[3], num_classes, head_channels), aux


class DeepLabV3(nn.Module):
    """``x [B, 3, H, W] -> logits [B, num_classes, H, W]`` (eval) or ``{"out": logits, "aux": aux logits}``
    (training, with ``aux_loss``)."""

    def __init__(self, num_classes: int, backbone: str = "resnet50", backbone_width: float = 1.0,
                 aux_loss: bool = True, aux_weight: float = 0.5, head_channels: int = 256) -> None:
        super().__init__()
        check_backbone(backbone, backbone_width, "deeplab_v3")
        if head_channels < 1:
            raise ValueError(f"deeplab_v3: head_channels must be >= 1, got {head_channels}")
        if backbone in TORCHVISION and backbone_width == 1.0 and head_channels == 256:
            net = TORCHVISION[backbone](weights=None, weights_backbone=None, num_classes=num_classes,
                                        aux_loss=aux_loss)
            parts = net.backbone, net.classifier, net.aux_classifier
        else:
            parts = assemble(num_classes, backbone, backbone_width, aux_loss, head_channels)
        self.backbone, self.classifier, self.aux_classifier = parts
        self.output_stride = OUTPUT_STRIDE  # read by the contract test (what this stride can draw)
        self.aux_weight = aux_weight  # the engine's weight of the aux loss

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        size = x.shape[-2:]
        feats = self.backbone(x)  # {"out": layer4 [B, C4, H/8, W/8], "aux": layer3 [B, C3, H/8, W/8]}
        out = F.interpolate(self.classifier(feats["out"]), size=size, mode="bilinear", align_corners=False)
        if not self.training or self.aux_classifier is None:
            return out
        aux = F.interpolate(self.aux_classifier(feats["aux"]), size=size, mode="bilinear", align_corners=False)
        return {"out": out, "aux": aux}
