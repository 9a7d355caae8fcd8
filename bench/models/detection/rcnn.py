"""R-CNN (Girshick et al. 2014): selective search, warped regions, CNN features, per-class SVMs, box regression.

The network and the three training stages are in ``_rcnn.py`` (imported by the builder: ``bench list``
does not import torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.engine.proposals import ProposalSettings
from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn

# Layer-by-layer count at the reference configuration (VOC: K = 20, AlexNet, 227 px warps), from
# torchvision's published AlexNet count, 61,100,840: R-CNN drops fc8 (4096 x 1000 + 1000 =
# 4,097,000) and adds the (K+1)-way fine-tuning layer (4096 x 21 + 21 = 86,037), K linear SVMs on
# fc7 (20 x 4097 = 81,940) and K class-specific box regressors on pool5 (20 x 4 x (9216 + 1) =
# 737,360): 57,909,177.  The paper prints no parameter count.
RCNN_ALEXNET_VOC = 61_100_840 - 4_097_000 + 86_037 + 81_940 + 737_360


@register_model(
    "rcnn",
    task="detection",
    source="bench",
    paper="Girshick et al. 2014, Rich feature hierarchies (arXiv:1311.2524)",
    description="selective search -> warped regions (16 px context) -> AlexNet fc7 -> per-class SVMs "
                "(hard negatives) + pool5 box regression; per-class NMS",
    published_params=RCNN_ALEXNET_VOC,
    published_ref="layer-by-layer from torchvision's AlexNet (61,100,840) - fc8 + 21-way fine-tuning layer + "
                  "20 SVMs + 20 box regressors on pool5 (VOC, K = 20); the paper prints no count",
    ref_num_classes=20,
    ref_image_size=227,
)
def build_rcnn(
    num_classes: int,
    image_size: int,
    proposals: ProposalSettings = ProposalSettings(mode="fast", max_proposals=2000),  # noqa: B008 - frozen
    warp_size: int = 227,
    context_padding: int = 16,
    width: float = 1.0,
    fc_dim: int = 4096,
    dropout: float = 0.5,
    fg_iou: float = 0.5,
    regions_per_image: int = 64,
    positive_fraction: float = 0.25,
    svm_neg_iou: float = 0.3,
    svm_mining_pool: int = 2000,
    svm_hard_negatives: int = 32,
    svm_pos_weight: float = 2.0,
    svm_l2: float = 1e-3,
    bbox_iou: float = 0.6,
    bbox_ridge: float = 5e-3,
    feat_norm: float = 20.0,
    nms_iou: float = 0.3,
    score_thresh: float | None = None,
    detections_per_img: int = 100,
) -> nn.Module:
    """R-CNN for ``num_classes`` object classes (the fine-tuning softmax adds background).

    ``proposals``: the selective-search settings (the paper: fast mode, ~2000 per image); the
    detection task computes and caches them and puts them into every target (``bench.engine.proposals``).
    Regions: each proposal is dilated so that ``context_padding`` px of context surround it at the
    warped scale, then warped to ``warp_size`` px (paper: p = 16 at 227); ``image_size`` plays no
    part (the regions are warped, whatever the image size).  CNN: torchvision's AlexNet layer list
    with conv channels times ``width`` and fc6/fc7 of ``fc_dim`` (4096 in the paper), ``dropout``
    before fc6 and fc7.  Fine-tuning: IoU >= ``fg_iou`` positives, ``regions_per_image`` per image
    with ``positive_fraction`` positives at most (the paper: 32 + 96 of 128 per mini-batch).  SVMs
    on fc7: positives the ground-truth boxes (weight ``svm_pos_weight``), negatives IoU <
    ``svm_neg_iou``, the ``svm_hard_negatives`` highest-scoring of ``svm_mining_pool`` proposals per
    image and class, L2 weight ``svm_l2``.  Box regression on pool5 for IoU >= ``bbox_iou``, ridge
    ``bbox_ridge``.  Features scaled to mean norm ``feat_norm`` before both.  Test: every proposal
    scored by the SVMs (margins above ``score_thresh`` kept; None keeps all: a hinge-trained SVM puts
    many true objects below -1, as its positives are the exact ground-truth boxes), per-class greedy
    NMS at IoU ``nms_iou`` (0.3, the paper's code), the ``detections_per_img`` best.
    """
    from bench.models.detection._rcnn import RCNN, RCNNConfig

    if width <= 0:
        raise ValueError(f"rcnn: params.width must be > 0 (a multiplier of AlexNet's conv channels), got {width}")
    return RCNN(RCNNConfig(
        num_classes=num_classes, warp_size=warp_size, context_padding=context_padding, width=width, fc_dim=fc_dim,
        dropout=dropout, fg_iou=fg_iou, regions_per_image=regions_per_image, positive_fraction=positive_fraction,
        svm_neg_iou=svm_neg_iou, svm_mining_pool=svm_mining_pool, svm_hard_negatives=svm_hard_negatives,
        svm_pos_weight=svm_pos_weight, svm_l2=svm_l2, bbox_iou=bbox_iou, bbox_ridge=bbox_ridge, feat_norm=feat_norm,
        nms_iou=nms_iou, score_thresh=score_thresh, detections_per_img=detections_per_img,
    ))
