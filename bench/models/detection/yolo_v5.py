"""YOLOv5 (Ultralytics, v6.0+ layout), written here: CSP/C3 backbone, SPPF, PAN neck, Detect head, the v5 loss.

Depth and width multipliers select n/s/m/l/x (``variant``) or any explicit pair; the network is in
``_yolo_v5.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from bench.models import RefVariant, register_model

if TYPE_CHECKING:
    from torch import nn

Variant = Literal["n", "s", "m", "l", "x"]
_SOURCE = "github.com/ultralytics/yolov5 README, pretrained checkpoints table (v6.0+ layout, 640 px, COCO 80 classes)"


@register_model(
    "yolo_v5",
    task="detection",
    source="bench",
    paper="Jocher et al., ultralytics/yolov5 v6.0 (2021, doi:10.5281/zenodo.5563715); no paper",
    description="C3 (CSP) backbone with a 6x6/2 stem and SPPF, PAN neck, 3 scales x 3 anchors, CIoU box loss, "
                "IoU-target objectness BCE, class BCE, wh-ratio anchor matching with 3 cells per GT; variants n-x",
    published_params=7.2e6,
    published_ref=f"YOLOv5s 7.2M: {_SOURCE}",
    ref_num_classes=80,
    ref_image_size=640,
    ref_variants=tuple(RefVariant(v, {"variant": v}, n, f"YOLOv5{v} {n / 1e6:.1f}M: {_SOURCE}")
                       for v, n in (("n", 1.9e6), ("m", 21.2e6), ("l", 46.5e6), ("x", 86.7e6))),
)
def build_yolo_v5(
    num_classes: int,
    image_size: int,
    variant: Variant | None = "s",
    depth_multiple: float | None = None,
    width_multiple: float | None = None,
    anchors: list[tuple[float, float]] | None = None,
    num_anchors: int = 9,
    anchor_t: float = 4.0,
    box_loss: str = "ciou",
    box_gain: float = 0.05,
    obj_gain: float = 1.0,
    cls_gain: float = 0.5,
    obj_balance: tuple[float, float, float] = (4.0, 1.0, 0.4),
    score_thresh: float = 0.001,
    nms_iou: float = 0.6,
    detections_per_img: int = 100,
) -> nn.Module:
    """YOLOv5 for ``num_classes`` classes at a square ``image_size`` input (a multiple of 32).

    ``variant`` n/s/m/l/x gives yolov5{v}.yaml's (depth, width) multipliers; ``depth_multiple`` /
    ``width_multiple`` override either (with ``variant: null`` both are required).  ``anchors``: ``num_anchors``
    (w, h) in input pixels at ``image_size``, 3 per scale, smallest on P3 (the engine fills them by k-means on
    the training boxes); ``None``: v5's COCO anchors scaled by ``image_size / 640``.  Loss (utils/loss.py):
    ``anchor_t`` is the wh-ratio matching threshold, ``box_loss`` the box term (``losses.BOX_LOSSES``), gains
    ``box_gain``, ``obj_gain`` (x (image_size / 640)^2) and ``cls_gain`` (x C / 80), per-scale objectness
    weights ``obj_balance`` (P3, P4, P5).  Decoding: candidates above ``score_thresh`` (v5's val uses 0.001),
    per-class NMS at ``nms_iou`` (v5's val: 0.6), at most ``detections_per_img`` per image.
    """
    from bench.models.detection import _yolo_common, _yolo_v5

    depth, width = _multipliers(variant, depth_multiple, width_multiple)
    if image_size % 32:
        raise ValueError(f"yolo_v5: image_size {image_size} must be a multiple of 32 (the P5 stride); "
                         "set train.image_size or train.image_scale accordingly")
    if num_anchors % 3:
        raise ValueError(f"yolo_v5: num_anchors {num_anchors} must be a multiple of 3 (the same count per scale)")
    published = [(w * image_size / 640, h * image_size / 640) for w, h in _yolo_v5.V5_ANCHORS_640]
    anchors = _yolo_common.resolve_anchors("yolo_v5", anchors, num_anchors, published)
    if len(obj_balance) != 3:
        raise ValueError(f"yolo_v5: obj_balance needs one weight per scale P3, P4, P5, got {obj_balance}")
    return _yolo_v5.YoloV5Detector(
        num_classes, image_size, anchors, depth, width, anchor_t=anchor_t, box_loss_name=box_loss,
        box_gain=box_gain, obj_gain=obj_gain, cls_gain=cls_gain, obj_balance=obj_balance,
        score_thresh=score_thresh, nms_iou=nms_iou, detections_per_img=detections_per_img)


def _multipliers(variant: str | None, depth: float | None, width: float | None) -> tuple[float, float]:
    """(depth, width) from ``variant`` with explicit overrides."""
    from bench.models.detection._yolo_v5 import VARIANTS

    if variant is None:
        if depth is None or width is None:
            raise ValueError("yolo_v5: with variant: null give both depth_multiple and width_multiple")
        return depth, width
    if variant not in VARIANTS:
        raise ValueError(f"yolo_v5: unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    d, w = VARIANTS[variant]
    return (d if depth is None else depth), (w if width is None else width)
