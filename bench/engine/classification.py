"""Classification: cross-entropy training, softmax scores into the classification evaluator."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from bench.engine.base import Task
from bench.engine.data import ClassificationDataset
from bench.evaluators.classification import ClassificationEvaluator


class ClassificationTask(Task):
    def dataset(self, split: str, train: bool) -> Dataset:
        rec = self.records(split)
        ops = self.cfg.train.augment if train else ()
        return ClassificationDataset(rec.paths, rec.labels, self.cfg.train.image_size, ops)

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(model(x.to(device, non_blocking=True)), y.to(device))

    def predict(self, model: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        return model(batch[0].to(device, non_blocking=True)).float().softmax(dim=1)

    def evaluator(self, split: str) -> ClassificationEvaluator:
        return ClassificationEvaluator(num_classes=self.num_classes, class_names=self.classes)

    def update(self, evaluator: Any, batch: Any, outputs: torch.Tensor) -> None:
        evaluator.update(outputs.cpu().numpy(), batch[1].numpy())
