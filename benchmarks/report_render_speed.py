"""Time to render the leaderboard of 10,000 trial records, against the 10 s budget of `bench report`.

Builds synthetic :class:`TrialResult` records (50 models × 4 datasets × 2 profiles × 25 seeds by
default) of realistic size: 30 epochs of history, a bootstrap CI per metric, an efficiency record,
per-class results and a confusion matrix (classification: 10 and 100 classes; segmentation: 21) or
101-point PR curves of 20 classes (detection); 1% failed, a fifth reused from an earlier run.
Five of the models are Siamese (verification), so the classification tables carry their rows too.
Then times ``build_tables``, ``to_markdown`` and ``to_html`` (building the records is not timed)
and prints the size of the page.

Usage: ``python benchmarks/report_render_speed.py [--models 50] [--seeds 25] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any

from bench.reports.leaderboard import ReportEntry, ReportMeta, build_tables, to_html, to_markdown
from bench.results.record import (
    Baseline,
    Efficiency,
    EpochLog,
    Interval,
    Provenance,
    TrainingEnd,
    TrialResult,
)

BUDGET_S = 10.0
# dataset -> (task, number of classes)
DATASETS = {"cls10": ("classification", 10), "cls100": ("classification", 100), "det20": ("detection", 20),
            "seg21": ("semantic_segmentation", 21)}
METRICS = {"classification": ("top1", "top5", "macro_f1"), "verification": ("roc_auc", "eer", "accuracy", "top1",
                                                                              "macro_f1"),
           "detection": ("mAP", "mAP_50", "mAP_75", "mAP11", "mAPall"),
           "semantic_segmentation": ("jaccard", "dice", "jaccard_fg", "dice_fg", "pixel_accuracy")}
PRIMARY = {"classification": "top1", "verification": "roc_auc", "detection": "mAP", "semantic_segmentation": "jaccard"}


def results_of(task: str, classes: int, rnd: random.Random) -> dict[str, Any]:
    """``per_class`` and ``extras`` of one trial, shaped as ``bench.metrics`` fills them."""
    names = [f"class_{k}" for k in range(classes)]
    if task == "detection":
        recall = [i / 100 for i in range(101)]
        per_class = {n: {"category_id": k + 1, "num_gt": 50, "num_pred": 80, "AP": rnd.random() * 0.5,
                         "AP50": rnd.random(), "AP11": rnd.random(), "APall": rnd.random(),
                         "pr_curve": {"recall": recall, "precision": sorted((rnd.random() for _ in recall),
                                                                            reverse=True)}}
                     for k, n in enumerate(names)}
        return {"per_class": per_class, "extras": {}}
    cm = [[rnd.randint(0, 50) for _ in range(classes)] for _ in range(classes)]
    per_class = {n: {"precision": rnd.random(), "recall": rnd.random(), "f1": rnd.random(), "support": 50}
                 for n in names}
    return {"per_class": per_class, "extras": {"confusion_matrix": cm}}


def template(task: str, dataset: str, classes: int, rnd: random.Random) -> TrialResult:
    """One validated record of ``task`` on ``dataset``; the others are shallow copies with new numbers."""
    primary = PRIMARY[task]
    history = [EpochLog(epoch=e, train_loss=2.0 / e, train_acc=None if task == "detection" else 1 - 1 / (e + 1),
                        val={primary: 1 - 1 / (e + 2)}, lr=0.01, seconds=10.0) for e in range(1, 31)]
    return TrialResult.model_validate({
        "trial_id": "t", "model": "m", "task": task, "dataset": dataset, "profile": "cpu", "seed": 0, "status": "ok",
        "provenance": Provenance(config_hash="h"), "history": history, "test_images": 1000,
        "training": TrainingEnd(epochs_planned=30, epochs_done=30.0, stopped_by="schedule"),
        "baseline": Baseline(name="majority class", metric=primary, score=0.1, test="binomial, one-sided",
                             p_value=1e-6, significant=True, alpha=0.05),
        **results_of(task, classes, rnd),
    })


def build(models: int, seeds: int, profiles: int, rnd: random.Random) -> list[ReportEntry]:
    """``models × 4 datasets × profiles × seeds`` entries."""
    base = {(d, t): template(t, d, k, rnd) for d, (task, k) in DATASETS.items()
            for t in ({task, "verification"} if task == "classification" else {task})}
    entries = []
    for m in range(models):
        name = f"siamese_{m}" if m < 5 else f"model_{m:02d}"
        skill, latency = rnd.uniform(0.3, 0.9), 10 ** rnd.uniform(-0.5, 2.5)
        for dataset, (task, _) in DATASETS.items():
            own = "verification" if name.startswith("siamese") and task == "classification" else task
            for p in range(profiles):
                for seed in range(seeds):
                    values = {k: min(1.0, skill + rnd.gauss(0, 0.02)) for k in METRICS[own]}
                    failed = rnd.random() < 0.01
                    update: dict[str, Any] = {
                        "trial_id": f"{name}-{dataset}-p{p}-s{seed}", "model": name, "profile": f"profile{p}",
                        "seed": seed, "metrics": {} if failed else values,
                        "ci": {} if failed else {k: Interval(low=v - 0.02, high=v + 0.02) for k, v in values.items()},
                        "efficiency": Efficiency(params=int(latency * 1e6), flops=latency * 1e9,
                                                 latency_ms=latency * rnd.uniform(0.95, 1.05),
                                                 throughput_ips=1000 / latency, peak_memory_mb=100 + latency),
                    }
                    if failed:
                        update.update(status="failed", error="RuntimeError: CUDA out of memory")
                    rec = base[dataset, own].model_copy(update=update)
                    entries.append(ReportEntry(rec, run=f"run-{seed % 5}", cached=rnd.random() < 0.2))
    return entries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=25)
    ap.add_argument("--profiles", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    t0 = time.perf_counter()
    entries = build(args.models, args.seeds, args.profiles, random.Random(0))
    print(f"{len(entries)} records built in {time.perf_counter() - t0:.1f} s (not timed below)")
    meta = ReportMeta("Leaderboard: speed test", "synthetic records")
    totals = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        tables = build_tables(entries)
        t1 = time.perf_counter()
        md = to_markdown(tables, meta)
        t2 = time.perf_counter()
        page = to_html(tables, meta)
        t3 = time.perf_counter()
        totals.append(t3 - t0)
        print(f"build_tables {t1 - t0:.2f} s, to_markdown {t2 - t1:.2f} s, to_html {t3 - t2:.2f} s: "
              f"total {t3 - t0:.2f} s")
    rows = sum(len(t.rows) for t in tables)
    print(f"{len(tables)} tables, {rows} rows; Markdown {len(md) / 1e3:.0f} kB, HTML {len(page) / 1e6:.1f} MB")
    best = min(totals)
    print(f"best of {args.repeat}: {best:.2f} s (median {statistics.median(totals):.2f} s); budget {BUDGET_S:.0f} s: "
          + ("ok" if best <= BUDGET_S else "OVER"))


if __name__ == "__main__":
    main()
