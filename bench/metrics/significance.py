"""Is a test score significantly above a trivial baseline?  One-sided tests at ``ALPHA``.

* **Classification** (and the nearest-class-mean top-1 of verification models): the baseline
  predicts the majority class of the evaluated test images, so its top-1 is ``max_k n_k / N``.
  The test is the exact one-sided binomial test of the number of correct predictions ``k`` out of
  ``N`` against ``p0`` = that rate (H1: accuracy > p0).
* **Segmentation and detection**: a one-sided **sign test** over the evaluated test images, pairing
  each image's score under the model with its score under the baseline (segmentation: per-image
  mean IoU vs predicting all background; detection: per-image AP at IoU 0.5 vs the untrained
  model).  Images where both score the same (or either is undefined) are dropped; the number of
  images where the model wins is tested against Binomial(n, 1/2) (H1: the model wins more often).
  The sign test needs no assumption about the distribution of the per-image differences (IoU and
  AP are bounded and often tied at 0 or 1), only that images are independent.

A score that is not significantly above its baseline is reported as "≈ baseline": with this
many test images the number is indistinguishable from doing nothing useful.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.metrics import MetricInputError

#: Significance level of every baseline test.
ALPHA = 0.05


@dataclass(frozen=True)
class BaselineTest:
    """A baseline and the outcome of testing a model's score against it.

    ``score`` is the baseline's value of ``metric`` on the same test images; ``p_value`` is the
    one-sided p-value of H0 "the model is not better than the baseline" (None: no test possible).
    """

    name: str
    metric: str
    score: float | None
    test: str
    p_value: float | None

    @property
    def significant(self) -> bool | None:
        """True when ``p_value < ALPHA``; None when there was nothing to test."""
        return None if self.p_value is None else self.p_value < ALPHA


def binomial_p_greater(correct: int, n: int, p0: float) -> float:
    """Exact one-sided binomial p-value ``P(X >= correct)``, ``X ~ Binomial(n, p0)``."""
    from scipy.stats import binomtest

    if n < 1 or not 0 <= correct <= n:
        raise MetricInputError(f"need 0 <= correct <= n and n >= 1, got correct={correct}, n={n}")
    if not 0.0 <= p0 <= 1.0:
        raise MetricInputError(f"p0 must be in [0, 1], got {p0}")
    return float(binomtest(int(correct), int(n), float(p0), alternative="greater").pvalue)


def sign_test_greater(model: np.ndarray, baseline: np.ndarray) -> float | None:
    """One-sided sign-test p-value that ``model [N]`` beats ``baseline [N]`` (paired per image).

    Pairs with a NaN are dropped (None when none is left); ties are dropped from the test, and
    when every pair ties the model is indistinguishable from the baseline: p = 1.
    """
    a, b = np.asarray(model, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise MetricInputError(f"paired scores must be two [N] arrays, got shapes {a.shape} and {b.shape}")
    defined = ~(np.isnan(a) | np.isnan(b))
    if not defined.any():
        return None
    keep = defined & (a != b)
    n = int(keep.sum())
    if n == 0:
        return 1.0
    return binomial_p_greater(int((a[keep] > b[keep]).sum()), n, 0.5)


def majority_baseline(confusion: np.ndarray) -> BaselineTest:
    """Top-1 of ``confusion [C, C]`` (rows = true class) against always predicting the largest class."""
    cm = np.asarray(confusion, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise MetricInputError(f"confusion must be [C, C], got shape {cm.shape}")
    n = int(cm.sum())
    if n == 0:
        return BaselineTest("majority class", "top1", None, "binomial, one-sided", None)
    p0 = float(cm.sum(axis=1).max() / n)
    return BaselineTest("majority class", "top1", p0, "binomial, one-sided",
                        binomial_p_greater(int(np.trace(cm)), n, p0))


def paired_baseline(
    name: str, metric: str, score: float | None, model: np.ndarray, baseline: np.ndarray, per_image: str
) -> BaselineTest:
    """A baseline scoring ``score`` on ``metric``, tested with the sign test over per-image scores.

    ``model, baseline: [N]`` are the per-image ``per_image`` scores (e.g. ``"mean IoU"``).
    """
    return BaselineTest(name, metric, score, f"sign test over images ({per_image}), one-sided",
                        sign_test_greater(model, baseline))
