"""Mask R-CNN assembly on torchvision's ``MaskRCNN`` (He et al. 2017), shared by mask_rcnn and panet.

The two models differ only in the backbone (panet adds a bottom-up path to the FPN) and in the
RoI heads (panet pools every level and fuses); the RPN, the sampling of RoIs, the losses and the
post-processing are torchvision's, as the Mask R-CNN paper specifies them:

* RPN: anchors positive at IoU >= 0.7, negative < 0.3, 256 per image at 1:1;
* box head: 512 RoIs per image, positive at IoU >= 0.5 (25% positives), softmax over K + 1 classes
  and class-specific box regression (smooth L1);
* mask head: RoIAlign (bilinear sampling, no quantisation of the box or the bins) to
  ``mask_size / 2``, 4 x (3x3 conv + ReLU), a 2x2 stride-2 deconvolution, then a 1x1 conv to one
  ``mask_size x mask_size`` mask *per class*; the loss is the average per-pixel sigmoid BCE of the
  positive RoIs' masks *of their ground-truth class only* (``roi_heads.maskrcnn_loss``), so classes
  do not compete for a pixel (the paper's decoupling of masks and classes).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign

from bench.models.detection import _rpn
from bench.models.detection.faster_rcnn import fpn_body

LEVELS = ("0", "1", "2", "3")  # P2..P5: the levels RoIs are pooled from (P6 feeds only the RPN)
BOX_POOL = 7  # RoIAlign output of the box head (Mask R-CNN, FPN variant)
MASK_LOGITS_STD = 0.001


@dataclass
class Heads:
    """The RoI-head modules handed to ``MaskRCNN`` (the names are its keyword arguments)."""

    box_roi_pool: nn.Module
    box_head: nn.Module
    box_predictor: nn.Module
    mask_roi_pool: nn.Module
    mask_head: nn.Module
    mask_predictor: nn.Module


def resnet_fpn(model: str, backbone: str, norm: str, fpn_channels: int) -> nn.Module:
    """faster_rcnn's fpn-neck body: a random-init ResNet (``_rpn.resnet_trunk``) under torchvision's FPN
    (``faster_rcnn.fpn_body``): levels "0".."3" (P2..P5) and "pool" (P6); ``model`` names the caller in errors."""
    return fpn_body(_rpn.resnet_trunk(model, backbone, norm), fpn_channels)


def check_mask_size(model: str, mask_size: int) -> int:
    """The RoIAlign size of the mask head: ``mask_size / 2`` (the deconvolution doubles it)."""
    if mask_size < 2 or mask_size % 2:
        raise ValueError(f"{model}: mask_size must be even (RoIAlign to mask_size/2, then a 2x deconv), "
                         f"got {mask_size}")
    return mask_size // 2


def init_mask_logits(conv: nn.Module) -> None:
    """Draw the last mask layer with std 0.001 and zero bias, as Detectron2's Mask R-CNN head does
    (``MaskRCNNConvUpsampleHead.predictor``): the logits start at ~0, so the mask BCE starts at ln 2.

    torchvision draws it with Kaiming fan-out (std sqrt(2 / (K + 1)) for a 1x1 conv) and a uniform
    bias: logits of several units whose scale depends on K and on the features, i.e. masks that
    start confidently random (measured: initial mask loss 4.1 instead of ln 2 = 0.69 on a ResNet-18
    mask_rcnn with a 64-channel mask head, 3 classes, two 64 px images).
    """
    nn.init.normal_(conv.weight, std=MASK_LOGITS_STD)
    nn.init.zeros_(conv.bias)


def mask_rcnn_heads(channels: int, num_classes: int, representation_size: int, mask_size: int,
                    mask_head_channels: int, sampling_ratio: int) -> Heads:
    """Mask R-CNN's FPN heads: each RoI pooled from the one level its size assigns it to (FPN eq. 1).

    ``channels``: the FPN width; ``num_classes`` includes the background.
    """
    pool = check_mask_size("mask_rcnn", mask_size)
    predictor = MaskRCNNPredictor(mask_head_channels, mask_head_channels, num_classes)
    init_mask_logits(predictor.mask_fcn_logits)
    return Heads(
        box_roi_pool=MultiScaleRoIAlign(list(LEVELS), output_size=BOX_POOL, sampling_ratio=sampling_ratio),
        box_head=TwoMLPHead(channels * BOX_POOL**2, representation_size),
        box_predictor=_rpn.box_predictor(representation_size, num_classes),
        mask_roi_pool=MultiScaleRoIAlign(list(LEVELS), output_size=pool, sampling_ratio=sampling_ratio),
        mask_head=MaskRCNNHeads(channels, (mask_head_channels,) * 4, dilation=1),
        mask_predictor=predictor,
    )


def assemble(body: nn.Module, heads: Heads, image_size: int, anchor_sizes: tuple[int, ...],
             aspect_ratios: tuple[float, ...], **rcnn: int | float) -> MaskRCNN:
    """torchvision's ``MaskRCNN`` on ``body`` (an ``OrderedDict`` of levels "0".."3" + "pool") with ``heads``.

    One anchor size per level (P2-P6), each with every aspect ratio.  The transform keeps images at
    ``image_size`` (torchvision would upscale them to 800 px).  ``rcnn``: the ``rpn_*``/``box_*``
    keyword arguments of ``MaskRCNN`` (proposal counts, RoIs per image, detections per image).
    """
    anchors = AnchorGenerator(
        sizes=tuple((s,) for s in anchor_sizes), aspect_ratios=(tuple(aspect_ratios),) * len(anchor_sizes)
    )
    return MaskRCNN(body, num_classes=None, min_size=image_size, max_size=image_size,
                    rpn_anchor_generator=anchors, **vars(heads), **rcnn)
