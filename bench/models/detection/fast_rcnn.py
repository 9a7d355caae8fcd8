"""Fast R-CNN (Girshick, 2015): one backbone pass, selective-search RoIs max-pooled to 7 x 7."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.engine.proposals import ProposalSettings
from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn

# Layer-by-layer count at the reference configuration (VGG16, PASCAL VOC, K = 20): VGG-16's
# 138,357,544 parameters (torchvision's table; Simonyan & Zisserman's configuration D) less fc8
# (4096 x 1000 + 1000 = 4,097,000), plus the (K + 1)-way classifier (4096 x 21 + 21 = 86,037) and
# the per-class box regressor (4096 x 84 + 84 = 344,148): 134,690,729.  fc6 keeps its 25,088 x 4096
# weights: RoI pooling to 7 x 7 x 512 feeds it exactly as pool5 did.  The paper prints no count.
VGG16_VOC_PARAMS = 138_357_544 - 4_097_000 + 86_037 + 344_148


@register_model(
    "fast_rcnn",
    task="detection",
    source="bench",
    paper="Girshick 2015, Fast R-CNN (arXiv:1504.08083)",
    description="selective search RoIs, one stride-16 backbone pass, 7x7 RoI max-pool, fc6/fc7, softmax + "
                "per-class box regression; 2 img x 64 RoIs, 25% fg (IoU >= 0.5), bg IoU [0.1, 0.5)",
    published_params=VGG16_VOC_PARAMS,
    published_ref="layer-by-layer count, VGG16 Fast R-CNN for VOC (K=20): VGG-16's 138,357,544 (torchvision "
                  "table) - fc8 4,097,000 + cls 86,037 + bbox 344,148 = 134,690,729 (the paper prints no count)",
    ref_num_classes=20,
    ref_image_size=600,
)
def build_fast_rcnn(
    num_classes: int,
    image_size: int,
    backbone: str = "vgg16",
    roi_size: int = 7,
    fc_width: int = 4096,
    dropout: float = 0.5,
    max_size: int | None = None,
    rois_per_image: int = 64,
    fg_fraction: float = 0.25,
    fg_iou: float = 0.5,
    bg_iou_low: float = 0.1,
    bg_iou_high: float = 0.5,
    score_thresh: float = 0.05,
    nms_thresh: float = 0.3,
    detections_per_img: int = 100,
    proposals: ProposalSettings = ProposalSettings(),  # noqa: B008 - frozen, immutable
) -> nn.Module:
    """Fast R-CNN for ``num_classes`` object classes (background is added here).

    ``backbone``: ``vgg16`` (the paper's large model, conv5_3 at stride 16) or a lighter stride-16
    trunk (``alexnet``, ``resnet18/34/50`` up to conv4_x) for the cpu profile; ``fc_width`` is fc6
    and fc7's width (4096 in the paper); ``roi_size`` the RoI pooling grid (7 for VGG16).  Images are
    scaled so the shorter side is ``image_size`` (600 in the paper) and the longer at most
    ``max_size`` (default ``image_size`` x 1000/600, the paper's ratio).  Training samples
    ``rois_per_image`` RoIs per image (64, with 2 images per mini-batch), ``fg_fraction`` of them
    foreground (IoU >= ``fg_iou``), the rest background with IoU in [``bg_iou_low``,
    ``bg_iou_high``); test applies per-class NMS at ``nms_thresh`` (0.3 in the reference code).
    ``proposals``: selective-search settings (``bench.engine.proposals.ProposalSettings``).
    """
    from bench.models.detection._pooled import STRIDE, RegionHead, RoIMaxPool, pooled_detector, stride16_backbone

    trunk, channels = stride16_backbone(backbone)
    return pooled_detector(
        trunk, RoIMaxPool(roi_size, STRIDE), RegionHead(channels * roi_size**2, fc_width, num_classes, dropout),
        image_size=image_size, max_size=max_size, proposals=proposals, rois_per_image=rois_per_image,
        fg_fraction=fg_fraction, fg_iou=fg_iou, bg_iou_low=bg_iou_low, bg_iou_high=bg_iou_high,
        score_thresh=score_thresh, nms_thresh=nms_thresh, detections_per_img=detections_per_img,
    )
