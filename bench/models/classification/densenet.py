"""DenseNet-121 (Huang et al. 2017, arXiv:1608.06993) from torchvision, random init.

Dense blocks (6, 12, 24, 16 layers) where each layer sees the concatenation of all earlier maps
and adds k = 32 (growth rate) new ones through BN-ReLU-1x1 conv (4k) - BN-ReLU-3x3 conv (k);
transition layers between blocks: BN-ReLU-1x1 conv (compression 0.5) + 2x2 average pool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import register_model
from bench.models.classification._common import require_min_size, tag_transfer

if TYPE_CHECKING:
    from torch import nn

# torchvision nests everything but the classifier in one ``features`` Sequential; its children,
# stem to final BN, are the stages the transfer modes freeze or fine-tune.
_STAGES = ("features.conv0", "features.norm0",
           "features.denseblock1", "features.transition1", "features.denseblock2", "features.transition2",
           "features.denseblock3", "features.transition3", "features.denseblock4", "features.norm5")


@register_model(
    "densenet121",
    task="classification",
    source="torchvision",
    paper="Huang et al. 2017, Densely Connected Convolutional Networks (arXiv:1608.06993), Table 1",
    description="DenseNet-121: 4 dense blocks (6/12/24/16 layers), growth rate 32, BC transitions",
    published_params=8.0e6,
    published_ref=("Huang et al. 2017 Table 1 (DenseNet-121) gives the layers, not a count (the ImageNet "
                   "models' sizes appear only in Fig. 3); 8.0M is the reference implementation's "
                   "(torchvision densenet121, same layers)"),
)
def build_densenet121(
    num_classes: int, image_size: int, drop_rate: float = 0.0, memory_efficient: bool = False
) -> nn.Module:
    """DenseNet-121: ``[B, 3, S, S] -> [B, num_classes]``, S >= 32 (total stride 32).

    ``drop_rate``: dropout after each dense layer (the paper uses 0.2 only without augmentation).
    ``memory_efficient`` recomputes the concatenations in backward (checkpointing): same network,
    less memory, slower.
    """
    from torchvision.models import densenet121

    require_min_size("densenet121", image_size, 32)
    model = densenet121(weights=None, num_classes=num_classes, drop_rate=drop_rate, memory_efficient=memory_efficient)
    return tag_transfer(model, head="classifier", stages=_STAGES)
