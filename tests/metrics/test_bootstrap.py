"""Resampling test images from the evaluators' per-image samples: exact re-accumulation and the CIs.

Oracles: all-ones counts equal ``compute()``; any counts equal the metrics of the literally
duplicated test set (scikit-learn for classification, the evaluator for segmentation, ``evaluate_coco``,
pycocotools and the literal VOC devkit loop for detection, where duplicated images get new ids).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from coco_ref import devkit_voc, pycocotools_eval

from bench.evaluators.classification import ClassificationEvaluator
from bench.evaluators.detection import DetectionEvaluator
from bench.evaluators.instance_segmentation import InstanceSegmentationEvaluator
from bench.evaluators.segmentation import SegmentationEvaluator
from bench.evaluators.verification import EmbeddingEvaluator
from bench.metrics.bootstrap import (
    TASK_METRICS,
    PairedBootstrap,
    bootstrap_ci,
    load_samples,
    paired_bootstrap,
    resample_metrics,
)
from bench.metrics.detection import (
    COCO_IOU_THRESHOLDS,
    COCO_RECALLS,
    coco_match,
    evaluate_coco,
    parse_ground_truth,
    parse_predictions,
)
from bench.metrics.synthetic import random_coco

# ---- test sets: an evaluator filled with synthetic data, per task ----------------------------


def _cls_data(n: int, seed: int, c: int = 7, signal: float = 1.2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    scores = rng.normal(size=(n, c))
    scores[np.arange(n), labels] += signal
    return scores, labels


def _seg_data(n: int, seed: int, k: int = 4, right: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    target = rng.integers(0, k, (n, 6, 7))
    target[:, :2] = 0  # mostly background on top, so classes differ in size
    pred = np.where(rng.random(target.shape) < right, target, rng.integers(0, k, target.shape))
    target[rng.random(target.shape) < 0.05] = 255
    return pred, target


def _untie(preds: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Distinct scores within each (image, class); ties across images stay (see the bootstrap docstring)."""
    rng = np.random.default_rng(seed)
    seen: set[tuple[int, int, float]] = set()
    out = []
    for p in preds:
        score = p["score"]
        while (p["image_id"], p["category_id"], score) in seen:
            score = round(score - float(rng.uniform(1e-6, 1e-4)), 8)
        seen.add((p["image_id"], p["category_id"], score))
        out.append({**p, "score": score})
    return out


def _det_data(n: int, seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    gt, preds = random_coco(seed, n_images=n, crowd_prob=0.2)
    for a in gt["annotations"][::7]:
        a["difficult"] = 1  # VOC ignores these, COCO does not
    return gt, _untie(preds, seed)


def _inst_data(n: int, seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    gt, preds = random_coco(seed, n_images=n, iou_type="segm", crowd_prob=0.2)  # results carry bbox and RLE
    return gt, _untie(preds, seed)


def _emb_data(n: int, seed: int, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    return np.eye(4)[labels] * 2 + rng.normal(0, spread, (n, 4)), labels


EMB_KW = {"num_classes": 4, "class_means": np.eye(4) * 2, "threshold": -2.0}


def make_evaluator(task: str, n: int, seed: int) -> Any:
    """A filled test evaluator of ``task`` on ``n`` synthetic images (fed in three batches)."""
    if task == "classification":
        ev: Any = ClassificationEvaluator(7)
        data = _cls_data(n, seed)
    elif task == "semantic_segmentation":
        ev, data = SegmentationEvaluator(4), _seg_data(n, seed)
    elif task == "verification":
        ev, data = EmbeddingEvaluator(**EMB_KW), _emb_data(n, seed)
    else:
        gt, preds = _det_data(n, seed) if task == "detection" else _inst_data(n, seed)
        ev = DetectionEvaluator(gt) if task == "detection" else InstanceSegmentationEvaluator(gt)
        for part in np.array_split(np.arange(len(preds)), 3):
            ev.update([preds[i] for i in part])
        return ev
    for part in np.array_split(np.arange(n), 3):
        ev.update(*(x[part] for x in data))
    return ev


TASKS = sorted(TASK_METRICS)
SIZE = {"classification": 300, "semantic_segmentation": 60, "verification": 300, "detection": 24,
        "instance_segmentation": 12}


def _headline(task: str, computed: dict[str, Any]) -> dict[str, float | None]:
    return {k: computed[k] for k in TASK_METRICS[task]}


# ---- all-ones counts -------------------------------------------------------------------------


def test_resampled_metrics_are_the_headline_metrics() -> None:
    from bench.tasks import TASKS as REGISTRY

    headline = {t: REGISTRY.get(t).meta.headline_metrics for t in REGISTRY.names()}
    assert headline == TASK_METRICS


@pytest.mark.parametrize("task", TASKS)
def test_all_ones_reproduce_compute_exactly(task: str) -> None:
    ev = make_evaluator(task, SIZE[task], seed=1)
    samples = ev.samples()
    ones = np.ones(len(samples["image_id"]), dtype=int)
    expected = _headline(task, ev.compute())
    assert resample_metrics(task, samples, ones) == expected
    # As stored in a record: JSON lists.
    stored = json.loads(json.dumps({k: v.tolist() for k, v in samples.items()}))
    assert resample_metrics(task, stored, ones) == expected


@pytest.mark.parametrize("seed", range(12))
def test_detection_all_ones_exact_on_random_cases(seed: int) -> None:
    """Crowds, > 100 detections per image, classes without GT, tied scores (also within an image)."""
    gt, preds = random_coco(100 + seed, crowd_prob=0.25)
    ev = DetectionEvaluator(gt)
    ev.update(preds)
    s = ev.samples()
    assert resample_metrics("detection", s, np.ones(len(s["image_id"]))) == _headline("detection", ev.compute())


def test_coco_match_equals_pycocotools_evalimgs() -> None:
    """Each detection's TP / ignored flag per IoU threshold is pycocotools' ``dtMatches`` / ``dtIgnore``."""
    gt, preds = random_coco(7, n_images=20, crowd_prob=0.3)
    g = parse_ground_truth(gt)
    tp, ignored, npos = coco_match(g, parse_predictions(preds, g))
    ref = pycocotools_eval(gt, preds, "bbox")
    np.testing.assert_array_equal(ref.params.iouThrs, COCO_IOU_THRESHOLDS)
    np.testing.assert_array_equal(ref.params.recThrs, COCO_RECALLS)
    want_tp, want_ig = np.zeros_like(tp), np.ones_like(ignored)  # not evaluated (beyond 100): ignored
    n_img, n_cls = len(ref.params.imgIds), len(ref.params.catIds)
    want_npos = np.zeros((n_img, n_cls), dtype=int)
    for k in range(n_cls):
        for i in range(n_img):
            e = ref.evalImgs[k * 4 * n_img + i]  # area range "all" is the first of 4
            if e is None:
                continue
            assert e["maxDet"] == 100 and e["aRng"] == [0, 1e10]
            want_npos[i, k] = int((~np.asarray(e["gtIgnore"], bool)).sum())
            d = np.asarray(e["dtIds"], dtype=int) - 1  # loadRes numbers results 1, 2, ... in input order
            if len(d):
                want_ig[d] = np.asarray(e["dtIgnore"], bool).T
                want_tp[d] = (np.asarray(e["dtMatches"]) > 0).T & ~want_ig[d]
    assert ignored.any(axis=1).sum() > 5 and tp.sum() > 20  # crowds and > 100 detections are exercised
    np.testing.assert_array_equal(tp, want_tp)
    np.testing.assert_array_equal(ignored, want_ig)
    np.testing.assert_array_equal(npos, want_npos)


# ---- oracles on literally duplicated test sets -----------------------------------------------


def _counts(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n))


@pytest.mark.parametrize("seed", range(3))
def test_classification_matches_sklearn_on_duplicated_images(seed: int) -> None:
    from sklearn.metrics import accuracy_score, f1_score, top_k_accuracy_score

    scores, labels = _cls_data(150, seed)
    ev = ClassificationEvaluator(7)
    ev.update(scores, labels)
    counts = _counts(150, seed + 10)
    got = resample_metrics("classification", ev.samples(), counts)
    y, s = np.repeat(labels, counts), np.repeat(scores, counts, axis=0)
    pred = s.argmax(axis=1)
    assert got["top1"] == pytest.approx(accuracy_score(y, pred), abs=1e-12)
    assert got["top5"] == pytest.approx(top_k_accuracy_score(y, s, k=5, labels=range(7)), abs=1e-12)
    assert got["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_segmentation_matches_evaluator_on_duplicated_images(seed: int) -> None:
    pred, target = _seg_data(40, seed)
    ev = SegmentationEvaluator(4)
    ev.update(pred, target)
    counts = _counts(40, seed + 10)
    dup = SegmentationEvaluator(4)
    dup.update(np.repeat(pred, counts, axis=0), np.repeat(target, counts, axis=0))
    assert resample_metrics("semantic_segmentation", ev.samples(), counts) == _headline(
        "semantic_segmentation", dup.compute())


def duplicate_coco(
    gt: dict[str, Any], preds: list[dict[str, Any]], counts: dict[int, int]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The test set with image ``i`` present ``counts[i]`` times under new ids ``1000 i + j``.

    Ids keep the copies of an image next to each other in id order, and each prediction's copies
    are consecutive in the results list: the layout the weighted ranking corresponds to.
    """
    images = [{**im, "id": im["id"] * 1000 + j} for im in gt["images"] for j in range(counts[im["id"]])]
    anns = [{**a, "image_id": a["image_id"] * 1000 + j}
            for a in gt["annotations"] for j in range(counts[a["image_id"]])]
    for i, a in enumerate(anns):
        a["id"] = i + 1
    dup = [{**p, "image_id": p["image_id"] * 1000 + j} for p in preds for j in range(counts[p["image_id"]])]
    return {**gt, "images": images, "annotations": anns}, dup


@pytest.mark.parametrize("seed", range(4))
def test_detection_matches_evaluators_on_duplicated_images(seed: int) -> None:
    gt, preds = _det_data(10, seed)
    g = parse_ground_truth(gt)
    ev = DetectionEvaluator(gt)
    ev.update(preds)
    counts = _counts(len(g.image_ids), seed + 10)
    got = resample_metrics("detection", ev.samples(), counts)
    dgt, dpreds = duplicate_coco(gt, preds, dict(zip(g.image_ids.tolist(), counts.tolist(), strict=True)))
    ours = evaluate_coco(dgt, dpreds)
    for k in TASK_METRICS["detection"]:
        assert got[k] == pytest.approx(ours[k], abs=1e-12), k
    ref = pycocotools_eval(dgt, dpreds, "bbox").stats
    for i, k in enumerate(("mAP", "mAP_50", "mAP_75")):
        assert got[k] == pytest.approx(ref[i], abs=1e-12), k
    voc = [v for v in devkit_voc(dgt, dpreds, 0.5, legacy=False).values() if v is not None]
    assert got["mAP11"] == pytest.approx(np.mean([v[0] for v in voc]), abs=1e-12)
    assert got["mAPall"] == pytest.approx(np.mean([v[1] for v in voc]), abs=1e-12)


def test_detection_segm_matches_evaluate_coco_on_duplicated_images() -> None:
    gt, preds = random_coco(5, n_images=6, iou_type="segm", crowd_prob=0.3)
    preds = _untie(preds, 5)
    g = parse_ground_truth(gt, "segm")
    ev = DetectionEvaluator(gt, iou_type="segm")
    ev.update(preds)
    counts = _counts(len(g.image_ids), 15)
    got = resample_metrics("detection", ev.samples(), counts)
    dgt, dpreds = duplicate_coco(gt, preds, dict(zip(g.image_ids.tolist(), counts.tolist(), strict=True)))
    ours = evaluate_coco(dgt, dpreds, "segm")
    assert got == pytest.approx(_headline("detection", ours), abs=1e-12)


def test_verification_matches_metrics_on_duplicated_anchors() -> None:
    """A pair counts as often as its anchor image; NCM predictions as often as their image."""
    from bench.metrics.classification import classification_metrics, verification_metrics

    ev = make_evaluator("verification", 200, seed=3)
    s = ev.samples()
    counts = _counts(200, 13)
    got = resample_metrics("verification", s, counts)
    reps = counts[s["pair_anchor"]]
    ver = verification_metrics(np.repeat(s["pair_score"], reps), np.repeat(s["pair_same"], reps),
                               threshold=EMB_KW["threshold"])
    cls = classification_metrics(np.eye(4)[np.repeat(s["pred"], counts)], np.repeat(s["label"], counts))
    want = {"roc_auc": ver["roc_auc"], "eer": ver["eer"], "accuracy": ver["accuracy"], "top1": cls["top1"],
            "macro_f1": cls["macro_f1"]}
    assert got == pytest.approx(want, abs=1e-12)


# ---- confidence intervals --------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_ci_contains_point_and_is_reproducible(task: str) -> None:
    ev = make_evaluator(task, SIZE[task], seed=2)
    samples = ev.samples()
    point = _headline(task, ev.compute())
    ci = bootstrap_ci(task, samples, n_boot=200, seed=7)
    assert set(ci) == {k for k, v in point.items() if v is not None}
    for k, (low, high) in ci.items():
        assert low <= point[k] <= high, k
        assert low < high, k
    assert bootstrap_ci(task, samples, n_boot=200, seed=7) == ci
    assert bootstrap_ci(task, samples, n_boot=200, seed=8) != ci


@pytest.mark.parametrize("task", TASKS)
def test_ci_narrows_with_more_images(task: str) -> None:
    small = bootstrap_ci(task, make_evaluator(task, SIZE[task], seed=4).samples(), n_boot=200, seed=0)
    large = bootstrap_ci(task, make_evaluator(task, 6 * SIZE[task], seed=4).samples(), n_boot=200, seed=0)
    for k in small:
        assert large[k][1] - large[k][0] < 0.7 * (small[k][1] - small[k][0]), k


def test_ci_arguments_and_samples_are_checked() -> None:
    s = make_evaluator("classification", 30, seed=0).samples()
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci("classification", s, n_boot=0, seed=0)
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci("classification", s, n_boot=10, seed=0, level=1.5)
    with pytest.raises(ValueError, match="no per-image resampling for task 'detectoin'"):
        load_samples("detectoin", s)
    with pytest.raises(ValueError, match="'pred' has 29 rows for 30 images"):
        load_samples("classification", {**s, "pred": s["pred"][:-1]})
    with pytest.raises(ValueError, match=r"counts must be \[B, 30\]"):
        resample_metrics("classification", s, np.ones(31))


# ---- paired bootstrap ------------------------------------------------------------------------


def _worse(task: str, n: int, seed: int) -> Any:
    """A clearly worse model on the same images as ``make_evaluator(task, n, seed)``."""
    if task == "classification":
        ev: Any = ClassificationEvaluator(7)
        ev.update(*_cls_data(n, seed, signal=0.3))
    elif task == "semantic_segmentation":
        ev = SegmentationEvaluator(4)
        ev.update(*_seg_data(n, seed, right=0.4))
    elif task == "verification":
        ev = EmbeddingEvaluator(**EMB_KW)
        ev.update(*_emb_data(n, seed, spread=3.0))
    elif task == "detection":
        gt, preds = _det_data(n, seed)
        rng = np.random.default_rng(seed)
        ev = DetectionEvaluator(gt)
        shift = rng.random(len(preds)) < 0.7  # most boxes moved off their objects
        ev.update([{**p, "bbox": [p["bbox"][0] + p["bbox"][2] * float(m), *p["bbox"][1:]]}
                   for p, m in zip(preds, shift, strict=True)])
    else:
        from faster_coco_eval.core import mask as mask_utils

        gt, preds = _inst_data(n, seed)
        rng = np.random.default_rng(seed)
        ev = InstanceSegmentationEvaluator(gt)
        empty = rng.random(len(preds)) < 0.7  # most masks emptied (IoU 0 with every object)
        ev.update([{**p, "segmentation": mask_utils.encode(np.zeros((*p["segmentation"]["size"], 1), np.uint8,
                                                                    order="F"))[0]} if m else p
                   for p, m in zip(preds, empty, strict=True)])
    return ev


@pytest.mark.parametrize("task", TASKS)
def test_paired_identical_sides_and_clearly_worse(task: str) -> None:
    n = 2 * SIZE[task]
    base = make_evaluator(task, n, seed=5).samples()
    primary = TASK_METRICS[task][0]
    same = paired_bootstrap(task, [base], [base], primary, n_boot=200, seed=0)
    images = len(base["image_id"]) if task in ("detection", "instance_segmentation") else n
    assert same == PairedBootstrap(delta=0.0, low=0.0, high=0.0, n_images=images, n_base_seeds=1, n_cand_seeds=1)
    worse = paired_bootstrap(task, [base], [_worse(task, n, seed=5).samples()], primary, n_boot=200, seed=0)
    assert worse.delta < 0 and worse.high < 0, worse


def test_paired_pairs_by_image_id_and_counts_seed_noise() -> None:
    base = [make_evaluator("classification", 400, seed=s).samples() for s in (11, 12, 13)]
    cand = [make_evaluator("classification", 400, seed=s).samples() for s in (14, 15, 16)]
    for i, s in enumerate(cand):  # the same images, another model: labels shared, predictions per seed
        s["label"] = base[0]["label"]
        s["pred"] = np.where(np.random.default_rng(i).random(400) < 0.6 + 0.1 * i, s["label"], s["pred"])
    for s in base[1:]:
        s["label"] = base[0]["label"]
    one = paired_bootstrap("classification", base[:1], cand[:1], "top1", n_boot=300, seed=0)
    three = paired_bootstrap("classification", base, cand, "top1", n_boot=300, seed=0)
    assert (three.n_base_seeds, three.n_cand_seeds, three.n_images) == (3, 3, 400)
    top1 = [resample_metrics("classification", s, np.ones(400))["top1"] for s in (*base, *cand)]
    assert three.delta == pytest.approx(np.mean(top1[3:]) - np.mean(top1[:3]))
    assert three.low <= three.delta <= three.high
    assert three.high - three.low > one.high - one.low  # seed-to-seed spread counts

    # Images are paired by id, in any order; only the shared ones count.
    perm = np.random.default_rng(0).permutation(400)
    shuffled = {k: v[perm] for k, v in base[0].items()}
    assert paired_bootstrap("classification", [shuffled], cand[:1], "top1", 300, 0).delta == one.delta
    part = {k: v[:250] for k, v in cand[0].items()}
    assert paired_bootstrap("classification", base[:1], [part], "top1", 100, 0).n_images == 250


def test_paired_errors_name_the_problem() -> None:
    a = make_evaluator("classification", 50, seed=0).samples()
    b = {**a, "image_id": a["image_id"] + 1000}
    with pytest.raises(ValueError, match="share no image_id"):
        paired_bootstrap("classification", [a], [b], "top1", 10, 0)
    with pytest.raises(ValueError, match="metric 'mAP' is not resampled for task 'classification'"):
        paired_bootstrap("classification", [a], [a], "mAP", 10, 0)
    with pytest.raises(ValueError, match="duplicate image_id"):
        paired_bootstrap("classification", [{**a, "image_id": np.zeros(50, int)}], [a], "top1", 10, 0)
    with pytest.raises(ValueError, match="at least one seed per side"):
        paired_bootstrap("classification", [], [a], "top1", 10, 0)


