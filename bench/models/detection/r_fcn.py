"""R-FCN (Dai et al., 2016): region-based fully convolutional detection on an RPN, random init."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn


@register_model(
    "r_fcn",
    task="detection",
    source="bench",
    paper="Dai et al. 2016 (arXiv:1605.06409)",
    description="RPN on res4 + position-sensitive score maps (k^2 (C+1) classes, 4k^2 boxes) on dilated res5, "
                "position-sensitive RoI pooling, voting by averaging the k x k bins",
    # R-FCN prints no count.  The layer-by-layer count (ResNet-101 without fc, 1x1 conv to 1024-d, k = 7
    # score maps, RPN with a 512-d 3x3 conv, VOC K = 20) is 50.8M; ours is 50.60M (it counted 8k^2 box maps, the
    # released code's class-agnostic form with background; the paper's 4k^2 is used here).
    published_params=50.8e6,
    published_ref="layer-by-layer count, issue 11 (ResNet-101, VOC K = 20, k = 7; no published count found)",
    ref_num_classes=20,
    ref_image_size=600,
)
def build_r_fcn(
    num_classes: int,
    image_size: int,
    backbone: str = "resnet101",
    norm: str = "bn",
    k: int = 7,
    reduce_channels: int = 1024,
    ps_op: str = "pool",
    ps_sampling_ratio: int = 2,
    anchor_sizes: tuple[int, ...] = (128, 256, 512),
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0),
    rpn_channels: int = 512,
    rpn_pre_nms_top_n_train: int = 12000,
    rpn_post_nms_top_n_train: int = 2000,
    rpn_pre_nms_top_n_test: int = 6000,
    rpn_post_nms_top_n_test: int = 300,
    box_batch_size_per_image: int = 128,
    box_detections_per_img: int = 100,
    box_score_thresh: float = 0.05,
) -> nn.Module:
    """R-FCN for ``num_classes`` object classes (background is added here).

    The ResNet's res5 is dilated to keep stride 16 (the paper's conv5 "hole algorithm"); the RPN (shared
    with ``faster_rcnn``: 3 ``anchor_sizes`` x 3 ``aspect_ratios``, IoU > 0.7 / < 0.3, 256 anchors 1:1,
    NMS 0.7, ``rpn_channels`` 3x3 conv) reads res4, as in the paper; a 1x1 conv reduces res5 to
    ``reduce_channels`` (1024), then ``k^2 (K+1)`` class and ``4 k^2`` box score maps.  Each RoI is pooled
    position-sensitively into k x k bins (``ps_op``: ``pool``, the paper's average within integer bins, or
    ``align``, bilinear with ``ps_sampling_ratio`` samples per bin side), voted by averaging the bins, (K+1)
    softmax + class-agnostic smooth L1.  ``box_batch_size_per_image`` RoIs (the paper's B = 128) sampled with
    25% foreground (IoU >= 0.5).  The paper selects the 128 by online hard example mining instead; not done here.
    ``norm``: ``bn`` (trainable, needed from random init), ``gn`` or ``frozen_bn``.  Images stay at ``image_size``.
    """
    from bench.models.detection import _r_fcn, _rpn

    trunk = _rpn.resnet_trunk("r_fcn", backbone, norm)
    body = _r_fcn.DilatedBody(trunk)
    top_n = {"pre_train": rpn_pre_nms_top_n_train, "post_train": rpn_post_nms_top_n_train,
             "pre_test": rpn_pre_nms_top_n_test, "post_test": rpn_post_nms_top_n_test}
    rpn = _rpn.region_proposal_network(body.c4.out_channels, rpn_channels, anchor_sizes, aspect_ratios, top_n,
                                       feature="res4")
    scores = _r_fcn.PositionSensitiveScores(body.out_channels, reduce_channels, num_classes + 1, k, ps_op,
                                            ps_sampling_ratio)
    heads = _rpn.roi_heads(scores, _r_fcn.Vote(), _r_fcn.RFCNPredictor(num_classes + 1), box_batch_size_per_image,
                           box_score_thresh, box_detections_per_img)
    return _rpn.two_stage_detector(body, rpn, heads, image_size)
