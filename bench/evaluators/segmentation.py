"""Accumulator for semantic segmentation: dataset confusion matrix + per-image metric sums."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.evaluators import EVALUATORS, EvaluatorSpec
from bench.evaluators._image_ids import ImageIds
from bench.metrics import MetricInputError
from bench.metrics.segmentation import (
    CLASS_METRICS,
    REDUCTIONS,
    background_confmats,
    confusion_matrices,
    from_confmat,
    from_per_image_sums,
    per_image_jaccard,
    per_image_sums,
)


@EVALUATORS.register(
    "semantic_segmentation",
    EvaluatorSpec("semantic_segmentation", "confusion matrix (dataset) and per-image metric sums"),
)
class SegmentationEvaluator:
    """Accumulates both reductions at once, so :meth:`compute` can report either.

    State: the dataset ``[K, K]`` confusion matrix (int64) and, for ``reduction="per_image"``,
    per-class sums/counts of each image's metrics (see ``per_image_sums``).  Everything is
    additive; the float sums make a merged per-image result equal up to float rounding.  It also
    keeps each image's mean IoU and that of an all-background prediction (``[N]`` each, in update
    order) for the baseline sign test, and each image's ``[K, K]`` confusion matrix for
    :meth:`samples`.  ``image_ids``: the dataset index of each image in update order (``ImageIds``).
    """

    def __init__(
        self, num_classes: int, ignore_index: int = 255, class_names: list[str] | None = None,
        image_ids: Sequence[int] | None = None,
    ) -> None:
        if num_classes < 1:
            raise MetricInputError(f"num_classes must be >= 1, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise MetricInputError(f"{len(class_names)} class names for num_classes={num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.class_names = list(class_names) if class_names is not None else None
        self.ids = ImageIds(image_ids)
        self.reset()

    def reset(self) -> None:
        """Forget all images."""
        k, m = self.num_classes, len(CLASS_METRICS)
        self.confmat = np.zeros((k, k), dtype=np.int64)
        self.pi_sums = np.zeros((m, k), dtype=np.float64)
        self.pi_counts = np.zeros((m, k), dtype=np.int64)
        self.acc_sum = 0.0
        self.n_images = 0
        self.image_jaccard: list[np.ndarray] = []
        self.image_jaccard_bg: list[np.ndarray] = []
        self.ids.reset()
        # int32: a count of pixels of one image; the samples are stored as JSON, so size matters.
        self._confmats: list[np.ndarray] = []

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add a batch of label maps: ``pred, target: [N, H, W] int`` (target may hold ignore_index)."""
        pred, target = np.asarray(pred), np.asarray(target)
        if pred.ndim != 3:
            raise MetricInputError(f"pred must be [N, H, W], got shape {pred.shape}")
        cms = confusion_matrices(pred, target, self.num_classes, self.ignore_index)  # one bincount
        self.confmat += cms.sum(axis=0)
        sums, counts, acc_sum, n = per_image_sums(cms)
        self.pi_sums += sums
        self.pi_counts += counts
        self.acc_sum += acc_sum
        self.n_images += n
        self.image_jaccard.append(per_image_jaccard(cms))
        self.image_jaccard_bg.append(per_image_jaccard(background_confmats(cms)))
        self.ids.take(len(cms))
        self._confmats.append(cms.astype(np.int32))

    def per_image_jaccard(self) -> tuple[np.ndarray, np.ndarray]:
        """``(model [N], all background [N])``: each image's mean IoU, NaN where undefined."""
        cat = [np.concatenate(x) if x else np.zeros(0) for x in (self.image_jaccard, self.image_jaccard_bg)]
        return cat[0], cat[1]

    def compute(self, reduction: str = "dataset") -> dict[str, Any]:
        """Metrics with ``reduction`` ``"dataset"`` (default) or ``"per_image"``."""
        if reduction == "dataset":
            return from_confmat(self.confmat, self.class_names)
        if reduction == "per_image":
            return from_per_image_sums(self.pi_sums, self.pi_counts, self.acc_sum, self.n_images,
                                       self.class_names)
        raise MetricInputError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")

    def merge(self, other: SegmentationEvaluator) -> SegmentationEvaluator:
        """Add ``other``'s state into this evaluator (in place); returns self."""
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise MetricInputError("cannot merge evaluators with different num_classes/ignore_index")
        self.confmat += other.confmat
        self.pi_sums += other.pi_sums
        self.pi_counts += other.pi_counts
        self.acc_sum += other.acc_sum
        self.n_images += other.n_images
        self.image_jaccard += other.image_jaccard
        self.image_jaccard_bg += other.image_jaccard_bg
        o = other.samples()
        self.ids.extend(o["image_id"])
        self._confmats.append(o["confmat"])
        return self

    def samples(self) -> dict[str, np.ndarray]:
        """Per-image statistics (``bench.metrics.bootstrap``): ``image_id [N] int64`` and ``confmat
        [N, K, K] int32``, each image's confusion matrix (rows = target); both reductions follow from it."""
        k = self.num_classes
        if len(self._confmats) != 1:
            self._confmats = [np.concatenate(self._confmats) if self._confmats else np.zeros((0, k, k), np.int32)]
        return {"image_id": self.ids.array(), "confmat": self._confmats[0]}

    def state(self) -> dict[str, Any]:
        """Plain picklable state."""
        return {"num_classes": self.num_classes, "ignore_index": self.ignore_index,
                "class_names": self.class_names, "confmat": self.confmat.copy(),
                "pi_sums": self.pi_sums.copy(), "pi_counts": self.pi_counts.copy(),
                "acc_sum": float(self.acc_sum), "n_images": int(self.n_images),
                "image_jaccard": self.per_image_jaccard(),
                "samples": {k: v.copy() for k, v in self.samples().items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SegmentationEvaluator:
        """Inverse of :meth:`state`."""
        ev = cls(state["num_classes"], state["ignore_index"], state["class_names"])
        ev.confmat = np.asarray(state["confmat"], dtype=np.int64).copy()
        ev.pi_sums = np.asarray(state["pi_sums"], dtype=np.float64).copy()
        ev.pi_counts = np.asarray(state["pi_counts"], dtype=np.int64).copy()
        ev.acc_sum = float(state["acc_sum"])
        ev.n_images = int(state["n_images"])
        model, background = state.get("image_jaccard", (np.zeros(0), np.zeros(0)))
        ev.image_jaccard, ev.image_jaccard_bg = [np.asarray(model, np.float64)], [np.asarray(background, np.float64)]
        ev.ids.extend(state["samples"]["image_id"])
        ev._confmats = [np.asarray(state["samples"]["confmat"], np.int32).reshape(-1, ev.num_classes, ev.num_classes)]
        return ev
