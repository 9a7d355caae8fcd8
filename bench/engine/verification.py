"""Verification: Siamese training on triplets; evaluation as pair verification and nearest class mean.

Training batches are images of the dataset's image-folder view; the model's loss uses every
same/different pair (contrastive) or every valid anchor/positive/negative triplet (triplet) in the
batch (online mining, as FaceNet does).  Evaluation embeds single images; :class:`EmbeddingEvaluator` pairs them
(fixed seed) and classifies them by the nearest class mean of training embeddings.  The pair
accuracy on test uses the threshold chosen on validation pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.engine.classification import ClassificationTask
from bench.engine.data import make_loader, subsample
from bench.evaluators.verification import EmbeddingEvaluator, class_means
from bench.metrics.significance import BaselineTest, majority_baseline

# Training images embedded for the class means (a fixed subsample keeps per-epoch validation cheap).
MEANS_IMAGES = 1000


class VerificationTask(ClassificationTask):
    """Siamese models: labelled images in (the classification view's dataset), embeddings out."""

    def __init__(self, cfg: Any, dataset_root: Path) -> None:
        super().__init__(cfg, dataset_root)
        self.means: np.ndarray | None = None
        self.threshold: float | None = None

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        x, y = batch
        # One pass of the shared branch embeds every member of every pair/triplet in the batch.
        return model.siamese_loss(model(x.to(device, non_blocking=True)).float(), y.to(device))

    def predict(self, model: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        return model(batch[0].to(device, non_blocking=True)).float()

    def embed(self, model: nn.Module, split: str, limit: int | None, device: torch.device) -> tuple[Any, Any]:
        """``(embeddings [N, D], labels [N])`` of a fixed subsample of ``split`` (model in eval mode)."""
        ds = subsample(self.dataset(split, train=False), limit, self.cfg.seed)
        loader = make_loader(ds, self.cfg.train.eval_batch_size or self.cfg.train.batch_size, shuffle=False,
                             seed=self.cfg.seed, num_workers=self.cfg.train.num_workers)
        ev = EmbeddingEvaluator(self.num_classes)
        with torch.no_grad():
            for batch in loader:
                ev.update(self.predict(model, batch, device).cpu().numpy(), batch[1].numpy())
        return ev.arrays()

    def before_eval(self, model: nn.Module, split: str, device: torch.device) -> None:
        """Class means from training images; before test, the pair threshold from validation."""
        emb, labels = self.embed(model, "train", MEANS_IMAGES, device)
        self.means = class_means(emb, labels, self.num_classes)
        self.threshold = None
        if split == "test":
            t = self.cfg.train
            emb, labels = self.embed(model, "val", t.max_val_images or t.max_eval_images, device)
            val = EmbeddingEvaluator(self.num_classes)
            val.update(emb, labels)
            self.threshold = val.pairs().fit_threshold()

    def evaluator(self, split: str, subset: Sequence[int] | None = None) -> EmbeddingEvaluator:
        return EmbeddingEvaluator(self.num_classes, self.classes, class_means=self.means, threshold=self.threshold,
                                  image_ids=subset)

    def update(self, evaluator: Any, batch: Any, outputs: torch.Tensor) -> None:
        evaluator.update(outputs.cpu().numpy(), batch[1].numpy())

    def baseline(self, test: Any, untrained: Any | None) -> BaselineTest | None:
        """Majority class against the nearest-class-mean top-1 (the number ranked on classification).

        Training accuracy stays None: the Siamese loss scores pairs/triplets, not classes.
        """
        confusion = test.ncm_confusion()
        return None if confusion is None else majority_baseline(confusion)
