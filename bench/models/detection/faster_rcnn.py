"""Faster R-CNN with FPN (Ren et al., 2015; Lin et al., 2017) from torchvision, random init."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")


@register_model(
    "faster_rcnn",
    task="detection",
    source="torchvision",
    paper="Ren et al. 2015 (arXiv:1506.01497); FPN: Lin et al. 2017 (arXiv:1612.03144)",
    description="RPN (IoU > 0.7 positive, < 0.3 negative, 256 anchors/img, 1:1) + Fast R-CNN head on FPN",
    # Neither paper prints a count for the ResNet-50-FPN variant; torchvision's model table does
    # (fasterrcnn_resnet50_fpn, COCO's 90 categories + background).
    published_params=41_755_286,
    published_ref="torchvision model table, fasterrcnn_resnet50_fpn (papers print no count for R50-FPN)",
    ref_num_classes=90,
    ref_image_size=800,
)
def build_faster_rcnn(
    num_classes: int,
    image_size: int,
    backbone: str = "resnet50",
    norm: str = "bn",
    fpn_channels: int = 256,
    roi_sampling_ratio: int = 2,
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512),
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0),
    representation_size: int = 1024,
    rpn_pre_nms_top_n_train: int = 2000,
    rpn_post_nms_top_n_train: int = 2000,
    rpn_pre_nms_top_n_test: int = 1000,
    rpn_post_nms_top_n_test: int = 1000,
    box_batch_size_per_image: int = 512,
    box_detections_per_img: int = 100,
    box_score_thresh: float = 0.05,
) -> nn.Module:
    """Faster R-CNN + FPN for ``num_classes`` object classes (background is added here).

    ``backbone`` picks the ResNet of the FPN, so the cpu profile can use a light one;
    ``fpn_channels`` (256 in the FPN paper) and ``roi_sampling_ratio`` (RoIAlign samples per bin
    side) are the other cost knobs.  ``norm`` is
    ``bn`` (trainable BatchNorm, needed from random init), ``gn`` or ``frozen_bn`` (the torchvision
    default, only sensible with pretrained weights).  One anchor size per FPN level (P2-P6), each
    with every aspect ratio.  The transform keeps images at ``image_size``: torchvision would
    otherwise upscale them to 800 px.
    """
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    if len(anchor_sizes) != 5:
        raise ValueError(f"faster_rcnn: anchor_sizes needs one size per FPN level (5), got {anchor_sizes}")
    body = resnet_fpn_backbone("faster_rcnn", backbone, norm, fpn_channels)
    anchors = AnchorGenerator(
        sizes=tuple((s,) for s in anchor_sizes), aspect_ratios=(tuple(aspect_ratios),) * len(anchor_sizes)
    )
    resolution = 7
    return FasterRCNN(
        body,
        num_classes=None,
        min_size=image_size,
        max_size=image_size,
        rpn_anchor_generator=anchors,
        box_roi_pool=MultiScaleRoIAlign(["0", "1", "2", "3"], output_size=resolution,
                                        sampling_ratio=roi_sampling_ratio),
        rpn_pre_nms_top_n_train=rpn_pre_nms_top_n_train,
        rpn_post_nms_top_n_train=rpn_post_nms_top_n_train,
        rpn_pre_nms_top_n_test=rpn_pre_nms_top_n_test,
        rpn_post_nms_top_n_test=rpn_post_nms_top_n_test,
        box_head=TwoMLPHead(body.out_channels * resolution**2, representation_size),
        box_predictor=FastRCNNPredictor(representation_size, num_classes + 1),
        box_batch_size_per_image=box_batch_size_per_image,
        box_detections_per_img=box_detections_per_img,
        box_score_thresh=box_score_thresh,
    )


def resnet_fpn_backbone(model: str, backbone: str, norm: str, fpn_channels: int) -> nn.Module:
    """A random-init ResNet (C2..C5) with an FPN on top: ``OrderedDict`` P2..P5 (keys ``"0"``..``"3"``)
    and P6 (``"pool"``, a stride-2 max-pool of P5), each ``[B, fpn_channels, H/2^k, W/2^k]``.

    Shared by the FPN detectors (faster_rcnn, mask_rcnn, panet); ``model`` names the caller in errors.
    ``norm``: ``bn`` (trainable BatchNorm, needed from random init), ``gn`` or ``frozen_bn`` (the
    torchvision default, only sensible with pretrained weights).
    """
    from functools import partial

    from torch import nn
    from torchvision.models import resnet
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.ops import misc
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    if backbone not in BACKBONES:
        raise ValueError(f"{model}: unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    norms = {"bn": nn.BatchNorm2d, "frozen_bn": misc.FrozenBatchNorm2d, "gn": partial(nn.GroupNorm, 32)}
    if norm not in norms:
        raise ValueError(f"{model}: unknown norm {norm!r}; choose one of {', '.join(norms)}")
    trunk = getattr(resnet, backbone)(weights=None, norm_layer=norms[norm])
    stage_channels = [trunk.inplanes // 8 * 2**i for i in range(4)]  # C2..C5 widths
    return BackboneWithFPN(
        trunk,
        return_layers={f"layer{i}": str(i - 1) for i in range(1, 5)},
        in_channels_list=stage_channels,
        out_channels=fpn_channels,
        extra_blocks=LastLevelMaxPool(),  # P6 by stride-2 max-pool of P5, as in torchvision
    )
