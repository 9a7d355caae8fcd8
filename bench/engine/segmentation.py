"""Semantic segmentation: the configured loss (``train.loss``, default per-pixel cross-entropy), argmax label
maps into the confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from bench.engine.base import Task
from bench.engine.data import MEAN, STD, SegmentationDataset, window_starts
from bench.engine.segmentation_losses import IGNORE_INDEX, LossFn, segmentation_loss
from bench.evaluators.segmentation import SegmentationEvaluator
from bench.metrics.segmentation import background_confmats, from_confmat
from bench.metrics.significance import BaselineTest, paired_baseline
from bench.models import build_model


def split_outputs(out: torch.Tensor | dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(main logits [B, C, H, W], auxiliary logits by name)`` of a model's output: a tensor, or torchvision's
    ``{"out": ..., "aux": ...}`` (any key other than ``out`` is auxiliary)."""
    if isinstance(out, dict):
        return out["out"], {k: v for k, v in out.items() if k != "out"}
    return out, {}


class SegmentationTask(Task):
    @property
    def num_classes(self) -> int:
        return len(self.classes) + 1  # class 0 is background

    @property
    def tile(self) -> int | None:
        """The training crop and sliding-window side (px) where the view tiles images larger than it, else None."""
        tile = self.cfg.dataset.views[self.cfg.task].tile  # type: ignore[index]
        return tile if tile is not None and tile < self.cfg.train.image_size else None

    def dataset(self, split: str, train: bool) -> Dataset:
        rec = self.records(split)
        ops = self.cfg.train.augment if train else ()
        return SegmentationDataset(rec.images, rec.masks, self.cfg.train.image_size, ops, self.num_classes,
                                   tile=self.tile if train else None)

    def build_model(self) -> nn.Module:
        """The model at the size it sees: the tile when the view tiles large images, else the input size."""
        return build_model(self.cfg.builder, self.num_classes, self.tile or self.cfg.train.image_size,
                           self.cfg.params)

    @cached_property
    def train_loss(self) -> LossFn:
        """``fn(logits [B, K+1, H, W], target [B, H, W]) -> scalar``: ``train.loss``, else cross-entropy."""
        spec = self.cfg.train.loss
        return segmentation_loss(spec.name, **spec.params) if spec is not None else segmentation_loss("ce")

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        """The configured loss (``train_loss``) on the main output, plus ``model.aux_weight`` x the same loss on
        each auxiliary output (PSPNet, DeepLab v3); also counts correct non-ignored pixels of the main output
        (training pixel accuracy).

        A model with its own training objective defines ``segmentation_loss(x, y)`` -> a scalar or a dict of
        named terms (summed, as detection sums its losses): it replaces the criterion (mask_rcnn_semantic: Mask
        R-CNN's losses on instances cut from ``y``), so ``train.loss`` cannot be set for it.  No training pixel
        accuracy is counted then (``train_acc`` None): its train-mode pass makes no per-pixel prediction.
        """
        x, y = batch
        y = y.to(device)
        own = getattr(model, "segmentation_loss", None)
        if own is not None:
            return self.model_loss(own, x.to(device, non_blocking=True), y)
        logits, aux = split_outputs(model(x.to(device, non_blocking=True)))
        with torch.no_grad():
            valid = y != IGNORE_INDEX
            self.count_correct(((logits.argmax(dim=1) == y) & valid).sum(), int(valid.sum()))
        loss = self.train_loss(logits, y)
        if aux:
            weight = getattr(model, "aux_weight", None)
            if weight is None:
                raise ValueError(f"{self.cfg.model} returns auxiliary outputs {sorted(aux)} in training but sets no "
                                 "aux_weight (the paper's weight of their loss)")
            loss = loss + weight * sum(self.train_loss(a, y) for a in aux.values())
        return loss

    def model_loss(self, own: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``own(x, y)`` (a model's ``segmentation_loss``), its terms summed when it returns a dict."""
        if self.cfg.train.loss is not None:
            raise ValueError(f"{self.cfg.model} trains on its own loss (its segmentation_loss); "
                             f"train.loss={self.cfg.train.loss.name!r} cannot apply to it: remove it")
        out = own(x, y)
        return sum(out.values()) if isinstance(out, dict) else out  # type: ignore[return-value]

    def predict(self, model: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        """``[B, H, W]`` labels: the argmax of the main output, or ``model.postprocess(logits, images)`` where
        the model has one (DeepLab's dense CRF), given the images as RGB in [0, 1]."""
        x = batch[0].to(device, non_blocking=True)
        logits = self.logits(model, x)
        post = getattr(model, "postprocess", None)
        if post is None:
            return logits.argmax(dim=1)
        return post(logits, x * STD + MEAN)

    def logits(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``[B, K+1, H, W]`` main logits of ``x [B, 3, H, W]``: one forward, or with tiling the mean over the
        overlapping ``tile`` windows that cover each pixel."""
        tile = self.tile
        if tile is None:
            return split_outputs(model(x))[0]
        h, w = x.shape[-2:]
        total, hits = None, x.new_zeros(1, 1, h, w)
        for top in window_starts(h, tile):
            for left in window_starts(w, tile):
                out = split_outputs(model(x[..., top:top + tile, left:left + tile]))[0]
                if total is None:
                    total = x.new_zeros(x.shape[0], out.shape[1], h, w)
                total[..., top:top + tile, left:left + tile] += out
                hits[..., top:top + tile, left:left + tile] += 1
        return total / hits  # type: ignore[operator]

    def evaluator(self, split: str, subset: Sequence[int] | None = None) -> SegmentationEvaluator:
        return SegmentationEvaluator(
            num_classes=self.num_classes, ignore_index=IGNORE_INDEX, class_names=["background", *self.classes],
            image_ids=subset,
        )

    def update(self, evaluator: Any, batch: Any, outputs: torch.Tensor) -> None:
        evaluator.update(outputs.cpu().numpy(), batch[1].numpy())

    def baseline(self, test: Any, untrained: Any | None) -> BaselineTest | None:
        """Predicting background everywhere; sign test over the images' mean IoU."""
        model, background = test.per_image_jaccard()
        score = from_confmat(background_confmats(test.confmat[None])[0])["jaccard"]
        return paired_baseline("all background", "jaccard", score, model, background, "mean IoU")
