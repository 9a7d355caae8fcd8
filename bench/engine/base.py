"""What a task supplies to the generic trainer: data, model, loss, predictions, evaluator."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from bench.config.catalog import TrialConfig
from bench.datasets import DATASETS
from bench.metrics.significance import BaselineTest
from bench.models import build_model


class Task(ABC):
    """One task's pieces.  Subclasses are registered in ``bench.tasks`` by ``module:attr``.

    Optional hooks, all with working defaults:

    * **training accuracy**: a task whose training forward yields predictions calls
      :meth:`count_correct` inside :meth:`loss`; the loop reads it back with
      :meth:`pop_train_counts` after each step and reports the epoch's running fraction
      (no second forward).  Tasks that never call it get ``train_acc = None``.
    * **baseline**: :meth:`baseline` compares the test result with a trivial baseline
      (``bench.metrics.significance``); with ``untrained_baseline`` the loop first evaluates the
      freshly initialised model on the test split and passes that evaluator in as well.
    """

    collate: Any = None  # DataLoader collate_fn; None = default stacking
    untrained_baseline: bool = False  # evaluate the model at initialisation on test, as the baseline
    _train_counts: tuple[int, int] | None = None

    def __init__(self, cfg: TrialConfig, dataset_root: Path) -> None:
        self.cfg = cfg
        view = cfg.dataset.views[cfg.task]
        self.view_root = dataset_root / view.path
        self._adapter = DATASETS.get(view.format).obj
        self.classes = list(cfg.dataset.classes)

    def records(self, split: str) -> Any:
        """The format adapter's records of ``split`` (``train``/``val``/``test`` via the config)."""
        view = self.cfg.dataset.views[self.cfg.task]  # type: ignore[index]
        return self._adapter(self.view_root, self.cfg.dataset.splits[split], self.classes,  # type: ignore[index]
                             **view.adapter_options())

    @property
    def num_classes(self) -> int:
        """What the builder gets as ``num_classes`` (see ``bench.models``)."""
        return len(self.classes)

    def build_model(self) -> nn.Module:
        return build_model(self.cfg.builder, self.num_classes, self.cfg.train.image_size, self.cfg.params)

    def extras(self) -> dict[str, Any]:
        """Task-specific facts about the trial for the record's ``extras`` (e.g. the anchors a detector was
        built with); called after training."""
        return {}

    @abstractmethod
    def dataset(self, split: str, train: bool) -> Dataset: ...

    @abstractmethod
    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        """Scalar training loss of one batch (model in train mode)."""

    @abstractmethod
    def predict(self, model: nn.Module, batch: Any, device: torch.device) -> Any:
        """Model outputs for one batch (model in eval mode, no grad)."""

    def before_eval(self, model: nn.Module, split: str, device: torch.device) -> None:  # noqa: B027 - optional hook
        """Called (eval mode, no grad) before ``split`` is evaluated: fit what the evaluator needs."""

    @abstractmethod
    def evaluator(self, split: str, subset: Sequence[int] | None = None) -> Any:
        """A fresh accumulator from ``bench.evaluators`` for ``split``.

        ``subset``: the dataset indices that will be evaluated (``max_eval_images``), None = all.
        Evaluators that hold ground truth up front (detection) must score those images only.
        """

    @abstractmethod
    def update(self, evaluator: Any, batch: Any, outputs: Any) -> None:
        """Feed one batch of outputs (moved to NumPy) to the evaluator."""

    def count_correct(self, correct: int | torch.Tensor, total: int) -> None:
        """Record, from inside :meth:`loss`, that ``correct`` of ``total`` training targets were right."""
        self._train_counts = (int(correct), int(total))

    def pop_train_counts(self) -> tuple[int, int] | None:
        """``(correct, total)`` of the last :meth:`loss` call, then forgotten; None if not recorded."""
        counts, self._train_counts = self._train_counts, None
        return counts

    def baseline(self, test: Any, untrained: Any | None) -> BaselineTest | None:
        """The test evaluator ``test`` (computed) against the task's baseline; None: no baseline.

        ``untrained`` is the evaluator of the untrained model on the same test images when
        ``untrained_baseline`` is set, else None.
        """
        return None

    @staticmethod
    def batch_size_of(batch: Any) -> int:
        return len(batch[0])
