"""ResNet v1 (He et al., 2015, arXiv:1512.03385) from torchvision, random init.

Post-activation residual units: conv-BN-ReLU, conv-BN, add the (projected) identity, then ReLU.
ResNet-18/34 use basic blocks (two 3x3 convs), ResNet-50 bottleneck blocks (1x1, 3x3, 1x1).
The top-level children (conv1, bn1, layer1..layer4) are the natural stages; ``fc`` is the head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import register_model
from bench.models.classification._common import require_min_size, tag_transfer

if TYPE_CHECKING:
    from torch import nn

_PAPER = "He et al. 2015, Deep Residual Learning (arXiv:1512.03385), Table 1"
# Table 1 gives layers and FLOPs, not parameters; the counts are those of the reference
# implementation (torchvision's model table), which builds Table 1's networks exactly.
_REF = "He et al. 2015 Table 1 architecture; {m}M parameters as listed for torchvision's {name} (same layers)"


def _build(name: str, num_classes: int, image_size: int, zero_init_residual: bool) -> nn.Module:
    import torchvision.models as tvm

    require_min_size(name, image_size, 32)
    model = getattr(tvm, name)(weights=None, num_classes=num_classes, zero_init_residual=zero_init_residual)
    return tag_transfer(model, head="fc")


# name -> (description, parameters in millions)
VARIANTS: dict[str, tuple[str, float]] = {
    "resnet18": ("18-layer ResNet v1: basic residual blocks, post-activation, H(x) = F(x) + x", 11.7),
    "resnet34": ("34-layer ResNet v1: basic residual blocks (3, 4, 6, 3), post-activation", 21.8),
    # torchvision's ResNet-50 is "v1.5": the stride-2 of a downsampling bottleneck sits on the 3x3
    # conv rather than the first 1x1 (same parameters, slightly more FLOPs, as in He et al.'s own
    # later Torch code).
    "resnet50": ("50-layer ResNet v1: bottleneck blocks 1x1-3x3-1x1 (3, 4, 6, 3), post-activation", 25.6),
}


def _register(name: str) -> None:
    """Register ResNet ``name`` (one of ``VARIANTS``)."""
    description, params = VARIANTS[name]

    @register_model(
        name,
        task="classification",
        source="torchvision",
        paper=_PAPER,
        description=description,
        published_params=params * 1e6,
        published_ref=_REF.format(m=params, name=name),
    )
    def build(num_classes: int, image_size: int, zero_init_residual: bool = False) -> nn.Module:
        """ResNet with a ``num_classes`` head: ``[B, 3, S, S] -> [B, num_classes]``, S >= 32."""
        return _build(name, num_classes, image_size, zero_init_residual)

    build.__name__ = build.__qualname__ = f"build_{name}"


for _name in VARIANTS:
    _register(_name)
