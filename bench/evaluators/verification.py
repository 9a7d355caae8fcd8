"""Evaluating an embedding network: verification on sampled pairs and a nearest-class-mean classifier.

The accumulator keeps the split's embeddings and labels (state concatenates across workers); pairs
and metrics are made in :meth:`EmbeddingEvaluator.compute`, so every model is scored on the same
pairs of the same split.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.evaluators import EVALUATORS, EvaluatorSpec
from bench.evaluators._image_ids import ImageIds
from bench.evaluators.classification import ClassificationEvaluator, VerificationEvaluator
from bench.metrics import MetricInputError

PAIR_SEED = 20_240_601  # fixed: every model and run sees the same evaluation pairs


def sample_pairs(labels: np.ndarray, seed: int = PAIR_SEED) -> np.ndarray:
    """One pair per image: ``[N', 2]`` indices into ``labels: [N] int``, half same-class, half not.

    Image ``i`` is paired with a random other image of its class (even ``i`` in a random order) or
    of another class (odd), so the pair set is balanced whatever the class frequencies.  Images
    with no possible partner (a class of one, or a single class) are skipped.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    by_class = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    pairs = []
    for rank, i in enumerate(rng.permutation(len(labels))):
        same = by_class[labels[i]]
        pool = same[same != i] if rank % 2 == 0 else np.flatnonzero(labels != labels[i])
        if len(pool):
            pairs.append((i, int(pool[rng.integers(len(pool))])))
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def pair_scores(emb: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Similarity of each pair: minus the Euclidean distance of ``emb: [N, D]`` rows; ``[P]``."""
    return -np.linalg.norm(emb[pairs[:, 0]] - emb[pairs[:, 1]], axis=1)


def class_means(emb: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``[K, D]`` mean embedding per class (NaN rows for classes without samples)."""
    means = np.full((num_classes, emb.shape[1]), np.nan)
    for k in range(num_classes):
        if (labels == k).any():
            means[k] = emb[labels == k].mean(axis=0)
    return means


def ncm_scores(emb: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Nearest-class-mean scores ``[N, K]``: minus the distance to each class mean (unseen class: -inf)."""
    d = np.linalg.norm(emb[:, None, :] - means[None], axis=2)
    return np.where(np.isnan(d), -np.inf, -d)


@EVALUATORS.register(
    "embedding",
    EvaluatorSpec("embedding", "embeddings and labels of a split (concatenated); pairs + nearest class mean"),
)
class EmbeddingEvaluator:
    """Verification (ROC AUC, EER, accuracy at a threshold) and NCM classification of embeddings.

    ``class_means [K, D]`` come from training images (never the evaluated split's labels);
    ``threshold`` is the one chosen on validation pairs.  Without them, the NCM keys or the
    accuracy are None.  ``image_ids``: the dataset index of each image in update order (``ImageIds``).
    """

    def __init__(self, num_classes: int, class_names: list[str] | None = None,
                 class_means: np.ndarray | None = None, threshold: float | None = None,
                 image_ids: Sequence[int] | None = None) -> None:
        self.num_classes, self.class_names = num_classes, class_names
        self.means, self.threshold = class_means, threshold
        self.ids = ImageIds(image_ids)
        self.reset()

    def reset(self) -> None:
        """Forget all samples."""
        self._emb: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        self.ids.reset()

    def update(self, embeddings: np.ndarray, labels: np.ndarray) -> None:
        """Add a batch: ``embeddings: [B, D] float``, ``labels: [B] int``."""
        e, y = np.asarray(embeddings, np.float64), np.asarray(labels)
        if e.ndim != 2 or y.shape != (len(e),):
            raise MetricInputError(f"embeddings must be [B, D] with labels [B]; got {e.shape} and {y.shape}")
        self.ids.take(len(e))
        self._append(e, y)

    def _append(self, e: np.ndarray, y: np.ndarray) -> None:
        self._emb.append(e)
        self._labels.append(y.astype(np.int64))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All ``(embeddings [N, D], labels [N])`` so far."""
        if not self._emb:
            return np.zeros((0, 0)), np.zeros(0, np.int64)
        return np.concatenate(self._emb), np.concatenate(self._labels)

    def pairs(self) -> VerificationEvaluator:
        """The split's pair scores in a verification accumulator."""
        emb, labels = self.arrays()
        ver = VerificationEvaluator()
        if len(emb):
            pairs = sample_pairs(labels)
            ver.update(pair_scores(emb, pairs), labels[pairs[:, 0]] == labels[pairs[:, 1]])
        return ver

    def ncm_confusion(self) -> np.ndarray | None:
        """Nearest-class-mean top-1 confusion ``[K, K]`` (rows = true class); None without class means."""
        emb, labels = self.arrays()
        if self.means is None or not len(emb):
            return None
        cls = ClassificationEvaluator(self.num_classes, self.class_names)
        cls.update(ncm_scores(emb, self.means), labels)
        return cls.confusion

    def compute(self) -> dict[str, Any]:
        """Verification keys (``roc_auc, eer, accuracy, threshold, num_pairs``) plus NCM ``top1 … macro_f1``."""
        emb, labels = self.arrays()
        out = self.pairs().compute(self.threshold)
        cls = ClassificationEvaluator(self.num_classes, self.class_names)
        if self.means is not None and len(emb):
            cls.update(ncm_scores(emb, self.means), labels)
            ncm = cls.compute()
        else:
            ncm = {k: None for k in cls.compute() if k not in ("spec", "per_class", "confusion_matrix")}
        ncm.pop("spec", None)
        return {**ncm, **out}

    def samples(self) -> dict[str, np.ndarray]:
        """Per-image statistics (``bench.metrics.bootstrap``), from the same pairs as :meth:`compute`.

        ``image_id [N] int64``; per pair ``pair_anchor [P] int32`` (the image the pair was drawn
        for: one pair per image, see ``sample_pairs``), ``pair_score [P]`` (float32 when exact),
        ``pair_same [P] bool`` and, with a threshold, ``pair_correct [P] bool``; with class means,
        per image ``label, pred [N] int32`` (nearest-class-mean top-1).
        """
        emb, labels = self.arrays()
        pairs = sample_pairs(labels) if len(emb) else np.zeros((0, 2), np.int64)
        scores = pair_scores(emb, pairs) if len(emb) else np.zeros(0)
        same = labels[pairs[:, 0]] == labels[pairs[:, 1]]
        scores32 = scores.astype(np.float32)
        out = {"image_id": self.ids.array(), "pair_anchor": pairs[:, 0].astype(np.int32),
               "pair_score": scores32 if np.array_equal(scores32, scores) else scores, "pair_same": same}
        if self.threshold is not None:
            out["pair_correct"] = (scores >= self.threshold) == same  # as verification_metrics
        if self.means is not None and len(emb):
            out["label"] = labels.astype(np.int32)
            out["pred"] = np.argmax(ncm_scores(emb, self.means), axis=1).astype(np.int32)  # first on ties
        return out

    def merge(self, other: EmbeddingEvaluator) -> EmbeddingEvaluator:
        """Append ``other``'s samples (in place); returns self."""
        e, y = other.arrays()
        if len(e):
            self.ids.extend(other.ids.array())
            self._append(e, y)
        return self

    def state(self) -> dict[str, Any]:
        """Plain picklable state."""
        e, y = self.arrays()
        return {"embeddings": e, "labels": y, "image_id": self.ids.array().copy()}

    @classmethod
    def from_state(cls, state: dict[str, Any], **kwargs: Any) -> EmbeddingEvaluator:
        """Inverse of :meth:`state`; ``kwargs`` as in the constructor."""
        ev = cls(**kwargs)
        if len(state["embeddings"]):
            ev.ids.extend(state["image_id"])
            ev._append(np.asarray(state["embeddings"], np.float64), np.asarray(state["labels"]))
        return ev
