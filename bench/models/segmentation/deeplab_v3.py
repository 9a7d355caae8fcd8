"""DeepLab v3 (Chen, Papandreou, Schroff & Adam 2017), torchvision's ``deeplabv3_resnet50/101`` (``_deeplab_v3.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from bench.models import RefVariant, register_model

if TYPE_CHECKING:
    from torch import nn

_PAPER = "Chen et al. 2017, Rethinking Atrous Convolution for Semantic Image Segmentation (arXiv:1706.05587)"
# torchvision documents its models' counts (DeepLabV3_ResNet50_Weights / _ResNet101_Weights meta "num_params"):
# 21 classes (VOC labels), with the FCNHead auxiliary classifier, which those checkpoints carry; the fidelity
# test counts exactly that configuration (the aux head is included, so it is not a train_only_module here).
_REF = "torchvision DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1 num_params 42,004,074 (21 classes, aux head)"
_REF_101 = "torchvision DeepLabV3_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1 num_params 60,996,202 (21 classes, aux)"


@register_model(
    "deeplab_v3",
    task="semantic_segmentation",
    source="torchvision",
    paper=_PAPER,
    description="DeepLab v3: dilated ResNet (output stride 8), ASPP at rates 12/24/36 with BN and an image-pooling "
                "branch, FCN auxiliary head on layer3 in training (torchvision's layout), no CRF",
    published_params=42_004_074,
    published_ref=_REF,
    ref_num_classes=21,
    ref_image_size=520,
    ref_variants=(RefVariant("resnet101", {"backbone": "resnet101"}, 60_996_202, _REF_101),),
)
def build_deeplab_v3(num_classes: int, image_size: int,
                     backbone: Literal["resnet18", "resnet34", "resnet50", "resnet101"] = "resnet50",
                     backbone_width: float = 1.0, aux_loss: bool = True, aux_weight: float = 0.5,
                     head_channels: int = 256) -> nn.Module:
    """``[B, 3, S, S] -> [B, num_classes, S, S]`` logits (``_deeplab_v3.DeepLabV3``); ``{"out", "aux"}`` in training
    with ``aux_loss``.  ResNet-50/101 at full width with 256-channel ASPP: torchvision's builder itself; other trunks
    or widths (small profiles): the same torchvision parts over a scaled, dilated ResNet."""
    from bench.models.segmentation._deeplab_v3 import DeepLabV3

    return DeepLabV3(num_classes, backbone=backbone, backbone_width=backbone_width, aux_loss=aux_loss,
                     aux_weight=aux_weight, head_channels=head_channels)
