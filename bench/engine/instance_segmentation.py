"""Instance segmentation: a detector that also predicts a mask per object (Mask R-CNN, PANet).

Training and prediction are detection's (``DetectionTask``): the targets add ``masks [N, H, W]
uint8`` and eval outputs add ``masks [N, 1, H, W]`` in [0, 1] at image resolution.  Predictions
are binarised at ``MASK_THRESHOLD`` and RLE-encoded, then scored on boxes and on masks
(``InstanceSegmentationEvaluator``: detection's box metrics plus ``mask_*``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bench.engine.detection import DetectionTask, to_coco_results
from bench.evaluators.instance_segmentation import InstanceSegmentationEvaluator

#: A pixel belongs to the object where the predicted mask probability exceeds this (torchvision's
#: and Detectron2's paste threshold).
MASK_THRESHOLD = 0.5


class InstanceSegmentationTask(DetectionTask):
    with_masks = True  # detection's dataset, plus each object's mask in the targets
    baseline_metric, baseline_unit = "mask_mAP", "mask AP@0.5"

    def evaluator(self, split: str, subset: Sequence[int] | None = None) -> InstanceSegmentationEvaluator:
        return InstanceSegmentationEvaluator(gt=self.eval_gt(split, subset))

    def update(self, evaluator: Any, batch: Any, outputs: list[dict[str, torch.Tensor]]) -> None:
        evaluator.update(to_coco_segm_results(batch[1], outputs, self.label_to_cat))


def encode_masks(masks: torch.Tensor, threshold: float = MASK_THRESHOLD) -> list[dict[str, Any]]:
    """``masks [N, 1, H, W]`` probabilities -> N COCO RLEs (``counts`` as str, so they serialise to JSON)."""
    from faster_coco_eval.core import mask as mask_utils

    if masks.ndim != 4 or masks.shape[1] != 1:
        raise ValueError(f"predicted masks must be [N, 1, H, W], got {list(masks.shape)}")
    binary = (masks[:, 0].detach().float().cpu() > threshold).numpy().astype(np.uint8)  # [N, H, W]
    if not len(binary):
        return []
    rles = mask_utils.encode(np.asfortranarray(binary.transpose(1, 2, 0)))  # wants [H, W, N], Fortran order
    return [{"size": [int(v) for v in r["size"]],
             "counts": r["counts"].decode("ascii") if isinstance(r["counts"], bytes) else r["counts"]} for r in rles]


def to_coco_segm_results(
    targets: list[dict[str, torch.Tensor]], outputs: list[dict[str, torch.Tensor]], label_to_cat: dict[int, int]
) -> list[dict[str, Any]]:
    """:func:`to_coco_results` with each detection's ``segmentation`` RLE (its mask, binarised)."""
    results = to_coco_results(targets, outputs, label_to_cat)
    rles = [rle for out in outputs for rle in encode_masks(_masks_of(out))]
    if len(rles) != len(results):
        raise ValueError(f"{len(rles)} predicted masks for {len(results)} boxes: each detection needs one mask")
    for rec, rle in zip(results, rles, strict=True):
        rec["segmentation"] = rle
    return results


def _masks_of(out: dict[str, torch.Tensor]) -> torch.Tensor:
    if "masks" not in out:
        raise ValueError("an instance_segmentation model must return 'masks' [N, 1, H, W] in eval mode; "
                         f"got keys {sorted(out)}")
    return out["masks"]
