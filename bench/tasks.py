"""The task registry: what each task trains with, evaluates with and ranks by.

Entries are lazy ``"module:attr"`` strings for the torch-side implementation, so resolving a task
name (``bench list --task``, target resolution) never imports torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from bench.registry import Registry


@dataclass(frozen=True)
class TaskSpec:
    """Typed metadata of a task."""

    primary_metric: str  # leaderboard sort key
    higher_is_better: bool
    headline_metrics: tuple[str, ...]  # leaderboard columns, in order
    description: str
    # Other tasks whose leaderboards and `bench run <task>` also include this task's models
    # (Siamese models rank on classification through their nearest-class-mean classifier).
    also_ranks_on: tuple[str, ...] = ()
    # Train-time transforms (``train.augment``) this task's datasets implement; any other is a config error.
    augment_ops: tuple[str, ...] = ("hflip", "vflip", "rot90", "channel_shuffle", "crop", "rotate", "shear",
                                    "color_shift")
    # The score a model should reach within its cpu budget: a leaderboard row below it whose training
    # ended on the time limit is marked "budget-limited" (the budget, not the model, bounded the score).
    target: tuple[str, float] | None = None


#: Box- and mask-aware transforms of detection data (``bench.engine.detection_augment``).
DETECTION_AUGMENT = ("hflip", "vflip", "scale_jitter", "crop", "color_shift", "mosaic")


TASKS: Registry[str, TaskSpec] = Registry("task")

TASKS.add(
    "classification",
    "bench.engine.classification:ClassificationTask",
    TaskSpec("top1", True, ("top1", "top5", "macro_f1"), "single-label image classification"),
)
TASKS.add(
    "verification",
    "bench.engine.verification:VerificationTask",
    TaskSpec(
        "roc_auc", True, ("roc_auc", "eer", "accuracy", "top1", "macro_f1"),
        "metric learning: same/different pairs (ROC AUC, EER, accuracy at the validation threshold) and "
        "nearest-class-mean classification",
        also_ranks_on=("classification",),
    ),
)
TASKS.add(
    "detection",
    "bench.engine.detection:DetectionTask",
    TaskSpec("mAP", True, ("mAP", "mAP_50", "mAP_75", "mAP11", "mAPall"), "object detection, COCO boxes",
             augment_ops=DETECTION_AUGMENT, target=("mAP_50", 0.25)),
)
TASKS.add(
    "instance_segmentation",
    "bench.engine.instance_segmentation:InstanceSegmentationTask",
    TaskSpec(
        "mask_mAP", True, ("mask_mAP", "mask_mAP_50", "mask_mAP_75", "mAP", "mAP_50", "mAP_75"),
        "detection with a mask per object: COCO segm (mask_*) and bbox metrics",
        # Box metrics under the detection names: Mask R-CNN and PANet rank on detection by their boxes.
        also_ranks_on=("detection",), augment_ops=DETECTION_AUGMENT, target=("mAP_50", 0.25),
    ),
)
TASKS.add(
    "semantic_segmentation",
    "bench.engine.segmentation:SegmentationTask",
    TaskSpec(
        # sensitivity/specificity of the foreground classes (one-vs-rest, averaged over them): for a binary view
        # these are the clinical sensitivity and specificity of the foreground.
        "jaccard", True, ("jaccard", "dice", "jaccard_fg", "dice_fg", "sensitivity_fg", "specificity_fg",
                          "pixel_accuracy"),
        "per-pixel classification; class 0 is background",
        # A model that ends on its time limit below a foreground Dice of 0.5 is budget-limited (the all-background
        # prediction has foreground Dice 0; unet reaches ~0.85 on shapes at the cpu profile).
        target=("dice_fg", 0.5),
    ),
)


def task_impl(name: str) -> Any:
    """Import and return the implementation class of task ``name``."""
    module, _, attr = TASKS.get(name).obj.partition(":")
    return getattr(importlib.import_module(module), attr)
