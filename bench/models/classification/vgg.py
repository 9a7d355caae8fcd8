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


@register_model(
    "vgg11",
    task="classification",
    source="torchvision",
    paper=_PAPER,
    description="VGG-11 (config A): 8 conv 3x3 layers in 5 blocks + 3 FC layers, no BN",
    published_params=132.9e6,
    published_ref=_REF.format(cfg="A", rounded=133, m=132.9, name="vgg11"),
)
def build_vgg11(num_classes: int, image_size: int, dropout: float = 0.5) -> nn.Module:
    """VGG-11: ``[B, 3, S, S] -> [B, num_classes]``, S >= 32."""
    return _build("vgg11", num_classes, image_size, dropout)


@register_model(
    "vgg13",
    task="classification",
    source="torchvision",
    paper=_PAPER,
    description="VGG-13 (config B): 10 conv 3x3 layers in 5 blocks + 3 FC layers, no BN",
    published_params=133.0e6,
    published_ref=_REF.format(cfg="B", rounded=133, m=133.0, name="vgg13"),
)
def build_vgg13(num_classes: int, image_size: int, dropout: float = 0.5) -> nn.Module:
    """VGG-13: ``[B, 3, S, S] -> [B, num_classes]``, S >= 32."""
    return _build("vgg13", num_classes, image_size, dropout)


@register_model(
    "vgg16",
    task="classification",
    source="torchvision",
    paper=_PAPER,
    description="VGG-16 (config D): 13 conv 3x3 layers in 5 blocks + 3 FC layers, no BN",
    published_params=138.4e6,
    published_ref=_REF.format(cfg="D", rounded=138, m=138.4, name="vgg16"),
)
def build_vgg16(num_classes: int, image_size: int, dropout: float = 0.5) -> nn.Module:
    """VGG-16: ``[B, 3, S, S] -> [B, num_classes]``, S >= 32."""
    return _build("vgg16", num_classes, image_size, dropout)


@register_model(
    "vgg19",
    task="classification",
    source="torchvision",
    paper=_PAPER,
    description="VGG-19 (config E): 16 conv 3x3 layers in 5 blocks + 3 FC layers, no BN",
    published_params=143.7e6,
    published_ref=_REF.format(cfg="E", rounded=144, m=143.7, name="vgg19"),
)
def build_vgg19(num_classes: int, image_size: int, dropout: float = 0.5) -> nn.Module:
    """VGG-19: ``[B, 3, S, S] -> [B, num_classes]``, S >= 32."""
    return _build("vgg19", num_classes, image_size, dropout)
