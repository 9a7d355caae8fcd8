"""PSPNet (Zhao et al. 2017), written here (``_pspnet.py`` on the dilated ResNet of ``_dilated_resnet.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn

# The reference is the authors' Cityscapes / VOC model: ResNet-101 with their deep 3x3 stem, 19 classes (the
# count below is quoted for Cityscapes).  Counted here at 19 classes without the auxiliary head: 65.71M
# (backbone 42.62M, pyramid pooling 4.20M, 3x3 head conv 18.88M, classifier 10K); the auxiliary head
# (2.36M) is training-only and not in the quoted figure (65.7M is what the network without it has).
_REF = ("Mehta et al. 2018, ESPNet (arXiv:1803.06815), Sec. 1: 'PSPNet has 65.7 million parameters' "
        "(ResNet-101, Cityscapes, 19 classes; the authors publish no count)")


@register_model(
    "pspnet",
    task="semantic_segmentation",
    source="bench",
    paper="Zhao et al. 2017, Pyramid Scene Parsing Network (arXiv:1612.01105), Sec. 3.2-3.3, Fig. 3-4",
    description="dilated ResNet (output stride 8, deep 3x3 stem), pyramid pooling at 1/2/3/6 bins (1x1 conv to "
                "C/4 each, bilinear up, concat), 3x3 conv, classifier, bilinear up; auxiliary head on layer3 "
                "(weight 0.4, training only)",
    published_params=65.7e6,
    published_ref=_REF,
    ref_num_classes=19,
    ref_image_size=713,
    train_only_modules=("aux",),
)
def build_pspnet(num_classes: int, image_size: int, block: Literal["bottleneck", "basic"] = "bottleneck",
                 layers: list[int] | None = None, width: int = 64, stem: Literal["deep", "resnet"] = "deep",
                 bins: list[int] | None = None, head_channels: int = 512, aux: bool = True, aux_channels: int = 256,
                 aux_weight: float = 0.4, dropout: float = 0.1) -> nn.Module:
    """``[B, 3, S, S] -> [B, num_classes, S, S]`` logits (``_pspnet.PSPNet``).

    ``layers``: blocks per stage (default ``[3, 4, 23, 3]``, ResNet-101; ``[3, 4, 6, 3]`` is ResNet-50);
    ``bins``: the pyramid's bin counts (default ``[1, 2, 3, 6]``, Sec. 3.2); ``width``: the first stage's
    channels (64); ``head_channels`` / ``aux_channels``: the 3x3 convs of the main and auxiliary heads
    (512 / 256); ``aux_weight``: the auxiliary loss weight (0.4, Sec. 4.1).  ``image_size`` >= 8 (stride 8).
    """
    from bench.models.segmentation._pspnet import PSPNet

    layers = [3, 4, 23, 3] if layers is None else layers
    bins = [1, 2, 3, 6] if bins is None else bins
    if image_size < 8:
        raise ValueError(f"pspnet: image_size must be >= 8 (output stride 8), got {image_size}")
    if not bins or min(bins) < 1:
        raise ValueError(f"pspnet: bins must be positive bin counts, got {bins}")
    if min(head_channels, aux_channels) < 1 or aux_weight < 0 or not 0 <= dropout < 1:
        raise ValueError(f"pspnet: head_channels / aux_channels >= 1, aux_weight >= 0 and dropout in [0, 1), got "
                         f"{head_channels}, {aux_channels}, {aux_weight}, {dropout}")
    return PSPNet(num_classes, block, layers, width, stem, bins, head_channels, aux, aux_channels, aux_weight,
                  dropout)
