"""Speed and peak memory of detection evaluation on a synthetic COCO-val-sized split.

Builds 5,000 images, 80 classes (non-contiguous ids 1..90 like COCO), ~36k GT boxes and 100
detections per image, writes them as JSON, then runs each contender in its own subprocess (so
every peak RSS is separate) and prints wall time, peak RSS and the ratios:

* ``bench``: ``bench.metrics.detection.evaluate_coco`` -- every COCO and VOC number, i.e. what
  ``bench eval detection`` computes;
* ``pycocotools``: ``COCO.loadRes`` + ``COCOeval`` evaluate/accumulate/summarize;
* ``faster-coco-eval``: the same with ``COCOeval_faster``.

Wall time covers evaluation from the in-memory dicts (JSON parsing is excluded for all three);
peak RSS is the process's maximum resident set size, JSON load included.

Usage: ``python benchmarks/metrics_speed.py [--images 5000] [--seed 0]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CONTENDERS = ("bench", "pycocotools", "faster-coco-eval")


def build(n_images: int, seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Synthetic COCO-val-like split: ``(gt dict, results list)`` with 100 detections per image."""
    rng = np.random.default_rng(seed)
    cat_ids = np.sort(rng.choice(np.arange(1, 91), size=80, replace=False))
    images, anns, preds = [], [], []
    ann_id = 1
    for img_id in range(1, n_images + 1):
        h, w = int(rng.integers(240, 641)), int(rng.integers(240, 641))
        images.append({"id": img_id, "height": h, "width": w, "file_name": f"{img_id:012d}.jpg"})
        n_gt = int(rng.poisson(7.3))
        # Log-uniform sizes give COCO's mix of small / medium / large objects.
        bw = np.minimum(np.exp(rng.uniform(np.log(4), np.log(w * 0.9), n_gt)), w - 1)
        bh = np.minimum(bw * np.exp(rng.normal(0, 0.4, n_gt)), h - 1)
        x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        cls = rng.choice(cat_ids, n_gt)
        crowd = rng.random(n_gt) < 0.01
        gt_boxes = np.stack([x, y, bw, bh], axis=1).round(2)
        for k in range(n_gt):
            b = gt_boxes[k].tolist()
            anns.append({"id": ann_id, "image_id": img_id, "category_id": int(cls[k]), "bbox": b,
                         "area": round(b[2] * b[3] * float(rng.uniform(0.5, 1.0)), 2),
                         "iscrowd": int(crowd[k])})
            ann_id += 1
        # ~2 jittered copies per GT, the rest random boxes: 100 detections in all.
        n_tp = min(100, 2 * n_gt)
        src = rng.integers(0, max(n_gt, 1), n_tp)
        jit = rng.normal(0, 0.1, (n_tp, 4)) * np.tile(gt_boxes[src, 2:], 2) if n_gt else np.zeros((0, 4))
        tp_boxes = gt_boxes[src] + jit if n_gt else np.zeros((0, 4))
        tp_cls = np.where(rng.random(n_tp) < 0.9, cls[src] if n_gt else 0, rng.choice(cat_ids, n_tp))
        n_fp = 100 - n_tp
        fw = np.exp(rng.uniform(np.log(4), np.log(w * 0.8), n_fp))
        fh = np.minimum(fw * np.exp(rng.normal(0, 0.4, n_fp)), h)
        fp_boxes = np.stack([rng.uniform(0, w - fw), rng.uniform(0, h - fh), fw, fh], axis=1)
        boxes = np.concatenate([tp_boxes, fp_boxes]).round(2)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], 1.0)
        classes = np.concatenate([tp_cls, rng.choice(cat_ids, n_fp)])
        scores = np.concatenate([rng.uniform(0.3, 1.0, n_tp), rng.uniform(0.0, 0.7, n_fp)]).round(3)
        for b, c, s in zip(boxes.tolist(), classes.tolist(), scores.tolist(), strict=True):
            preds.append({"image_id": img_id, "category_id": int(c), "bbox": b, "score": s})
    cats = [{"id": int(c), "name": f"class_{int(c)}", "supercategory": "thing"} for c in cat_ids]
    return {"images": images, "annotations": anns, "categories": cats}, preds


def run_one(which: str, gt_path: str, pred_path: str) -> None:
    """Child process: evaluate with one contender and print a JSON line {seconds, peak_rss, stats}."""
    import contextlib
    import io
    import resource

    t_load = time.perf_counter()
    gt = json.loads(Path(gt_path).read_text())
    preds = json.loads(Path(pred_path).read_text())
    t0 = time.perf_counter()
    load_s = t0 - t_load
    extra: dict[str, Any] = {}
    if which == "bench":
        from bench.metrics.detection import COCO_STAT_KEYS, evaluate_coco

        res = evaluate_coco(gt, preds, "bbox")
        stats = [-1.0 if res[k] is None else res[k] for k in COCO_STAT_KEYS]
        extra = {"mAP11": res["mAP11"], "mAPall": res["mAPall"]}
    else:
        if which == "pycocotools":
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval as Eval
        else:
            from faster_coco_eval import COCO
            from faster_coco_eval import COCOeval_faster as Eval  # type: ignore[assignment]
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO()
            coco_gt.dataset = gt
            coco_gt.createIndex()
            coco_dt = coco_gt.loadRes(preds)
            ev = Eval(coco_gt, coco_dt, "bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        stats = [float(v) for v in ev.stats[:12]]
    seconds = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"seconds": seconds, "load_s": load_s, "peak_rss": peak_kib * 1024, "stats": stats, **extra}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    ap.add_argument("--gt", help=argparse.SUPPRESS)
    ap.add_argument("--pred", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        run_one(args.child, args.gt, args.pred)
        return

    gt, preds = build(args.images, args.seed)
    print(f"synthetic split: {len(gt['images'])} images, {len(gt['categories'])} classes, "
          f"{len(gt['annotations'])} GT boxes, {len(preds)} detections")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        gt_path, pred_path = Path(tmp) / "gt.json", Path(tmp) / "pred.json"
        gt_path.write_text(json.dumps(gt))
        pred_path.write_text(json.dumps(preds))
        del gt, preds
        repo = str(Path(__file__).resolve().parent.parent)
        for which in CONTENDERS:
            out = subprocess.run(
                [sys.executable, __file__, "--child", which, "--gt", str(gt_path), "--pred", str(pred_path)],
                check=True, capture_output=True, text=True, env={"PYTHONPATH": repo, "HF_HUB_OFFLINE": "1"},
            )
            results[which] = json.loads(out.stdout.strip().splitlines()[-1])
        cli = time_cli(gt_path, pred_path, Path(tmp) / "m.json")

    print(f"{'contender':<18} {'wall s':>8} {'peak RSS MiB':>13}  mAP       mAP_50    AR_100")
    for which, r in results.items():
        s = r["stats"]
        mib = r["peak_rss"] / 2**20
        print(f"{which:<18} {r['seconds']:8.2f} {mib:13.0f}  {s[0]:.6f}  {s[1]:.6f}  {s[8]:.6f}")
    ours, fast, pyc = results["bench"], results["faster-coco-eval"], results["pycocotools"]
    print(f"bench VOC: mAP11={ours['mAP11']:.6f} mAPall={ours['mAPall']:.6f}")
    diff = max(abs(a - b) for a, b in zip(ours["stats"], pyc["stats"], strict=True))
    print(f"max |bench - pycocotools| over the 12 COCO stats: {diff:.2e}")
    print(f"time ratio bench / faster-coco-eval: {ours['seconds'] / fast['seconds']:.2f}x (target <= 1.5x)")
    print(f"time ratio bench / pycocotools:      {ours['seconds'] / pyc['seconds']:.2f}x (target <= 0.20x)")
    print(f"bench peak RSS: {ours['peak_rss'] / 2**30:.2f} GiB (target <= 3 GB)")
    print(f"`bench eval detection` CLI end to end (process start, JSON parsing, table, M.json): "
          f"{cli['seconds']:.2f} s, peak RSS {cli['peak_rss'] / 2**30:.2f} GiB; "
          f"{cli['seconds'] / (fast['seconds'] + fast['load_s']):.2f}x faster-coco-eval's, "
          f"{cli['seconds'] / (pyc['seconds'] + pyc['load_s']):.2f}x pycocotools' (theirs with JSON parsing added)")


def time_cli(gt_path: Path, pred_path: Path, out_path: Path) -> dict[str, float]:
    """Wall time and peak RSS of the real ``bench eval detection`` command, as a user runs it."""
    bench = Path(sys.executable).with_name("bench")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(bench), "eval", "detection", "--gt", str(gt_path), "--pred", str(pred_path), "--out", str(out_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not all children's
    seconds = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError(f"bench eval detection failed: {proc.stderr.read().decode()[-2000:]}")
    return {"seconds": seconds, "peak_rss": usage.ru_maxrss * 1024}


if __name__ == "__main__":
    main()
