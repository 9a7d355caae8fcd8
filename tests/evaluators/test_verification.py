"""Embedding evaluation: the pair protocol, nearest class mean (scikit-learn oracle) and the Siamese losses."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestCentroid

from bench.evaluators.verification import EmbeddingEvaluator, class_means, ncm_scores, pair_scores, sample_pairs
from bench.models.verification._siamese import contrastive_loss, triplet_loss


def test_pairs_are_balanced_valid_and_fixed() -> None:
    labels = np.repeat(np.arange(4), [50, 30, 15, 5])
    pairs = sample_pairs(labels)
    assert len(pairs) == len(labels)
    assert (pairs[:, 0] != pairs[:, 1]).all()
    same = labels[pairs[:, 0]] == labels[pairs[:, 1]]
    assert same.sum() == len(labels) // 2  # half same-class, whatever the class sizes
    assert np.array_equal(pairs, sample_pairs(labels))  # every model sees the same pairs


def test_ncm_matches_sklearn_nearest_centroid() -> None:
    rng = np.random.default_rng(0)
    y_tr, y_te = rng.integers(0, 5, 200), rng.integers(0, 5, 100)
    x_tr = rng.normal(size=(200, 8)) + y_tr[:, None] * 0.7
    x_te = rng.normal(size=(100, 8)) + y_te[:, None] * 0.7
    ours = ncm_scores(x_te, class_means(x_tr, y_tr, 5)).argmax(1)
    ref = NearestCentroid().fit(x_tr, y_tr).predict(x_te)
    assert np.array_equal(ours, ref)


def test_evaluator_reports_verification_and_ncm() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 90)
    emb = rng.normal(size=(90, 4)) * 0.3 + np.eye(3, 4)[y] * 2
    means = class_means(emb, y, 3)
    ev = EmbeddingEvaluator(3, ["a", "b", "c"], class_means=means, threshold=-1.0)
    ev.update(emb[:40], y[:40])
    ev.update(emb[40:], y[40:])
    res = ev.compute()
    pairs = sample_pairs(y)
    s, same = pair_scores(emb, pairs), y[pairs[:, 0]] == y[pairs[:, 1]]
    assert res["roc_auc"] == roc_auc_score(same, s)
    assert res["accuracy"] == ((s >= -1.0) == same).mean()
    assert res["top1"] == 1.0 and res["num_pairs"] == 90 and res["spec"].startswith("bench-metrics/")
    bare = EmbeddingEvaluator(3).compute() | {}
    assert bare["top1"] is None and "macro_f1" in bare


def test_contrastive_loss_formula() -> None:
    # Two same-class points at distance 0.6 and one other-class point at distance 0.3 / 0.9 from them.
    emb = torch.tensor([[0.0, 0.0], [0.6, 0.0], [0.0, 0.3]])
    y = torch.tensor([0, 0, 1])
    margin = 1.0
    d_neg = torch.tensor([0.3, (0.36 + 0.09) ** 0.5])
    expected = 0.5 * (0.6 ** 2 + ((margin - d_neg) ** 2).mean())
    assert torch.isclose(contrastive_loss(emb, y, margin), expected.float(), atol=1e-6)


def test_triplet_loss_formula_uses_violating_triplets() -> None:
    emb = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.5], [5.0, 5.0]])
    y = torch.tensor([0, 0, 1, 1])
    m = 0.2
    d = torch.cdist(emb, emb)
    terms = [d[a, p] - d[a, n] + m for a, p in ((0, 1), (1, 0), (2, 3), (3, 2)) for n in range(4) if y[n] != y[a]]
    active = [t for t in terms if t > 0]
    assert torch.isclose(triplet_loss(emb, y, m), torch.stack(active).mean(), atol=1e-5)
    # a batch of one class has no triplet: zero loss that still backpropagates
    assert triplet_loss(emb[:2].requires_grad_(), y[:2], m).item() == 0.0
