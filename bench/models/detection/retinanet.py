"""RetinaNet (Lin et al. 2017): a ResNet-FPN (P3-P7), 9 anchors per location, two shared subnets and the
α-balanced focal loss.  torchvision's ``RetinaNet`` (matching, encoding, decoding), random init; the losses
come from bench's losses module with α, γ and the smooth-L1 β configurable (``_retinanet``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn

# The paper's anchors (Sec. 4, "Anchors"): areas 32² .. 512² on P3 .. P7, at scales 2^0, 2^(1/3), 2^(2/3)
# and ratios 1:2, 1:1, 2:1 -> 9 per location.
ANCHOR_BASE_SIZES = (32, 64, 128, 256, 512)
ANCHOR_SCALES = (1.0, 2 ** (1 / 3), 2 ** (2 / 3))
ANCHOR_RATIOS = (0.5, 1.0, 2.0)


@register_model(
    "retinanet",
    task="detection",
    source="torchvision",
    paper="Lin et al. 2017 (arXiv:1708.02002)",
    description="ResNet + FPN P3-P7, 9 anchors per level (scales 2^0, 2^(1/3), 2^(2/3) x ratios 1/2, 1, 2), "
                "α-balanced focal loss (α 0.25, γ 2), IoU >= 0.5 positive, < 0.4 negative, smooth L1",
    published_params=34_014_999,
    published_ref="torchvision model table, retinanet_resnet50_fpn (COCO, 91 classes incl. background)",
    ref_num_classes=91,  # torchvision's 91 outputs (COCO's category ids 0..90); ours has no background output
    ref_image_size=800,
)
def build_retinanet(
    num_classes: int,
    image_size: int,
    backbone: str = "resnet50",
    norm: str = "bn",
    fpn_channels: int = 256,
    head_norm: str = "none",
    anchor_base_sizes: list[float] | None = None,
    anchor_scales: list[float] | None = None,
    aspect_ratios: list[float] | None = None,
    focal_alpha: float = 0.25,
    focal_gamma: float = 2.0,
    prior_probability: float = 0.01,
    box_beta: float = 0.11,
    fg_iou_thresh: float = 0.5,
    bg_iou_thresh: float = 0.4,
    score_thresh: float = 0.05,
    nms_thresh: float = 0.5,
    detections_per_img: int = 300,
    topk_candidates: int = 1000,
) -> nn.Module:
    """RetinaNet for ``num_classes`` object classes: ``K`` sigmoid outputs per anchor (the paper's ``KA``
    per location; torchvision's COCO model has 91, one per category id 0..90), images kept at ``image_size``.

    ``backbone`` (resnet18 .. resnet101) with ``norm`` ``bn`` (trainable: random init), ``gn`` or
    ``frozen_bn``; ``fpn_channels`` (256); ``head_norm`` ``none`` (the paper) or ``gn`` (GroupNorm in the
    subnets, torchvision's v2).  Anchors: ``anchor_base_sizes`` on P3..P7 (32 .. 512) times each of
    ``anchor_scales`` (2^0, 2^(1/3), 2^(2/3)) at each of ``aspect_ratios`` (1/2, 1, 2).  Loss: focal
    ``focal_alpha`` (0.25), ``focal_gamma`` (2) with the classifier's prior ``prior_probability`` (0.01);
    smooth L1 ``box_beta`` (0.11).  Anchors with IoU >= ``fg_iou_thresh`` are positive, < ``bg_iou_thresh``
    negative, between ignored (and each GT's best anchor positive).  Test: ``topk_candidates`` per level
    above ``score_thresh``, per-class NMS ``nms_thresh``, ``detections_per_img`` kept (torchvision's values).
    """
    from bench.models.detection import _retinanet, _rpn

    if not 0 < bg_iou_thresh <= fg_iou_thresh <= 1:
        raise ValueError(f"retinanet: need 0 < bg_iou_thresh <= fg_iou_thresh <= 1, got {bg_iou_thresh}, "
                         f"{fg_iou_thresh}")
    base = tuple(anchor_base_sizes or ANCHOR_BASE_SIZES)
    if len(base) != 5:
        raise ValueError(f"retinanet: one anchor base size per level P3-P7 (5), got {list(base)}")
    body = _retinanet.fpn_p3_p7(_rpn.resnet_trunk("retinanet", backbone, norm), fpn_channels)
    anchors = _retinanet.anchors(base, anchor_scales or ANCHOR_SCALES, aspect_ratios or ANCHOR_RATIOS)
    head = _retinanet.FocalHead(fpn_channels, anchors.num_anchors_per_location()[0], num_classes,
                                prior_probability=prior_probability, alpha=focal_alpha, gamma=focal_gamma,
                                beta=box_beta, head_norm=head_norm)
    return _retinanet.FocalRetinaNet(
        body, num_classes, min_size=image_size, max_size=image_size, image_mean=list(_rpn.IMAGENET_MEAN),
        image_std=list(_rpn.IMAGENET_STD), anchor_generator=anchors, head=head, score_thresh=score_thresh,
        nms_thresh=nms_thresh, detections_per_img=detections_per_img, fg_iou_thresh=fg_iou_thresh,
        bg_iou_thresh=bg_iou_thresh, topk_candidates=topk_candidates)
