"""YOLOv3 (Redmon & Farhadi 2018): Darknet-53, three scales with upsample + concat, 9 anchors (3 per scale),
logistic objectness and independent logistic class scores (BCE).  Written here (``_yolo_v3.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn

# darknet's yolov3.cfg at 416 px, 80 classes, counted layer by layer: Darknet-53's 52 convolutions (no bias, BN
# gamma + beta) 40,584,928 + the neck's 20 convolutions 20,906,496 + three 1x1 prediction convolutions with bias
# (256, 512, 1024 -> 255: 65,535 + 130,815 + 261,375) = 61,949,149 (the figure).
YOLOV3_416_PARAMS = 61_949_149


@register_model(
    "yolo_v3",
    task="detection",
    source="bench",
    paper="Redmon & Farhadi 2018, YOLOv3: An Incremental Improvement (arXiv:1804.02767); darknet yolov3.cfg",
    description="Darknet-53 + upsample/concat neck, predictions at strides 8/16/32 with 3 anchors each "
                "(N x N x [3 (4 + 1 + C)]), best-anchor assignment, ignore 0.5, BCE objectness and classes, "
                "per-class NMS",
    published_params=YOLOV3_416_PARAMS,
    published_ref="issue 12's table: YOLOv3-416, 80 classes (darknet yolov3.cfg, counted layer by layer in "
                  "bench/models/detection/yolo_v3.py)",
    ref_num_classes=80,
    ref_image_size=416,
)
def build_yolo_v3(
    num_classes: int,
    image_size: int,
    anchors: list[tuple[float, float]] | None = None,
    num_anchors: int = 9,
    width: float = 1.0,
    depth: float = 1.0,
    box_loss: str = "mse",
    box_weight: float = 1.0,
    obj_weight: float = 1.0,
    cls_weight: float = 1.0,
    ignore_thresh: float = 0.5,
    score_thresh: float = 0.001,
    nms_iou: float = 0.45,
    detections_per_img: int = 100,
) -> nn.Module:
    """YOLOv3 for ``num_classes`` classes at a square ``image_size`` input (a multiple of 32).

    ``anchors``: ``num_anchors`` (w, h) in input px at ``image_size`` (the engine's k-means on the training
    boxes); None: yolov3.cfg's COCO anchors scaled by ``image_size / 416``.  ``width`` / ``depth`` multiply
    Darknet-53's and the neck's channels and the residual blocks per stage (1.0: the paper).  ``box_loss``:
    ``mse`` (the paper's), ``bce`` (darknet's effective x, y term), ``giou`` or ``ciou``; the three terms'
    weights; ``ignore_thresh`` (no no-object penalty above this IoU with a ground truth); decoding:
    ``score_thresh`` on objectness x class score (0.001, YOLOv5's evaluation threshold: an untrained model scores
    ~0.01 x 0.5, its objectness prior times an undecided class, and must still return boxes), per-class NMS at
    ``nms_iou``, ``detections_per_img``.
    """
    from bench.models.detection import _yolo_common, _yolo_v3

    anchors = _yolo_common.resolve_anchors("yolo_v3", anchors, num_anchors, _yolo_v3.default_anchors(image_size))
    features = _yolo_v3.YoloV3Features(width, depth)
    return _yolo_v3.YoloV3Detector(
        features, features.out_channels, num_classes, [tuple(a) for a in anchors], image_size,
        box_loss=box_loss, box_weight=box_weight, obj_weight=obj_weight, cls_weight=cls_weight,
        ignore_thresh=ignore_thresh, score_thresh=score_thresh, nms_iou=nms_iou,
        detections_per_img=detections_per_img)
