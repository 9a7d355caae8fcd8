"""ResNet-50 v2, pre-activation (He et al. 2016, arXiv:1603.05027), from timm ``resnetv2_50``.

Each bottleneck unit is BN-ReLU-1x1 conv, BN-ReLU-3x3 conv, BN-ReLU-1x1 conv, added to a clean
identity path (no ReLU after the addition; where the shape changes, the 1x1 projection shortcut
reads the unit's pre-activated input, as in the paper's code).  The stem is the v1 7x7/2 conv +
3x3/2 max-pool (the first unit's BN-ReLU pre-activates it), a final BN-ReLU follows the last unit.
timm's variant is the faithful one: plain convs (not the weight-standardised BiT convs), batch norm
(not group norm), no deep stem.  Like fb.resnet.torch's ImageNet ``preresnet.lua`` it puts a
downsampling unit's stride on the 3x3 conv (the paper's CIFAR code strides the first 1x1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import register_model
from bench.models.classification._common import require_min_size, tag_transfer

if TYPE_CHECKING:
    from torch import nn

# timm's top-level children are stem / stages / norm / head; the four stages are nested, and the
# final BN-ReLU ("norm") closes the last one.
_STAGES = ("stem", "stages.0", "stages.1", "stages.2", "stages.3", "norm")


@register_model(
    "resnet50_v2",
    task="classification",
    source="timm",
    paper="He et al. 2016, Identity Mappings in Deep Residual Networks (arXiv:1603.05027), Fig. 1(b), Fig. 4(e)",
    description="ResNet-50 with pre-activation bottleneck units (BN-ReLU before each conv), clean identity path",
    published_params=None,
    published_ref=("none published: He et al. 2016 report ImageNet results only for pre-activation ResNet-152/200 "
                   "(Table 5) and counts only for CIFAR models; the network has ResNet-50's convolutions, so its "
                   "count (25.55M at 1000 classes) is within 0.1% of ResNet-50 v1's 25.6M"),
)
def build_resnet50_v2(num_classes: int, image_size: int, drop_rate: float = 0.0) -> nn.Module:
    """Pre-activation ResNet-50: ``[B, 3, S, S] -> [B, num_classes]``, S >= 32.

    ``drop_rate``: dropout before the classifier (0 in the paper).
    """
    import timm

    require_min_size("resnet50_v2", image_size, 32)
    model = timm.create_model("resnetv2_50", pretrained=False, num_classes=num_classes, drop_rate=drop_rate)
    return tag_transfer(model, head="head.fc", stages=_STAGES)
