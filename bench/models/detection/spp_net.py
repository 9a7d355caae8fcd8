"""SPP-net for detection (He et al., 2014): one backbone pass, spatial pyramid pooling of each proposal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.engine.proposals import ProposalSettings
from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn


@register_model(
    "spp_net",
    task="detection",
    source="bench",
    paper="He et al. 2014, Spatial Pyramid Pooling in Deep Convolutional Networks (arXiv:1406.4729)",
    description="selective search windows, conv5 once per image, 4-level pyramid {6,3,2,1} (window ceil(a/n), "
                "stride floor(a/n)) -> fc6/fc7 -> softmax + per-class box regression",
    published_ref="none published: the paper prints no parameter count for its ZF-5 SPP detector, and ZF-5 is "
                  "not in torchvision (AlexNet's conv1-5 stands in, see the builder)",
    ref_num_classes=20,
    ref_image_size=688,
)
def build_spp_net(
    num_classes: int,
    image_size: int,
    backbone: str = "alexnet",
    levels: tuple[int, ...] = (6, 3, 2, 1),
    fc_width: int = 4096,
    dropout: float = 0.5,
    max_size: int | None = None,
    rois_per_image: int = 128,
    fg_fraction: float = 0.25,
    fg_iou: float = 0.5,
    bg_iou_low: float = 0.1,
    bg_iou_high: float = 0.5,
    score_thresh: float = 0.05,
    nms_thresh: float = 0.3,
    detections_per_img: int = 100,
    proposals: ProposalSettings = ProposalSettings(),  # noqa: B008 - frozen, immutable
) -> nn.Module:
    """SPP-net detector for ``num_classes`` object classes (background is added here).

    The paper's detector: ZF-5's conv5 (256 channels, stride 16) computed once on the whole image,
    each selective-search window projected onto it and pooled by a 4-level pyramid {6x6, 3x3, 2x2,
    1x1} (50 bins, a 12,800-d vector), then fc6, fc7 (4096).  Here ``backbone`` ``alexnet`` is
    torchvision's AlexNet conv1-conv5 (the 5-conv, 256-channel layout ZF-5 refines; ZF-5 itself is
    not in torchvision); ``resnet18/34/50`` (up to conv4_x) or ``vgg16`` are other stride-16 trunks.
    ``levels``: the pyramid (``(4, 2, 1)`` is the other configuration the catalog names).  Images
    are scaled so the shorter side is ``image_size`` (the paper: 688 in single-scale testing).
    The classifier is a (K + 1)-way softmax with a per-class box regressor on fc7, trained end to
    end with the backbone (we start from random weights; the paper fine-tunes fc layers of an
    ImageNet model and trains SVMs on fc7).  Sampling: ``rois_per_image`` per image (128: with 2
    images, the paper's mini-batch of 256 windows), ``fg_fraction`` 25% (its 1:3 positive:negative
    ratio) with IoU >= ``fg_iou``, negatives IoU in [``bg_iou_low``, ``bg_iou_high``).
    ``proposals``: selective-search settings (``bench.engine.proposals.ProposalSettings``).
    """
    from bench.models.detection._pooled import STRIDE, RegionHead, pooled_detector, stride16_backbone
    from bench.models.detection._spp import SpatialPyramidPool

    if not levels or any(n < 1 for n in levels):
        raise ValueError(f"spp_net: levels must be positive bin counts, got {levels}")
    trunk, channels = stride16_backbone(backbone)
    features = channels * sum(n * n for n in levels)
    return pooled_detector(
        trunk, SpatialPyramidPool(levels, STRIDE), RegionHead(features, fc_width, num_classes, dropout),
        image_size=image_size, max_size=max_size, proposals=proposals, rois_per_image=rois_per_image,
        fg_fraction=fg_fraction, fg_iou=fg_iou, bg_iou_low=bg_iou_low, bg_iou_high=bg_iou_high,
        score_thresh=score_thresh, nms_thresh=nms_thresh, detections_per_img=detections_per_img,
    )
