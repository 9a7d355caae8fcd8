"""Mask R-CNN (He et al. 2017) with FPN, from torchvision, random init."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn


@register_model(
    "mask_rcnn",
    task="instance_segmentation",
    source="torchvision",
    paper="He et al. 2017 (arXiv:1703.06870); FPN: Lin et al. 2017 (arXiv:1612.03144)",
    description="Faster R-CNN + FPN with RoIAlign and a per-class 28x28 sigmoid mask branch (BCE on the GT class)",
    # The paper prints no count; torchvision's model table does (maskrcnn_resnet50_fpn, COCO's 90
    # categories + background, FrozenBatchNorm: its count has no BN weights; our default trainable BN
    # adds 53k, 0.1%).
    published_params=44_401_393,
    published_ref="torchvision model table, maskrcnn_resnet50_fpn (the paper prints no count)",
    ref_num_classes=90,
    ref_image_size=800,
)
def build_mask_rcnn(
    num_classes: int,
    image_size: int,
    backbone: str = "resnet50",
    norm: str = "bn",
    fpn_channels: int = 256,
    roi_sampling_ratio: int = 2,
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512),
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0),
    representation_size: int = 1024,
    mask_size: int = 28,
    mask_head_channels: int = 256,
    rpn_pre_nms_top_n_train: int = 2000,
    rpn_post_nms_top_n_train: int = 2000,
    rpn_pre_nms_top_n_test: int = 1000,
    rpn_post_nms_top_n_test: int = 1000,
    box_batch_size_per_image: int = 512,
    box_detections_per_img: int = 100,
    box_score_thresh: float = 0.05,
) -> nn.Module:
    """Mask R-CNN + FPN for ``num_classes`` object classes (background is added here).

    The backbone, FPN, RPN and box head are faster_rcnn's fpn neck (same knobs; ``faster_rcnn.fpn_body``).
    The mask branch pools each RoI with RoIAlign to ``mask_size / 2`` on its FPN level, runs 4 convs
    of ``mask_head_channels`` and a 2x deconvolution, and predicts one ``mask_size x mask_size`` mask
    per class (M = 28 in the paper); only the ground-truth class's mask enters the BCE loss.
    Train mode: losses ``loss_objectness``, ``loss_rpn_box_reg``, ``loss_classifier``,
    ``loss_box_reg``, ``loss_mask``.  Eval mode adds ``masks [N, 1, H, W]`` (probabilities, pasted
    into the image) to each image's boxes, scores and labels.
    """
    from bench.models.detection._mask_rcnn import assemble, mask_rcnn_heads, resnet_fpn

    if len(anchor_sizes) != 5:
        raise ValueError(f"mask_rcnn: anchor_sizes needs one size per FPN level (5), got {anchor_sizes}")
    body = resnet_fpn("mask_rcnn", backbone, norm, fpn_channels)
    heads = mask_rcnn_heads(body.out_channels, num_classes + 1, representation_size, mask_size,
                            mask_head_channels, roi_sampling_ratio)
    return assemble(
        body, heads, image_size, anchor_sizes, aspect_ratios,
        rpn_pre_nms_top_n_train=rpn_pre_nms_top_n_train,
        rpn_post_nms_top_n_train=rpn_post_nms_top_n_train,
        rpn_pre_nms_top_n_test=rpn_pre_nms_top_n_test,
        rpn_post_nms_top_n_test=rpn_post_nms_top_n_test,
        box_batch_size_per_image=box_batch_size_per_image,
        box_detections_per_img=box_detections_per_img,
        box_score_thresh=box_score_thresh,
    )
