"""SSDLite (Sandler et al. 2018, MobileNetV2 Sec. 6.3; Howard et al. 2019, MobileNetV3 Sec. 6.1.2): the guide's
"MobileNet for embedded devices" detector, SSD with depthwise-separable prediction and extra layers on a
MobileNetV3-Large trunk.

torchvision's ``ssdlite320_mobilenet_v3_large`` parts (``SSDLiteFeatureExtractorMobileNet``, ``SSDLiteHead``),
random init, with the SSD loss and knobs of ``_ssd`` (default-box scales, ratios, 3:1 hard negatives).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn


@register_model(
    "ssdlite_mobilenet",
    task="detection",
    source="torchvision",
    paper="Sandler et al. 2018 (arXiv:1801.04381) Sec. 6.3; Howard et al. 2019 (arXiv:1905.02244); "
          "SSD: Liu et al. 2016 (arXiv:1512.02325)",
    description="SSDLite320: MobileNetV3-Large (reduced tail) C4 + C5 + 4 depthwise-separable extra levels, "
                "depthwise-separable heads, 6 default boxes per cell, scales 0.2 ... 0.95, 3:1 hard negatives",
    published_params=3_440_060,
    published_ref="torchvision model table, ssdlite320_mobilenet_v3_large (COCO, 91 classes incl. background)",
    ref_num_classes=90,  # + background = torchvision's 91
    ref_image_size=320,
)
def build_ssdlite_mobilenet(
    num_classes: int,
    image_size: int,
    width_mult: float = 1.0,
    reduced_tail: bool = True,
    s_min: float = 0.2,
    s_max: float = 0.95,
    box_scales: list[float] | None = None,
    aspect_ratios: list[list[float]] | None = None,
    neg_to_pos: float = 3.0,
    iou_thresh: float = 0.5,
    score_thresh: float = 0.001,
    nms_thresh: float = 0.55,
    detections_per_img: int = 300,
    topk_candidates: int = 300,
) -> nn.Module:
    """SSDLite for ``num_classes`` object classes (background added), images resized to ``image_size``
    (320 torchvision's).

    ``width_mult``: MobileNetV3 and extra-layer width (1.0); ``reduced_tail``: halve the last stage's
    channels (MobileNetV3 Table 6, torchvision's choice without a pretrained trunk).  Default boxes: ratios
    ``[2, 3]`` on all six levels unless ``aspect_ratios`` is given, scales ``s_min`` .. ``s_max`` (torchvision's
    0.2 .. 0.95) or ``box_scales`` (7 values).  ``neg_to_pos``, ``iou_thresh`` and the test-time settings as
    in ``ssd300_vgg16`` (torchvision's SSDLite values here).
    """
    from bench.models.detection import _ssd, _ssdlite_mobilenet

    ratios = aspect_ratios or [[2, 3]] * 6
    if len(ratios) != 6:
        raise ValueError(f"ssdlite_mobilenet: the extractor has 6 levels; aspect_ratios has {len(ratios)}")
    boxes = _ssd.default_boxes(ratios, s_min, s_max, box_scales)
    backbone, head = _ssdlite_mobilenet.backbone_and_head(num_classes + 1, boxes.num_anchors_per_location(),
                                                          width_mult, reduced_tail)
    # torchvision's SSDLite maps inputs to [-1, 1]
    return _ssd.ssd_detector(backbone, boxes, head, image_size, num_classes + 1, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5),
                             neg_to_pos=neg_to_pos, iou_thresh=iou_thresh, score_thresh=score_thresh,
                             nms_thresh=nms_thresh, detections_per_img=detections_per_img,
                             topk_candidates=topk_candidates)
