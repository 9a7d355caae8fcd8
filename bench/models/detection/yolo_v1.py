"""YOLO v1 (Redmon, Divvala, Girshick & Farhadi, CVPR 2016): one network from pixels to an S x S grid of boxes.

Figure 3's 24 conv layers + 2 fully connected layers (leaky ReLU 0.1, dropout 0.5), an ``S x S x (B * 5 + C)``
output, the sum-squared loss with λ_coord, λ_noobj and square-rooted sizes, class-specific confidence =
objectness x class probability, per-class NMS.  See ``_yolo_v1`` for the layout, targets and loss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn

# Figure 3 counted layer by layer at the paper's configuration (448 px, S = 7, B = 2, C = 20 (PASCAL VOC):
# a 7x7x30 output), conv weights k*k*cin*cout + cout biases (the paper has no BatchNorm):
#   conv1  7x7x3->64      9,408 + 64         conv2  3x3x64->192    110,592 + 192
#   1x1 192->128         24,576 + 128        3x3 128->256          294,912 + 256
#   1x1 256->256         65,536 + 256        3x3 256->512        1,179,648 + 512
#   4 x (1x1 512->256   131,072 + 256;       3x3 256->512        1,179,648 + 512) = 5,245,952
#   1x1 512->512        262,144 + 512        3x3 512->1024       4,718,592 + 1,024
#   2 x (1x1 1024->512  524,288 + 512;       3x3 512->1024       4,718,592 + 1,024) = 10,488,832
#   4 x 3x3 1024->1024 (one of stride 2)  4 x (9,437,184 + 1,024) = 37,752,832
#   -> 24 convs: 60,155,968
#   fc1 7*7*1024 -> 4096: 205,520,896 + 4,096 = 205,524,992
#   fc2 4096 -> 7*7*30 = 1470: 6,021,120 + 1,470 = 6,022,590
#   total 271,703,550 = 271.7M, the figure (with C = 80, fc2 would be 4096 x 7*7*90 and the total 283.7M:
#   the 271.7M is the VOC model, so ref_num_classes = 20).
FIGURE3_COUNT = 271_703_550


@register_model(
    "yolo_v1",
    task="detection",
    source="bench",
    paper="Redmon et al. 2016, You Only Look Once: Unified, Real-Time Object Detection, CVPR (arXiv:1506.02640)",
    description="Figure 3's 24 convs (1x1 reductions, leaky 0.1) + 2 fc, S x S x (B*5 + C) output (S=7, B=2), "
                "sum-squared loss (λ_coord 5, λ_noobj 0.5, sqrt w/h, IoU confidence target), per-class NMS",
    published_params=FIGURE3_COUNT,
    published_ref="counted layer by layer from the paper's Figure 3 at 448 px, S=7, B=2, C=20 (VOC) "
                  "(bench/models/detection/yolo_v1.py); the paper prints no count",
    ref_num_classes=20,
    ref_image_size=448,
)
def build_yolo_v1(
    num_classes: int,
    image_size: int,
    grid_size: int = 7,
    boxes_per_cell: int = 2,
    width: float = 1.0,
    fc_dim: int = 4096,
    norm: str = "none",
    dropout: float = 0.5,
    lambda_coord: float = 5.0,
    lambda_noobj: float = 0.5,
    score_thresh: float = 0.005,
    nms_iou: float = 0.5,
    detections_per_img: int = 100,
) -> nn.Module:
    """YOLO v1 for ``num_classes`` classes on a square ``image_size`` input (the paper: 448).

    ``grid_size`` S and ``boxes_per_cell`` B shape the output ``S x S x (B * 5 + C)``; ``width`` multiplies every
    conv's channels (at least 8) and ``fc_dim`` is the first fc layer (4096): the 271.7M reference is mostly
    fc1 (7*7*1024*4096), so the small profiles shrink both.  ``norm``: ``none`` (the paper) or ``bn``.
    ``dropout`` after fc1 (0.5).  Loss weights ``lambda_coord`` (5) and ``lambda_noobj`` (0.5).  Decoding keeps
    class-specific confidences above ``score_thresh``, per-class NMS at ``nms_iou``, ``detections_per_img``.
    """
    from bench.models.detection._yolo_v1 import YoloV1

    return YoloV1(num_classes, image_size, grid_size=grid_size, boxes_per_cell=boxes_per_cell, width=width,
                  fc_dim=fc_dim, norm=norm, dropout=dropout, lambda_coord=lambda_coord, lambda_noobj=lambda_noobj,
                  score_thresh=score_thresh, nms_iou=nms_iou, detections_per_img=detections_per_img)
