"""SSD300 (Liu et al. 2016): VGG-16 + six prediction levels, default boxes, hard negative mining.

torchvision's ``SSD`` (matching, encoding, decoding) and ``SSDHead``, random init; the VGG-16 extractor is
torchvision's layout with a width multiplier and optional BatchNorm (``_ssd300_vgg16``), the loss is the
paper's from bench's losses module (``_ssd``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn

# The paper's SSD300: 4 default boxes (ratios 1, 2, 1/2 + the extra square) on conv4_3, conv10_2 and
# conv11_2, 6 (also 3, 1/3) on fc7, conv8_2 and conv9_2: 38²·4 + 19²·6 + 10²·6 + 5²·6 + 3²·4 + 1²·4 = 8732.
SSD300_RATIOS: list[list[float]] = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]


@register_model(
    "ssd300_vgg16",
    task="detection",
    source="torchvision",
    paper="Liu et al. 2016 (arXiv:1512.02325)",
    description="VGG-16 + 6 levels (38,19,10,5,3,1 at 300 px), 4 or 6 default boxes per cell (8732), scales "
                "s_min 0.2 ... s_max 0.9, matching IoU >= 0.5, softmax CE with 3:1 hard negatives + smooth L1",
    published_params=35_641_826,
    published_ref="torchvision model table, ssd300_vgg16 (COCO, 91 classes incl. background)",
    ref_num_classes=90,  # + background = torchvision's 91
    ref_image_size=300,
)
def build_ssd300_vgg16(
    num_classes: int,
    image_size: int,
    width: float = 1.0,
    norm: str = "none",
    s_min: float = 0.2,
    s_max: float = 0.9,
    box_scales: list[float] | None = None,
    aspect_ratios: list[list[float]] | None = None,
    neg_to_pos: float = 3.0,
    iou_thresh: float = 0.5,
    score_thresh: float = 0.01,
    nms_thresh: float = 0.45,
    detections_per_img: int = 200,
    topk_candidates: int = 400,
) -> nn.Module:
    """SSD300 for ``num_classes`` object classes (background added: a (K+1)-way softmax per default box).

    Images are resized to ``image_size`` (300 the paper's).  ``width``: VGG-16 channel multiplier (1: the
    paper); ``norm``: ``none`` (the paper) or ``bn``.  Default boxes: ``aspect_ratios`` per level (default
    :data:`SSD300_RATIOS`), scales by the paper's formula from ``s_min`` / ``s_max`` or explicit
    ``box_scales`` (7 values).  ``neg_to_pos``: mined negatives per positive (3); ``iou_thresh``: a default
    box matching a GT at IoU >= this is positive (0.5).  Test time: ``score_thresh``, per-class NMS at
    ``nms_thresh`` (0.45), ``topk_candidates`` per class, ``detections_per_img`` kept (torchvision's values).
    """
    from torchvision.models.detection.ssd import SSDHead

    from bench.models.detection import _ssd, _ssd300_vgg16
    from bench.models.detection._rpn import IMAGENET_MEAN, IMAGENET_STD

    ratios = aspect_ratios or SSD300_RATIOS
    if len(ratios) != 6:
        raise ValueError(f"ssd300_vgg16: the VGG extractor has 6 levels; aspect_ratios has {len(ratios)}")
    backbone = _ssd300_vgg16.SSDVGG16(image_size, width, norm)
    boxes = _ssd.default_boxes(ratios, s_min, s_max, box_scales)
    head = SSDHead(backbone.out_channels, boxes.num_anchors_per_location(), num_classes + 1)
    # ImageNet statistics on 0..1 inputs: torchvision's Caffe-style 0..255 inputs are for its converted VGG
    # weights, which random init has no use for.
    return _ssd.ssd_detector(backbone, boxes, head, image_size, num_classes + 1, IMAGENET_MEAN, IMAGENET_STD,
                             neg_to_pos=neg_to_pos, iou_thresh=iou_thresh, score_thresh=score_thresh,
                             nms_thresh=nms_thresh, detections_per_img=detections_per_img,
                             topk_candidates=topk_candidates)
