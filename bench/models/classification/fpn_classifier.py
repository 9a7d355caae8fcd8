"""FPN classifier: a Feature Pyramid Network on a torchvision ResNet, every level pooled and classified."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from bench.models import register_model
from bench.models.classification._common import require_min_size, tag_transfer

if TYPE_CHECKING:
    from torch import nn

# Output channels of layer1..layer4 (C2..C5) per backbone.
_C = {"resnet18": (64, 128, 256, 512), "resnet34": (64, 128, 256, 512), "resnet50": (256, 512, 1024, 2048)}


@register_model(
    "fpn_classifier",
    task="classification",
    source="bench",
    paper="Lin et al. 2017, Feature Pyramid Networks for Object Detection (arXiv:1612.03144), Sec. 3, Fig. 3",
    description="ResNet-18 bottom-up + FPN top-down (2x nearest, 1x1 laterals, 3x3 smoothing, d=256); "
    "P2..P5 global-pooled, concatenated, linear classifier",
    published_params=None,
    published_ref=("none: FPN was published as a detection/segmentation neck and the paper gives no parameter "
                   "counts; this classifier (the guide's use of FPN) is built here.  At 1000 classes with the "
                   "ResNet-18 backbone it has 14.8M parameters: 11.2M backbone, 2.6M FPN, 1.0M classifier"),
)
def build_fpn_classifier(
    num_classes: int, image_size: int, backbone: Literal["resnet18", "resnet34", "resnet50"] = "resnet18",
    fpn_channels: int = 256,
) -> nn.Module:
    """``[B, 3, S, S] -> [B, num_classes]``, S >= 32 (C5 has stride 32).

    ``backbone``: the torchvision ResNet of the bottom-up pathway (random init); ``fpn_channels``:
    d, the width of every pyramid level (256 in the paper).
    """
    import torchvision.models as tvm

    from bench.models.classification._fpn_classifier import LEVELS, STEM, FPNClassifier

    require_min_size("fpn_classifier", image_size, 32)
    model = FPNClassifier(getattr(tvm, backbone)(weights=None), _C[backbone], num_classes, fpn_channels)
    # Stem, the four ResNet stages, then the top-down pathway; conv1/bn1 are the stem's weights.
    stages = [n for n in STEM if n in ("conv1", "bn1")] + list(LEVELS) + ["fpn"]
    return tag_transfer(model, head="fc", stages=stages)
