"""YOLOv2 (Redmon & Farhadi 2017, YOLO9000), written here after darknet's ``cfg/yolov2.cfg``: Darknet-19 with
BatchNorm, the passthrough (reorg) layer, 5 k-means anchors, direct location prediction, the region-layer loss
and multi-scale training.  The network is in ``_yolo_v2.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn

# yolov2.cfg (COCO, 416 px) counted layer by layer.  A conv with BN has k x k x c_in x c_out weights and no bias
# (BN's beta is the bias) + BN's gamma and beta (2 c_out; darknet also stores the running mean and variance,
# buffers, not parameters).  Darknet-19's 18 convs: 19,802,976 weights + 14,400 BN; the head's 3x3x1024 convs
# (1024->1024 twice, 1280->1024) and the passthrough's 1x1 512->64: 30,703,616 + 6,272 BN; the linear 1x1
# prediction conv 1024 -> 5 x (5 + 80) = 425 with bias: 435,625.  Sum 50,962,889, the figure; this
# network matches it exactly (tests/models/test_yolo_v2.py).
YOLOV2_COCO_COUNT = 19_802_976 + 14_400 + 30_703_616 + 6_272 + 435_625


@register_model(
    "yolo_v2",
    task="detection",
    source="bench",
    paper="Redmon & Farhadi 2017, YOLO9000: Better, Faster, Stronger (arXiv:1612.08242); darknet cfg/yolov2.cfg",
    description="Darknet-19 (BN, leaky) + passthrough/reorg, 13x13x5 anchors (k-means, 1 - IoU), direct location "
                "prediction, softmax classes, darknet's region loss; multi-scale training at multiples of 32",
    published_params=YOLOV2_COCO_COUNT,
    published_ref="counted from darknet's cfg/yolov2.cfg (COCO, 80 classes, 416 px): conv weights + BN gamma/beta "
                  "+ the 425-way 1x1 prediction conv with bias (bench/models/detection/yolo_v2.py)",
    ref_num_classes=80,
    ref_image_size=416,
)
def build_yolo_v2(
    num_classes: int,
    image_size: int,
    anchors: list[tuple[float, float]] | None = None,
    num_anchors: int = 5,
    width: float = 1.0,
    multiscale: tuple[int, int] | None = None,
    multiscale_every: int = 10,
    object_scale: float = 5.0,
    noobject_scale: float = 1.0,
    coord_scale: float = 1.0,
    class_scale: float = 1.0,
    ignore_thresh: float = 0.6,
    prior_images: int = 12800,
    class_loss: str = "ce",
    score_thresh: float = 0.005,
    nms_iou: float = 0.45,
    detections_per_img: int = 100,
) -> nn.Module:
    """YOLOv2 for ``num_classes`` classes at a square ``image_size`` input (a multiple of 32).

    ``anchors``: ``num_anchors`` (w, h) in input pixels at ``image_size``; the detection task fills them by
    k-means (1 - IoU) on the training boxes; None uses yolov2.cfg's COCO anchors scaled by ``image_size / 416``
    (only for ``num_anchors`` 5).  ``width`` multiplies every conv's channels (1: the paper's network).
    ``multiscale``: ``[min, max]`` input sides (multiples of 32) drawn every ``multiscale_every`` training steps;
    None trains at ``image_size``.  The loss weights are darknet's region-layer settings of yolov2.cfg
    (``object_scale`` 5, ``noobject_scale`` 1, ``coord_scale`` 1, ``class_scale`` 1, ``thresh`` 0.6 as
    ``ignore_thresh``; the anchor-prior term for the first ``prior_images`` images); ``class_loss`` ``ce`` (the
    gradient darknet applies) or ``sum_squared`` (see ``YoloV2.region_loss``).  Decoding: scores
    ``σ(t_o) softmax`` above ``score_thresh``, per-class NMS at ``nms_iou`` (darknet's validation: 0.005, 0.45),
    ``detections_per_img`` kept.
    """
    from bench.models.detection import _yolo_common, _yolo_v2

    anchors = _yolo_common.resolve_anchors("yolo_v2", anchors, num_anchors, _yolo_v2.published_anchors(image_size))
    if width <= 0:
        raise ValueError(f"yolo_v2: width {width} must be positive")
    return _yolo_v2.YoloV2(
        num_classes, image_size, anchors, width=width, multiscale=multiscale, multiscale_every=multiscale_every,
        object_scale=object_scale, noobject_scale=noobject_scale, coord_scale=coord_scale, class_scale=class_scale,
        ignore_thresh=ignore_thresh, prior_images=prior_images, class_loss=class_loss, score_thresh=score_thresh,
        nms_iou=nms_iou, detections_per_img=detections_per_img)
