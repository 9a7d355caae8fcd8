"""Accumulators for classification (confusion matrix + top-5 hits) and verification (pair scores)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.evaluators import EVALUATORS, EvaluatorSpec
from bench.evaluators._image_ids import ImageIds
from bench.metrics import MetricInputError
from bench.metrics.classification import (
    check_pairs,
    check_scores_labels,
    choose_threshold,
    confusion_from_scores,
    from_counts,
    topk_correct,
    verification_metrics,
)


@EVALUATORS.register(
    "classification",
    EvaluatorSpec("classification", "top-1 confusion matrix and top-5 hit count (both additive)"),
)
class ClassificationEvaluator:
    """Accumulates ``[C, C]`` top-1 confusion counts and the number of top-5 hits, plus each
    image's label, top-1 prediction and top-5 hit for :meth:`samples`.

    The counts are additive integers and the per-image arrays concatenate, so merge is exact.
    ``image_ids``: the dataset index of each image in update order (see ``ImageIds``).
    """

    def __init__(
        self, num_classes: int, class_names: list[str] | None = None, image_ids: Sequence[int] | None = None
    ) -> None:
        if num_classes < 1:
            raise MetricInputError(f"num_classes must be >= 1, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise MetricInputError(f"{len(class_names)} class names for num_classes={num_classes}")
        self.num_classes = int(num_classes)
        self.class_names = list(class_names) if class_names is not None else None
        self.ids = ImageIds(image_ids)
        self.reset()

    def reset(self) -> None:
        """Forget all samples."""
        self.confusion = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.top5_correct = 0
        self.ids.reset()
        self._labels: list[np.ndarray] = []
        self._preds: list[np.ndarray] = []
        self._top5: list[np.ndarray] = []

    def update(self, scores: np.ndarray, labels: np.ndarray) -> None:
        """Add a batch: ``scores: [N, C] float`` (logits or probabilities), ``labels: [N] int``."""
        scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
        check_scores_labels(scores, labels, self.num_classes)
        self.confusion += confusion_from_scores(scores, labels, self.num_classes)
        self.ids.take(len(labels))
        self._labels.append(labels.astype(np.int32))
        self._preds.append(np.argmax(scores, axis=1).astype(np.int32))  # first on ties, as the confusion
        if self.num_classes >= 5:
            self.top5_correct += topk_correct(scores, labels, 5)
            true = scores[np.arange(len(labels)), labels]
            self._top5.append((scores > true[:, None]).sum(axis=1) < 5)  # as topk_correct counts

    def compute(self) -> dict[str, Any]:
        """See :func:`bench.metrics.classification.classification_metrics` for the keys."""
        top5 = self.top5_correct if self.num_classes >= 5 else None
        return from_counts(self.confusion, top5, self.class_names)

    def merge(self, other: ClassificationEvaluator) -> ClassificationEvaluator:
        """Add ``other``'s counts into this evaluator (in place); returns self."""
        if other.num_classes != self.num_classes:
            raise MetricInputError(f"cannot merge {other.num_classes}-class state into {self.num_classes}")
        self.confusion += other.confusion
        self.top5_correct += other.top5_correct
        o = other.samples()
        self.ids.extend(o["image_id"])
        self._labels.append(o["label"])
        self._preds.append(o["pred"])
        if "top5" in o:
            self._top5.append(o["top5"])
        return self

    def samples(self) -> dict[str, np.ndarray]:
        """Per-image statistics (``bench.metrics.bootstrap``): ``image_id [N] int64``, ``label,
        pred [N] int32`` (top-1, first class on ties) and, with >= 5 classes, ``top5 [N] bool``."""
        out = {"image_id": self.ids.array(), "label": _cat(self._labels, np.int32), "pred": _cat(self._preds, np.int32)}
        if self.num_classes >= 5:
            out["top5"] = _cat(self._top5, bool)
        return out

    def state(self) -> dict[str, Any]:
        """Plain picklable state."""
        return {"num_classes": self.num_classes, "class_names": self.class_names,
                "confusion": self.confusion.copy(), "top5_correct": int(self.top5_correct),
                "samples": {k: v.copy() for k, v in self.samples().items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ClassificationEvaluator:
        """Inverse of :meth:`state`."""
        ev = cls(state["num_classes"], state["class_names"])
        ev.confusion = np.asarray(state["confusion"], dtype=np.int64).copy()
        ev.top5_correct = int(state["top5_correct"])
        s = state["samples"]
        ev.ids.extend(s["image_id"])
        ev._labels, ev._preds = [np.asarray(s["label"], np.int32)], [np.asarray(s["pred"], np.int32)]
        ev._top5 = [np.asarray(s["top5"], bool)] if "top5" in s else []
        return ev


def _cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    """Concatenation of per-batch arrays (empty ``[0]`` of ``dtype`` without any)."""
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


@EVALUATORS.register(
    "verification",
    EvaluatorSpec("verification", "pair scores and same/different labels (concatenated)"),
)
class VerificationEvaluator:
    """Accumulates pair scores (higher = more similar) and ``same`` labels.

    Threshold protocol: run one evaluator on the validation pairs and call :meth:`fit_threshold`;
    pass that threshold to the test evaluator's :meth:`compute`.  Without a threshold,
    ``accuracy`` and ``threshold`` are None (AUC and EER need none).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget all pairs."""
        self._scores: list[np.ndarray] = []
        self._same: list[np.ndarray] = []

    def update(self, scores: np.ndarray, same: np.ndarray) -> None:
        """Add a batch: ``scores: [N] float``, ``same: [N] bool``."""
        s, y = np.asarray(scores, dtype=np.float64), np.asarray(same)
        check_pairs(s, y)
        self._scores.append(s.copy())
        self._same.append(y.astype(bool))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All pairs so far: ``(scores [N], same [N])``."""
        if not self._scores:
            return np.zeros(0), np.zeros(0, dtype=bool)
        self._scores, self._same = [np.concatenate(self._scores)], [np.concatenate(self._same)]
        return self._scores[0], self._same[0]

    def fit_threshold(self) -> float:
        """Accuracy-maximising threshold on the accumulated (validation) pairs."""
        return choose_threshold(*self.arrays())

    def compute(self, threshold: float | None = None) -> dict[str, Any]:
        """``roc_auc, eer, accuracy, threshold, num_pairs, spec`` (accuracy at ``threshold``)."""
        return verification_metrics(*self.arrays(), threshold=threshold)

    def merge(self, other: VerificationEvaluator) -> VerificationEvaluator:
        """Append ``other``'s pairs (in place); returns self."""
        s, y = other.arrays()
        self._scores.append(s.copy())
        self._same.append(y.copy())
        return self

    def state(self) -> dict[str, Any]:
        """Plain picklable state."""
        s, y = self.arrays()
        return {"scores": s.copy(), "same": y.copy()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> VerificationEvaluator:
        """Inverse of :meth:`state`."""
        ev = cls()
        ev.update(state["scores"], state["same"])
        return ev
