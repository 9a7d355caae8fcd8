"""The id of each image an evaluator is fed, so per-image samples of two runs can be paired."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench.metrics import MetricInputError


class ImageIds:
    """Ids of the images fed to an evaluator, in update order.

    ``given``: the dataset index of each image in the order they will be fed (the trainer's
    evaluated subset); None: the position in the feed (0, 1, ...), which is the dataset index
    when the whole split is evaluated in order.
    """

    def __init__(self, given: Sequence[int] | np.ndarray | None = None) -> None:
        self.given = None if given is None else np.asarray(given, dtype=np.int64).reshape(-1)
        self.reset()

    def reset(self) -> None:
        """Forget the images seen."""
        self._parts: list[np.ndarray] = []
        self.seen = 0

    def take(self, n: int) -> np.ndarray:
        """Ids of the next ``n`` images fed: ``[n] int64``."""
        lo, hi = self.seen, self.seen + n
        if self.given is None:
            ids = np.arange(lo, hi, dtype=np.int64)
        elif hi > len(self.given):
            raise MetricInputError(f"{hi} images fed, but only {len(self.given)} image ids were given")
        else:
            ids = self.given[lo:hi]
        self.extend(ids)
        return ids

    def extend(self, ids: np.ndarray) -> None:
        """Append ids of images fed elsewhere (a merged worker's)."""
        self._parts.append(np.asarray(ids, dtype=np.int64).reshape(-1))
        self.seen += len(self._parts[-1])

    def array(self) -> np.ndarray:
        """All ids so far: ``[N] int64``."""
        if len(self._parts) != 1:
            self._parts = [np.concatenate(self._parts) if self._parts else np.zeros(0, np.int64)]
        return self._parts[0]
