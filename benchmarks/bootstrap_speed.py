"""Speed of the bootstrap CIs over test images (``bench.metrics.bootstrap``), one core.

For each task, builds a synthetic test set, fills the task's evaluator, then times (wall clock)
``samples()`` (done once per trial; for detection this is the matching) and ``bootstrap_ci`` with
``B`` resamples; for detection also ``paired_bootstrap`` with 2 seeds per side.  Sizes:

* detection: ~300 images, 3 classes, ~5,000 detections (``bench.metrics.synthetic.random_coco``);
* classification: 10,000 images, 10 classes;
* semantic segmentation: 1,000 images, 6 classes (64 x 64 label maps);
* verification: 2,000 embeddings, 10 classes.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/bootstrap_speed.py [--boot 1000] [--seed 0]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.evaluators.classification import ClassificationEvaluator
from bench.evaluators.detection import DetectionEvaluator
from bench.evaluators.segmentation import SegmentationEvaluator
from bench.evaluators.verification import EmbeddingEvaluator
from bench.metrics.bootstrap import bootstrap_ci, paired_bootstrap
from bench.metrics.synthetic import random_coco


def timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """``(fn(*args), seconds)``."""
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def detection(seed: int, rerun: int = 0) -> DetectionEvaluator:
    """``rerun > 0``: the same test set with every score perturbed (another seed of the same model)."""
    gt, preds = random_coco(seed, n_images=300, n_classes=3, max_gt=8, dets_per_gt=2.0, n_false=10,
                            img_size=(200, 640))
    if rerun:
        rng = np.random.default_rng(rerun)
        preds = [{**p, "score": float(np.clip(p["score"] + rng.normal(0, 0.05), 0.0, 1.0))} for p in preds]
    ev = DetectionEvaluator(gt)
    ev.update(preds)
    return ev


def classification(seed: int) -> ClassificationEvaluator:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, 10_000)
    scores = rng.normal(size=(10_000, 10))
    scores[np.arange(10_000), labels] += 1.5
    ev = ClassificationEvaluator(10)
    ev.update(scores, labels)
    return ev


def segmentation(seed: int) -> SegmentationEvaluator:
    rng = np.random.default_rng(seed)
    ev = SegmentationEvaluator(6)
    for _ in range(10):
        t = rng.integers(0, 6, (100, 64, 64))
        ev.update(np.where(rng.random(t.shape) < 0.8, t, rng.integers(0, 6, t.shape)), t)
    return ev


def verification(seed: int) -> EmbeddingEvaluator:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, 2_000)
    centres = rng.normal(size=(10, 16)) * 2
    ev = EmbeddingEvaluator(10, class_means=centres, threshold=-5.0)
    ev.update(centres[labels] + rng.normal(size=(2_000, 16)), labels)
    return ev


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cases = {"detection": detection, "classification": classification,
             "semantic_segmentation": segmentation, "verification": verification}
    print(f"B = {args.boot}")
    for task, make in cases.items():
        ev = make(args.seed)
        samples, t_samples = timed(ev.samples)
        _, t_ci = timed(bootstrap_ci, task, samples, args.boot, args.seed)
        size = f"{len(samples['image_id'])} images"
        if task == "detection":
            size += f", {len(samples['det_score'])} detections, {samples['coco_npos'].shape[1]} classes"
        print(f"{task:22s} {size:45s} samples() {t_samples:6.3f} s   bootstrap_ci {t_ci:6.3f} s")
        if task == "detection":
            runs = [detection(args.seed, rerun).samples() for rerun in (1, 2, 3)]
            _, t_pair = timed(paired_bootstrap, task, [samples, runs[0]], runs[1:], "mAP", args.boot, args.seed)
            print(f"{'':22s} {'paired_bootstrap, 2 + 2 seeds':45s} {'':17s}   {t_pair:6.3f} s")


if __name__ == "__main__":
    main()
