"""Faster R-CNN (Ren et al., 2015): an RPN on a stride-16 map + the Fast R-CNN head, torchvision parts, random init.

Two necks: ``c4`` (the reference: the paper's single stride-16 map; with a ResNet, He et al. 2016's form, RPN
and RoI pooling on res4 and res5 as the per-RoI head) and ``fpn`` (Lin et al. 2017, torchvision's
``fasterrcnn_resnet50_fpn`` layout, kept as an option).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import RefVariant, register_model

if TYPE_CHECKING:
    from collections.abc import Sequence

    from torch import nn
    from torchvision.models.resnet import ResNet

# The C4 reference has no printed count (the papers give none for Faster R-CNN with ResNet-101), so the figure
# is built from one that is printed: torchvision's ResNet-101 (44,549,160) less its 1000-way fc (2,049,000) is the
# trunk conv1..res5 = 42,500,160; + the RPN (3x3 conv 1024->512: 4,719,104; 9 objectness logits: 4,617; 36 box
# deltas: 18,468) + the (K+1)-way classifier (2048 x 91 + 91 = 186,459) and per-class box layer (2048 x 364 + 364 =
# 745,836) on res5's 2048-d output, K + 1 = 91 as torchvision counts COCO.
C4_R101_COUNT = 42_500_160 + 4_719_104 + 4_617 + 18_468 + 186_459 + 745_836  # 48,174,644


@register_model(
    "faster_rcnn",
    task="detection",
    source="torchvision",
    paper="Ren et al. 2015 (arXiv:1506.01497); ResNet C4: He et al. 2016 (arXiv:1512.03385); "
          "FPN option: Lin et al. 2017 (arXiv:1612.03144)",
    description="RPN on one stride-16 map (9 anchors, IoU > 0.7 / < 0.3, 256 anchors/img 1:1, NMS 0.7) + Fast R-CNN "
                "head (RoI pooling, (K+1) softmax, per-class smooth L1); neck c4 (reference) or fpn",
    published_params=C4_R101_COUNT,
    published_ref="ResNet-101 C4, COCO: torchvision's published ResNet-101 count less its fc, plus the RPN and "
                  "Fast R-CNN layers counted layer by layer (bench/models/detection/faster_rcnn.py; papers print none)",
    ref_num_classes=90,
    ref_image_size=600,  # the paper's shorter side
    ref_variants=(RefVariant(
        "fpn", {"neck": "fpn", "backbone": "resnet50"}, 41_755_286,
        "torchvision model table, fasterrcnn_resnet50_fpn (papers print no count for R50-FPN)", image_size=800),),
)
def build_faster_rcnn(
    num_classes: int,
    image_size: int,
    neck: str = "c4",
    backbone: str = "resnet101",
    norm: str = "bn",
    anchor_sizes: tuple[int, ...] | None = None,
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0),
    rpn_channels: int | None = None,
    roi_op: str | None = None,
    roi_output_size: int | None = None,
    roi_sampling_ratio: int = 2,
    fpn_channels: int = 256,
    representation_size: int = 1024,
    rpn_pre_nms_top_n_train: int = 12000,
    rpn_post_nms_top_n_train: int = 2000,
    rpn_pre_nms_top_n_test: int = 6000,
    rpn_post_nms_top_n_test: int = 300,
    box_batch_size_per_image: int = 128,
    box_detections_per_img: int = 100,
    box_score_thresh: float = 0.05,
) -> nn.Module:
    """Faster R-CNN for ``num_classes`` object classes (background is added here).

    ``neck``: ``c4`` (reference) puts the RPN and the RoI pooling on res4 (stride 16) and runs res5 on each
    RoI (``roi_output_size`` 14 -> 7x7 after res5's stride 2); ``fpn`` puts both on P2-P6 with
    MultiScaleRoIAlign and a two-fc head (``fpn_channels``, ``representation_size``: fpn only).
    Defaults that depend on the neck (``None``): ``anchor_sizes`` (128, 256, 512) on the one c4 map, every
    size with every ``aspect_ratios`` (3 x 3 = 9 anchors), or (32, 64, 128, 256, 512), one per FPN level;
    ``rpn_channels`` (the RPN's 3x3 conv width) 512 as for VGG in the paper, ``fpn_channels`` with fpn;
    ``roi_op`` ``pool`` (Fast R-CNN's RoI max pooling) with c4, ``align`` with fpn; ``roi_output_size`` 14 / 7.
    Proposal counts default to the paper's code (12000 -> NMS -> 2000 training, 6000 -> 300 testing;
    torchvision's FPN uses 2000/2000/1000/1000 per level), 128 RoIs per image for the head, 25% foreground.
    ``norm``: ``bn`` (trainable, needed from random init), ``gn`` or ``frozen_bn``.  Images stay at
    ``image_size``.
    """
    from bench.models.detection import _rpn

    if neck not in ("c4", "fpn"):
        raise ValueError(f"faster_rcnn: unknown neck {neck!r}; choose c4 (the paper's one stride-16 map) or fpn")
    trunk = _rpn.resnet_trunk("faster_rcnn", backbone, norm)
    top_n = {"pre_train": rpn_pre_nms_top_n_train, "post_train": rpn_post_nms_top_n_train,
             "pre_test": rpn_pre_nms_top_n_test, "post_test": rpn_post_nms_top_n_test}
    if neck == "c4":
        if (fpn_channels, representation_size) != (256, 1024):
            raise ValueError("faster_rcnn: fpn_channels and representation_size apply to neck: fpn only "
                             "(c4's per-RoI head is res5); remove them from the config or set neck: fpn")
        backbone_net, rpn, pool, head, width = _c4_parts(trunk, anchor_sizes, aspect_ratios, rpn_channels, roi_op,
                                                         roi_output_size, roi_sampling_ratio, top_n)
    else:
        backbone_net, rpn, pool, head, width = _fpn_parts(trunk, anchor_sizes, aspect_ratios, rpn_channels, roi_op,
                                                          roi_output_size, roi_sampling_ratio, top_n, fpn_channels,
                                                          representation_size)
    heads = _rpn.roi_heads(pool, head, _rpn.box_predictor(width, num_classes + 1), box_batch_size_per_image,
                           box_score_thresh, box_detections_per_img)
    return _rpn.two_stage_detector(backbone_net, rpn, heads, image_size)


Parts = tuple["nn.Module", "nn.Module", "nn.Module", "nn.Module", int]


def _c4_parts(trunk: ResNet, anchor_sizes: Sequence[int] | None, aspect_ratios: Sequence[float],
              rpn_channels: int | None, roi_op: str | None, roi_output_size: int | None, sampling_ratio: int,
              top_n: dict[str, int]) -> Parts:
    """(res4 body, RPN on res4, RoI pooling on res4, res5 head, head width) of the C4 form."""
    from bench.models.detection import _rpn

    body = _rpn.C4Body(trunk)
    rpn = _rpn.region_proposal_network(body.out_channels, rpn_channels or 512, anchor_sizes or (128, 256, 512),
                                       aspect_ratios, top_n)
    pool = _rpn.SingleMapRoIPool("res4", roi_output_size or 14, _rpn.C4_STRIDE, roi_op or "pool", sampling_ratio)
    return body, rpn, pool, _rpn.Res5Head(trunk.layer4), _rpn.stage_channels(trunk)[3]


def _fpn_parts(trunk: ResNet, anchor_sizes: Sequence[int] | None, aspect_ratios: Sequence[float],
               rpn_channels: int | None, roi_op: str | None, roi_output_size: int | None, sampling_ratio: int,
               top_n: dict[str, int], fpn_channels: int, representation_size: int) -> Parts:
    """(ResNet-FPN body, RPN on P2-P6, MultiScaleRoIAlign on P2-P5, two-fc head, head width), torchvision's layout."""
    from torchvision.models.detection.faster_rcnn import TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    from bench.models.detection import _rpn

    sizes = anchor_sizes or (32, 64, 128, 256, 512)
    if len(sizes) != 5:
        raise ValueError(f"faster_rcnn: neck fpn needs one anchor size per level P2-P6 (5), got {sizes}")
    if roi_op not in (None, "align"):
        raise ValueError(f"faster_rcnn: neck fpn pools with MultiScaleRoIAlign; roi_op {roi_op!r} needs neck: c4")
    body = fpn_body(trunk, fpn_channels)
    rpn = _rpn.region_proposal_network(fpn_channels, rpn_channels or fpn_channels, [(s,) for s in sizes],
                                       aspect_ratios, top_n)
    resolution = roi_output_size or 7
    pool = MultiScaleRoIAlign(["0", "1", "2", "3"], output_size=resolution, sampling_ratio=sampling_ratio)
    return body, rpn, pool, TwoMLPHead(fpn_channels * resolution**2, representation_size), representation_size


def fpn_body(trunk: ResNet, fpn_channels: int) -> nn.Module:
    """torchvision's ``BackboneWithFPN`` on ``trunk``: ``OrderedDict`` P2..P5 (keys "0".."3") and P6 ("pool"),
    each ``[B, fpn_channels, H/2^k, W/2^k]``.  Shared by the FPN detectors (faster_rcnn's fpn neck, mask_rcnn,
    panet)."""
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    from bench.models.detection import _rpn

    return BackboneWithFPN(
        trunk,
        return_layers={f"layer{i}": str(i - 1) for i in range(1, 5)},
        in_channels_list=_rpn.stage_channels(trunk),
        out_channels=fpn_channels,
        extra_blocks=LastLevelMaxPool(),  # P6 by stride-2 max-pool of P5, as in torchvision
    )
