"""YOLOv4 (Bochkovskiy, Wang & Liao 2020): CSPDarknet53 (Mish) + SPP + PANet neck (leaky), the YOLOv3 head with
the CIoU box loss.  Written here: the network body in ``_yolo_v4.py``, the v3 head in ``_yolo_v3.py``; mosaic
(the paper's new augmentation) is the engine's ``train.augment: [mosaic, ...]``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn

# darknet's yolov4.cfg at 416 px, 80 classes, counted layer by layer (convs without bias, BN gamma + beta):
# CSPDarknet53's 72 convolutions 26,617,184 + SPP/PANet neck and the three 3x3 convs before the predictions
# 37,288,192 = 63,905,376, + three 1x1 prediction convs with bias (256, 512, 1024 -> 255: 65,535 + 130,815 +
# 261,375 = 457,725) = 64,363,101 (the figure; bench/models/detection/_yolo_v4.py builds exactly this).
YOLOV4_416_PARAMS = 64_363_101


@register_model(
    "yolo_v4",
    task="detection",
    source="bench",
    paper="Bochkovskiy, Wang & Liao 2020, YOLOv4: Optimal Speed and Accuracy of Object Detection "
          "(arXiv:2004.10934); darknet yolov4.cfg",
    description="CSPDarknet53 (Mish) + SPP (5/9/13) + PANet neck (leaky), the YOLOv3 head (3 anchors at each of "
                "strides 8/16/32, best-anchor assignment, BCE objectness and classes) with the CIoU box loss, "
                "per-class NMS; mosaic via train.augment",
    published_params=YOLOV4_416_PARAMS,
    published_ref="issue 12's table: YOLOv4-416, 80 classes (darknet yolov4.cfg, counted layer by layer in "
                  "bench/models/detection/yolo_v4.py)",
    ref_num_classes=80,
    ref_image_size=416,
)
def build_yolo_v4(
    num_classes: int,
    image_size: int,
    anchors: list[tuple[float, float]] | None = None,
    num_anchors: int = 9,
    width: float = 1.0,
    depth: float = 1.0,
    box_loss: str = "ciou",
    box_weight: float = 1.0,
    obj_weight: float = 1.0,
    cls_weight: float = 1.0,
    ignore_thresh: float = 0.5,
    score_thresh: float = 0.001,
    nms_iou: float = 0.45,
    detections_per_img: int = 100,
) -> nn.Module:
    """YOLOv4 for ``num_classes`` classes at a square ``image_size`` input (a multiple of 32).

    ``anchors``: ``num_anchors`` (w, h) in input px at ``image_size`` (the engine's k-means on the training
    boxes); None: yolov4.cfg's COCO anchors, given for its 608 px input, scaled by ``image_size / 608``.
    ``width`` / ``depth`` multiply every channel count and CSPDarknet53's residual blocks per stage (1.0:
    yolov4.cfg).  The rest configure the v3 head (``YoloV3Detector``): ``box_loss`` ``ciou`` (the paper's bag
    of freebies; ``mse``, ``bce``, ``giou`` also), the three terms' weights, ``ignore_thresh`` (no no-object
    penalty above this IoU with a ground truth), and decoding: ``score_thresh`` on objectness x class score
    (0.001, as for v3: an untrained head at its 0.01 objectness prior must still return boxes), per-class NMS
    at ``nms_iou``, ``detections_per_img``.
    """
    from bench.models.detection import _yolo_common, _yolo_v3, _yolo_v4

    anchors = _yolo_common.resolve_anchors("yolo_v4", anchors, num_anchors, _yolo_v4.default_anchors(image_size))
    features = _yolo_v4.YoloV4Features(width, depth)
    return _yolo_v3.YoloV3Detector(
        features, features.out_channels, num_classes, [tuple(a) for a in anchors], image_size,
        box_loss=box_loss, box_weight=box_weight, obj_weight=obj_weight, cls_weight=cls_weight,
        ignore_thresh=ignore_thresh, score_thresh=score_thresh, nms_iou=nms_iou,
        detections_per_img=detections_per_img)
