"""Semantic segmentation: per-pixel cross-entropy, argmax label maps into the confusion matrix."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from bench.engine.base import Task
from bench.engine.data import SegmentationDataset
from bench.evaluators.segmentation import SegmentationEvaluator

IGNORE_INDEX = 255


class SegmentationTask(Task):
    @property
    def num_classes(self) -> int:
        return len(self.classes) + 1  # class 0 is background

    def dataset(self, split: str, train: bool) -> Dataset:
        rec = self.records(split)
        ops = self.cfg.train.augment if train else ()
        return SegmentationDataset(rec.images, rec.masks, self.cfg.train.image_size, ops)

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(model(x.to(device, non_blocking=True)), y.to(device), ignore_index=IGNORE_INDEX)

    def predict(self, model: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        return model(batch[0].to(device, non_blocking=True)).argmax(dim=1)

    def evaluator(self, split: str) -> SegmentationEvaluator:
        return SegmentationEvaluator(
            num_classes=self.num_classes, ignore_index=IGNORE_INDEX, class_names=["background", *self.classes]
        )

    def update(self, evaluator: Any, batch: Any, outputs: torch.Tensor) -> None:
        evaluator.update(outputs.cpu().numpy(), batch[1].numpy())
