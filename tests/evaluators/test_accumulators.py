"""Every evaluator: merged worker states (shipped through pickle) equal one pass over all data."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from bench.evaluators import EVALUATORS, EvaluatorSpec
from bench.metrics import METRIC_SPEC, MetricInputError
from bench.metrics.detection import evaluate_coco
from bench.metrics.synthetic import random_coco

GT_BBOX, PREDS_BBOX = random_coco(21, n_images=16)
GT_SEGM, PREDS_SEGM = random_coco(22, n_images=8, iou_type="segm")


def _cls_batches() -> list[tuple[Any, ...]]:
    rng = np.random.default_rng(0)
    out = []
    for n in (13, 40, 7):
        labels = rng.integers(0, 6, n)
        scores = rng.normal(size=(n, 6))
        scores[np.arange(n), labels] += 1.0
        out.append((scores, labels))
    return out


def _seg_batches() -> list[tuple[Any, ...]]:
    rng = np.random.default_rng(1)
    out = []
    for n in (2, 3, 1):
        t = rng.integers(0, 4, (n, 9, 11))
        p = np.where(rng.random(t.shape) < 0.7, t, rng.integers(0, 4, t.shape))
        t[rng.random(t.shape) < 0.1] = 255
        out.append((p, t))
    return out


def _ver_batches() -> list[tuple[Any, ...]]:
    rng = np.random.default_rng(2)
    out = []
    for n in (50, 31, 20):
        same = rng.random(n) < 0.5
        out.append((rng.normal(same * 1.0, 1.0), same))
    return out


def _split(preds: list[dict[str, Any]], parts: int) -> list[tuple[Any, ...]]:
    # Contiguous chunks: worker order == data order, the contract for exact tie-breaking.
    bounds = np.linspace(0, len(preds), parts + 1).astype(int)
    return [(preds[a:b],) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _emb_batches() -> list[tuple[Any, ...]]:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 40)
    emb = rng.normal(size=(40, 5)) + labels[:, None]  # class-dependent, so NCM and AUC are non-trivial
    return [(emb[a:a + 10], labels[a:a + 10]) for a in range(0, 40, 10)]


EMB_KW = {"num_classes": 3, "class_means": np.stack([np.full(5, k, float) for k in range(3)]), "threshold": -2.0}

# task -> (factory, batches, compute kwargs, from_state kwargs)
CASES: dict[str, tuple[Callable[[], Any], list[tuple[Any, ...]], dict[str, Any], dict[str, Any]]] = {
    "classification": (lambda: EVALUATORS.get("classification").obj(6, [f"c{i}" for i in range(6)]),
                       _cls_batches(), {}, {}),
    "semantic_segmentation": (lambda: EVALUATORS.get("semantic_segmentation").obj(4), _seg_batches(), {}, {}),
    "verification": (lambda: EVALUATORS.get("verification").obj(), _ver_batches(), {"threshold": 0.4}, {}),
    "embedding": (lambda: EVALUATORS.get("embedding").obj(**EMB_KW), _emb_batches(), {}, EMB_KW),
    "detection": (lambda: EVALUATORS.get("detection").obj(GT_BBOX), _split(PREDS_BBOX, 3), {},
                  {"gt": GT_BBOX}),
    # random_coco's segm results carry a bbox as well: scored on both.
    "instance_segmentation": (lambda: EVALUATORS.get("instance_segmentation").obj(GT_SEGM), _split(PREDS_SEGM, 3),
                              {}, {"gt": GT_SEGM}),
}


def test_every_registered_evaluator_is_tested() -> None:
    assert set(EVALUATORS.names()) == set(CASES)
    for e in EVALUATORS.entries():
        assert isinstance(e.meta, EvaluatorSpec) and e.meta.task == e.name


def _close(a: Any, b: Any) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _close(a[k], b[k])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _close(x, y)
    elif isinstance(a, float):
        assert b == pytest.approx(a, abs=1e-12)
    else:
        assert a == b


@pytest.mark.parametrize("task", sorted(CASES))
def test_merge_equals_all_at_once(task: str) -> None:
    make, batches, kw, state_kw = CASES[task]
    whole = make()
    for b in batches:
        whole.update(*b)
    expected = whole.compute(**kw)
    assert expected["spec"] == METRIC_SPEC

    # Each batch on its own "worker"; states cross a process boundary as pickles.
    cls = type(whole)
    states = []
    for b in batches:
        w = make()
        w.update(*b)
        states.append(pickle.loads(pickle.dumps(w.state())))
    driver = cls.from_state(states[0], **state_kw)
    for s in states[1:]:
        assert driver.merge(cls.from_state(s, **state_kw)) is driver
    _close(expected, driver.compute(**kw))

    # reset() really forgets
    driver.reset()
    driver.update(*batches[0])
    single = make()
    single.update(*batches[0])
    _close(single.compute(**kw), driver.compute(**kw))


def test_detection_evaluator_equals_evaluate_coco_segm() -> None:
    ev = EVALUATORS.get("detection").obj(GT_SEGM, iou_type="segm", voc_iou=0.6)
    half = len(PREDS_SEGM) // 2
    ev.update(PREDS_SEGM[:half])
    other = EVALUATORS.get("detection").obj(GT_SEGM, iou_type="segm", voc_iou=0.6)
    other.update(PREDS_SEGM[half:])
    _close(evaluate_coco(GT_SEGM, PREDS_SEGM, "segm", voc_iou=0.6), ev.merge(other).compute())


def test_instance_segmentation_evaluator_is_bbox_plus_prefixed_segm() -> None:
    ev = EVALUATORS.get("instance_segmentation").obj(GT_SEGM)
    ev.update(PREDS_SEGM)
    got = ev.compute()
    box = evaluate_coco(GT_SEGM, PREDS_SEGM, "bbox")
    # Mask AP without the boxes: pycocotools would take every mask's area from its box otherwise.
    mask = evaluate_coco(GT_SEGM, [{k: v for k, v in p.items() if k != "bbox"} for p in PREDS_SEGM], "segm")
    assert got["mAP"] == box["mAP"] and got["mAP_small"] == box["mAP_small"]
    assert got["mask_mAP"] == mask["mAP"] and got["mask_mAP_small"] == mask["mAP_small"]
    assert got["mask_per_class"] == mask["per_class"] and got["mask_mAP"] != got["mAP"]


def test_detection_update_error_names_batch_and_record() -> None:
    ev = EVALUATORS.get("detection").obj(GT_BBOX)
    ev.update(PREDS_BBOX[:5])
    bad = [dict(p) for p in PREDS_BBOX[5:10]]
    bad[2]["score"] = float("nan")
    pattern = r"update batch #1: prediction #2 \(image_id=\d+\): score is NaN"
    with pytest.raises(MetricInputError, match=pattern):
        ev.update(bad)


def test_segmentation_per_image_reduction_merges() -> None:
    make = CASES["semantic_segmentation"][0]
    batches = _seg_batches()
    whole, a, b = make(), make(), make()
    for x in batches:
        whole.update(*x)
    a.update(*batches[0])
    b.update(*batches[1])
    b.update(*batches[2])
    _close(whole.compute("per_image"), a.merge(b).compute("per_image"))


def test_verification_threshold_from_validation() -> None:
    val, test = EVALUATORS.get("verification").obj(), EVALUATORS.get("verification").obj()
    for s, y in _ver_batches()[:2]:
        val.update(s, y)
    test.update(*_ver_batches()[2])
    thr = val.fit_threshold()
    res = test.compute(threshold=thr)
    s, y = _ver_batches()[2]
    assert res["accuracy"] == pytest.approx(((s >= thr) == y).mean())
    assert test.compute()["accuracy"] is None


# ---- per-image samples (bench.metrics.bootstrap) ----------------------------------------------

SAMPLE_EVALUATORS = ["classification", "semantic_segmentation", "embedding", "detection"]


@pytest.mark.parametrize("task", SAMPLE_EVALUATORS)
def test_samples_survive_state_and_merge(task: str) -> None:
    from bench.evaluators._image_ids import ImageIds

    make, batches, _, state_kw = CASES[task]
    whole = make()
    for b in batches:
        whole.update(*b)
    expected = whole.samples()
    cls, states, seen = type(whole), [], 0
    for b in batches:
        w = make()
        if hasattr(w, "ids"):  # each worker knows the dataset indices of its share
            n = len(b[1])
            w.ids = ImageIds(range(seen, seen + n))
            seen += n
        w.update(*b)
        states.append(pickle.loads(pickle.dumps(w.state())))
    driver = cls.from_state(states[0], **state_kw)
    for s in states[1:]:
        driver.merge(cls.from_state(s, **state_kw))
    got = driver.samples()
    assert got.keys() == expected.keys()
    for k in expected:
        assert got[k].dtype == expected[k].dtype, k
        np.testing.assert_array_equal(got[k], expected[k], err_msg=k)
    assert len(np.unique(got["image_id"])) == len(got["image_id"])


def test_image_ids_are_the_given_dataset_indices() -> None:
    ev = EVALUATORS.get("classification").obj(6, image_ids=[5, 9, 11, 40])
    scores, labels = _cls_batches()[0]
    ev.update(scores[:3], labels[:3])
    ev.update(scores[3:4], labels[3:4])
    assert ev.samples()["image_id"].tolist() == [5, 9, 11, 40]
    with pytest.raises(MetricInputError, match="5 images fed, but only 4 image ids were given"):
        ev.update(scores[4:5], labels[4:5])
    ev.reset()
    ev.update(scores[:2], labels[:2])
    assert ev.samples()["image_id"].tolist() == [5, 9]
    seg = EVALUATORS.get("semantic_segmentation").obj(4)
    seg.update(*_seg_batches()[1])
    assert seg.samples()["image_id"].tolist() == [0, 1, 2]  # default: position in the feed
