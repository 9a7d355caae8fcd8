"""Mask R-CNN (He et al. 2017) as a semantic segmentation model: mask_rcnn's torchvision network, trained on
the connected components of the label map as instances, its instance masks merged into a per-pixel label map
(``_mask_rcnn_semantic.py`` states the target and merge rules)."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from bench.models import register_model
from bench.models.detection.mask_rcnn import build_mask_rcnn

if TYPE_CHECKING:
    from torch import nn


@register_model(
    "mask_rcnn_semantic",
    task="semantic_segmentation",
    source="torchvision",
    paper="He et al. 2017 (arXiv:1703.06870); FPN: Lin et al. 2017 (arXiv:1612.03144)",
    description="Mask R-CNN + FPN trained on each label map's connected components as instances; per pixel, "
                "the class of the detection with the highest score x mask probability (background where < 0.5)",
    # The network is mask_rcnn's: torchvision's count at COCO's 90 categories + background (91 segmentation
    # classes here), FrozenBatchNorm; our default trainable BN adds 53k (0.1%).
    published_params=44_401_393,
    published_ref="torchvision model table, maskrcnn_resnet50_fpn (the paper prints no count)",
    ref_num_classes=91,
    ref_image_size=800,
)
def build_mask_rcnn_semantic(num_classes: int, image_size: int, **params: Any) -> nn.Module:
    """Mask R-CNN for ``num_classes`` segmentation classes (background = 0 included): mask_rcnn's builder for
    ``num_classes - 1`` object classes (its knobs, its defaults: the signature is ``build_mask_rcnn``'s),
    wrapped by ``MaskRCNNSemantic``."""
    from bench.models.segmentation._mask_rcnn_semantic import MaskRCNNSemantic

    if num_classes < 2:
        raise ValueError(f"mask_rcnn_semantic needs at least one class besides the background, got {num_classes}")
    return MaskRCNNSemantic(build_mask_rcnn(num_classes - 1, image_size, **params), num_classes)


# The YAML params are checked against the builder's signature (bench.models.check_params): mask_rcnn's, so the
# knobs and their defaults are stated once, in bench/models/detection/mask_rcnn.py.
build_mask_rcnn_semantic.__signature__ = inspect.signature(build_mask_rcnn)  # type: ignore[attr-defined]
