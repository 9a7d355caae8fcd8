"""Classification and verification metrics vs scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score, roc_curve, top_k_accuracy_score

from bench.metrics import METRIC_SPEC, MetricInputError
from bench.metrics.classification import (
    choose_threshold,
    classification_metrics,
    eer,
    roc_auc,
    verification_metrics,
)


def _data(seed: int, n: int = 300, c: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    scores = rng.normal(size=(n, c))
    scores[np.arange(n), labels] += rng.uniform(0, 2.5, n)
    return scores, labels


@pytest.mark.parametrize("seed", range(5))
def test_matches_sklearn(seed: int) -> None:
    scores, labels = _data(seed)
    res = classification_metrics(scores, labels)
    pred = scores.argmax(1)
    p, r, f, support = precision_recall_fscore_support(labels, pred, labels=range(7), zero_division=np.nan)
    assert [res["per_class"][k]["precision"] for k in range(7)] == pytest.approx(p)
    assert [res["per_class"][k]["recall"] for k in range(7)] == pytest.approx(r)
    assert [res["per_class"][k]["f1"] for k in range(7)] == pytest.approx(f)
    assert [res["per_class"][k]["support"] for k in range(7)] == list(support)
    for avg in ("macro", "micro"):
        ap, ar, af, _ = precision_recall_fscore_support(labels, pred, labels=range(7), average=avg,
                                                        zero_division=np.nan)
        got = (res[f"{avg}_precision"], res[f"{avg}_recall"], res[f"{avg}_f1"])
        assert got == pytest.approx((ap, ar, af))
    assert res["top1"] == pytest.approx(top_k_accuracy_score(labels, scores, k=1, labels=range(7)))
    assert res["top5"] == pytest.approx(top_k_accuracy_score(labels, scores, k=5, labels=range(7)))
    assert np.array(res["confusion_matrix"]).sum() == 300 and res["spec"] == METRIC_SPEC


def test_never_predicted_class_left_out_of_macro_precision() -> None:
    scores = np.array([[2.0, 1, 0], [2, 1, 0], [0, 2, 1], [2, 1, 0]])
    labels = np.array([0, 1, 1, 2])  # class 2 never predicted: precision 0/0
    res = classification_metrics(scores, labels)
    assert res["per_class"][2]["precision"] is None
    # predictions 0, 0, 1, 0: precision(0) = 1/3, precision(1) = 1/1, class 2 left out
    assert res["macro_precision"] == pytest.approx((1 / 3 + 1.0) / 2)
    assert res["top5"] is None  # fewer than 5 classes


def test_bad_inputs_name_the_sample() -> None:
    scores, labels = _data(0, n=20)
    scores[13, 2] = np.nan
    with pytest.raises(MetricInputError, match="sample #13: scores contain NaN"):
        classification_metrics(scores, labels)
    scores, labels = _data(0, n=20)
    labels[4] = 9
    with pytest.raises(MetricInputError, match=r"sample #4: label 9 is outside \[0, 7\)"):
        classification_metrics(scores, labels)


@pytest.mark.parametrize("seed", range(5))
def test_verification_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    same = rng.random(400) < 0.4
    scores = rng.normal(same * 1.2, 1.0).round(1)  # rounding creates ties
    assert roc_auc(scores, same) == pytest.approx(roc_auc_score(same, scores))
    fpr, tpr, _ = roc_curve(same, scores)
    fnr = 1 - tpr
    i = np.argmin(np.abs(fnr - fpr))
    # Interpolated EER lies between FPR and FNR at the closest ROC point.
    lo, hi = sorted((fpr[i], fnr[i]))
    assert lo - 0.02 <= eer(scores, same) <= hi + 0.02
    thr = choose_threshold(scores, same)
    acc = ((scores >= thr) == same).mean()
    best = max(((scores >= t) == same).mean() for t in np.r_[np.unique(scores), np.inf])
    assert acc == pytest.approx(best)
    res = verification_metrics(scores, same, thr)
    assert res["accuracy"] == pytest.approx(acc) and res["threshold"] == thr


def test_eer_exact_small_case() -> None:
    # scores: same pairs 0.9, 0.6; different pairs 0.7, 0.1.  At t = 0.7: FPR 1/2, FNR 1/2 -> EER 1/2.
    assert eer(np.array([0.9, 0.6, 0.7, 0.1]), np.array([1, 1, 0, 0], bool)) == pytest.approx(0.5)
    assert eer(np.array([0.9, 0.8, 0.2, 0.1]), np.array([1, 1, 0, 0], bool)) == pytest.approx(0.0)
    assert roc_auc(np.array([0.1, 0.2]), np.array([True, True])) is None


def test_verification_bad_score() -> None:
    with pytest.raises(MetricInputError, match="pair #2: score is inf"):
        verification_metrics(np.array([0.1, 0.2, np.inf]), np.array([True, False, True]))
