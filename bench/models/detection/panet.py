"""PANet (Liu et al. 2018): Mask R-CNN + bottom-up path augmentation, adaptive feature pooling and
fully-connected mask fusion, written here on torchvision's Mask R-CNN, random init."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn

# Layer by layer on top of Mask R-CNN R50-FPN (torchvision: 44,401,393 at COCO's 91 classes), with
# C = 256 pyramid/mask channels, L = 4 pooled levels, 7x7 box and 14x14 mask RoIs, a 1024-d fc1,
# M = 28, a 3x3 conv C->C weighing 9C^2 + C = 590,080:
#   bottom-up path N3..N5: 3 x (stride-2 conv + conv)          6 x 590,080 =  3,540,480
#   box fc1 per level: 3 more fc1 (7*7*C -> 1024)   3 x (12,544*1024 + 1024) = 38,538,240
#   mask conv1 per level: 3 more conv1                         3 x 590,080 =  1,770,240
#   FC fusion: conv4_fc (C->C)                                                  590,080
#              conv5_fc (C->C/2)                          9*256*128 + 128 =     295,040
#              fc (C/2 * 14 * 14 -> 28 * 28)                25,088*784 + 784 = 19,669,776
#   total 44,401,393 + 64,403,856 = 108,805,249.
PANET_R50_FPN_COCO = 108_805_249


@register_model(
    "panet",
    task="instance_segmentation",
    source="bench",
    paper="Liu et al. 2018 (arXiv:1803.01534)",
    description="Mask R-CNN + bottom-up path N2..N5, RoIAlign on every level fused by max, FC mask fusion",
    published_params=PANET_R50_FPN_COCO,
    published_ref="no published count (the paper prints none): layer-by-layer count on torchvision's "
                  "maskrcnn_resnet50_fpn (44,401,393), see bench/models/detection/panet.py",
    ref_num_classes=90,
    ref_image_size=800,
)
def build_panet(
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
    fusion: str = "max",
    rpn_pre_nms_top_n_train: int = 2000,
    rpn_post_nms_top_n_train: int = 2000,
    rpn_pre_nms_top_n_test: int = 1000,
    rpn_post_nms_top_n_test: int = 1000,
    box_batch_size_per_image: int = 512,
    box_detections_per_img: int = 100,
    box_score_thresh: float = 0.05,
) -> nn.Module:
    """PANet for ``num_classes`` object classes (background is added here); mask_rcnn's knobs plus ``fusion``.

    * Backbone: faster_rcnn's ResNet-FPN (``faster_rcnn.fpn_body``) followed by the bottom-up path
      N2 = P2, N_{i+1} = ReLU(conv3x3(ReLU(conv3x3 stride 2 (N_i)) + P_{i+1})); the RPN and the RoI
      heads read N2..N5 (+ a max-pooled N6 for the RPN), as in the authors' code.
    * Adaptive feature pooling: RoIAlign of every RoI on all of N2..N5; the box head's fc1 and the
      mask head's conv1 run on each level with their own weights, then the levels are fused
      element-wise (``fusion``: ``max``, the paper's choice, or ``sum``).
    * Mask head: conv1 (per level), conv2, conv3, conv4, 2x deconv, per-class 1x1 conv (the FCN), plus
      the fully-connected fusion path from conv3 (conv4_fc, conv5_fc with half the channels, fc to
      ``mask_size``^2), added to every class's mask logits.
    RPN, sampling, losses (``loss_mask``: BCE on the GT class's mask) and outputs are mask_rcnn's.
    """
    from bench.models.detection._mask_rcnn import assemble, resnet_fpn
    from bench.models.detection._panet import BottomUpPath, panet_heads

    if len(anchor_sizes) != 5:
        raise ValueError(f"panet: anchor_sizes needs one size per pyramid level (5), got {anchor_sizes}")
    body = BottomUpPath(resnet_fpn("panet", backbone, norm, fpn_channels))
    heads = panet_heads(body.out_channels, num_classes + 1, representation_size, mask_size,
                        mask_head_channels, roi_sampling_ratio, fusion)
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
