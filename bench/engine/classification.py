"""Classification: cross-entropy training, softmax scores into the classification evaluator."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from bench.engine.base import Task
from bench.engine.data import ClassificationDataset
from bench.evaluators.classification import ClassificationEvaluator
from bench.metrics.significance import BaselineTest, majority_baseline


def main_logits(outputs: Any) -> torch.Tensor:
    """The main head's logits ``[B, K]`` of a model's (train-mode) outputs."""
    return outputs[0] if isinstance(outputs, tuple) else outputs


def classification_loss(model: nn.Module, outputs: Any, y: torch.Tensor) -> torch.Tensor:
    """Training loss of ``outputs`` for labels ``y [B]`` (see the protocol in ``bench.models``).

    ``outputs`` is logits ``[B, K]``, or in train mode a tuple ``(logits, aux_1, ...)`` whose
    auxiliary heads are weighted by ``model.aux_loss_weight`` (GoogLeNet: 0.3).  A model with a
    ``training_loss(logits, y)`` method (``hog_svm``'s squared hinge) replaces cross-entropy.
    """
    main, aux = (outputs[0], tuple(outputs[1:])) if isinstance(outputs, tuple) else (outputs, ())
    criterion = getattr(model, "training_loss", None) or F.cross_entropy
    loss = criterion(main, y)
    weight = float(getattr(model, "aux_loss_weight", 0.0))
    for logits in aux:
        if logits is not None:
            loss = loss + weight * criterion(logits, y)
    return loss


def shuffled_labels(labels: list[int], seed: int) -> list[int]:
    """``labels`` permuted (seeded): the images keep their class frequencies but lose their classes.

    ``train.shuffle_train_labels``: a planted break for the regression gate, which a model can
    only memorise, never generalise from.
    """
    import numpy as np

    return [int(v) for v in np.random.default_rng(seed + 7919).permutation(np.asarray(labels))]


class ClassificationTask(Task):
    def dataset(self, split: str, train: bool) -> Dataset:
        rec = self.records(split)
        ops = self.cfg.train.augment if train else ()
        labels = list(rec.labels)
        if train and split == "train" and self.cfg.train.shuffle_train_labels:
            labels = shuffled_labels(labels, self.cfg.seed)
        return ClassificationDataset(rec.paths, labels, self.cfg.train.image_size, ops)

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        """Training loss; also counts the main head's correct top-1 predictions (train accuracy)."""
        x, y = batch
        y = y.to(device)
        outputs = model(x.to(device, non_blocking=True))
        with torch.no_grad():
            self.count_correct((main_logits(outputs).argmax(dim=1) == y).sum(), len(y))
        return classification_loss(model, outputs, y)

    def predict(self, model: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        return model(batch[0].to(device, non_blocking=True)).float().softmax(dim=1)

    def evaluator(self, split: str, subset: Sequence[int] | None = None) -> ClassificationEvaluator:
        return ClassificationEvaluator(num_classes=self.num_classes, class_names=self.classes, image_ids=subset)

    def update(self, evaluator: Any, batch: Any, outputs: torch.Tensor) -> None:
        evaluator.update(outputs.cpu().numpy(), batch[1].numpy())

    def baseline(self, test: Any, untrained: Any | None) -> BaselineTest | None:
        """Majority class of the evaluated test images; exact binomial test of the top-1 hits."""
        return majority_baseline(test.confusion)
