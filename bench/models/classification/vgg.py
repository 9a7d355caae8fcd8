"""VGG (Simonyan & Zisserman 2015, arXiv:1409.1556) configurations A, B, D, E from torchvision.

Five blocks of 3x3 convs (64, 128, 256, 512, 512 filters), max-pool after each block, then three
fully connected layers (4096, 4096, classes) with dropout; no batch norm, as in the paper.
torchvision's adaptive average pool to 7x7 before the FC layers lets inputs of 32..223 px through
(at 32 px the 1x1 map is replicated to 7x7, so the FC layers keep their 224 px shapes and counts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import register_model
from bench.models.classification._common import require_min_size, tag_transfer

if TYPE_CHECKING:
    from torch import nn

_PAPER = "Simonyan & Zisserman 2015, Very Deep Convolutional Networks (arXiv:1409.1556), Table 1"
_REF = ("Simonyan & Zisserman 2015, Table 2 (config {cfg}: {rounded}M, rounded); "
        "the precise {m}M is the reference implementation's (torchvision {name}, same layers)")


def _build(name: str, num_classes: int, image_size: int, dropout: float) -> nn.Module:
    """torchvision VGG ``name`` with transfer attributes.

    Head: the last FC layer (``classifier.6``), so ``frozen`` mode is the classic "fc7 features +
    new linear classifier".  Stages: VGG has no residual stages and its ``features`` is one flat
    Sequential, so each weight layer (every conv, then fc6 and fc7) is a stage, input to output;
    ``finetune`` with 2 stages retrains the two hidden FC layers, as Keras-style VGG transfer does.
    """
    import torchvision.models as tvm
    from torch import nn

    require_min_size(name, image_size, 32)
    model = getattr(tvm, name)(weights=None, num_classes=num_classes, dropout=dropout)
    convs = [f"features.{i}" for i, m in enumerate(model.features) if isinstance(m, nn.Conv2d)]
    fcs = [f"classifier.{i}" for i, m in enumerate(model.classifier) if isinstance(m, nn.Linear)]
    return tag_transfer(model, head=fcs[-1], stages=convs + fcs[:-1])


# name -> (config letter in Table 1, conv layers, parameters: reference implementation, Table 2 rounded)
VARIANTS: dict[str, tuple[str, int, float, int]] = {
    "vgg11": ("A", 8, 132.9, 133),
    "vgg13": ("B", 10, 133.0, 133),
    "vgg16": ("D", 13, 138.4, 138),
    "vgg19": ("E", 16, 143.7, 144),
}


def _register(name: str) -> None:
    """Register VGG ``name`` (one of ``VARIANTS``); the four differ only in conv layers per block."""
    cfg, convs, params, rounded = VARIANTS[name]

    @register_model(
        name,
        task="classification",
        source="torchvision",
        paper=_PAPER,
        description=f"{name.upper().replace('VGG', 'VGG-')} (config {cfg}): {convs} conv 3x3 layers in 5 blocks "
                    "+ 3 FC layers, no BN",
        published_params=params * 1e6,
        published_ref=_REF.format(cfg=cfg, rounded=rounded, m=params, name=name),
    )
    def build(num_classes: int, image_size: int, dropout: float = 0.5) -> nn.Module:
        """VGG: ``[B, 3, S, S] -> [B, num_classes]``, S >= 32."""
        return _build(name, num_classes, image_size, dropout)

    build.__name__ = build.__qualname__ = f"build_{name}"


for _name in VARIANTS:
    _register(_name)
