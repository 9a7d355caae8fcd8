"""YOLO v1's one object per cell, measured: recall against objects per cell on shapes' ``crowded`` split.

YOLO v1 makes each cell of its S x S grid responsible for one object (one class distribution per cell), so
objects whose centres share a cell go missing.  This script scores trained detectors on the ``crowded``
split of ``shapes`` (200 scenes of 7-12 small shapes in clusters; ``bench/datasets/shapes.py``), which no
trial trains or selects on, and reports recall at IoU >= 0.5 binned by how many ground-truth centres share
the object's cell of a 7x7 grid (``bench.metrics.crowding``), next to mAP_50 on the same images.

Usage (from the project root, after the trials; one results file per ``bench run``):

    bench run yolo_v1 --profile cpu --output out/yolo_v1.json
    bench run yolo_v3 --profile cpu --output out/yolo_v3.json
    python benchmarks/yolo_crowding.py out/yolo_v1.json out/yolo_v3.json --models yolo_v1,yolo_v3

Each trial record names its checkpoint (``best.pt``: the weights the test metrics came from) and its
effective config; the model is rebuilt through its task exactly as the trainer built it, the weights are
loaded, and the engine's own evaluation loop runs on the crowded split (the config's ``test`` split name
swapped for ``crowded``, no image cap).  The dataset pin is checked first (``bench data pull shapes``
restores it).  Prints one table row per (model, score threshold) and writes JSON (``--out``, default
``reports/yolo_crowding.json``).  ``--score-thresh 0`` keeps every detection the model outputs (its own
``score_thresh`` and per-image cap still apply); recall does not depend on the score order, only on it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.metrics import METRIC_SPEC
from bench.metrics.crowding import BINS, CellRecallAccumulator
from bench.metrics.detection import xywh_to_xyxy

SPLIT = "crowded"
DEFAULT_OUT = Path("reports/yolo_crowding.json")


def crowding_from_coco(
    gt: dict[str, Any], dets: dict[str, np.ndarray], grid: int, score_thresh: float, iou_thr: float = 0.5
) -> dict[str, Any]:
    """Recall per objects-per-cell bin of COCO ground truth and detections as arrays.

    ``gt``: a COCO dict (``images`` with ``id, width, height``; ``annotations`` with ``image_id,
    category_id, bbox [x, y, w, h]``; crowd annotations left out).  ``dets``: ``image_id [D]``,
    ``category_id [D]``, ``score [D]``, ``bbox [D, 4] xywh`` (a ``DetectionEvaluator``'s detections).
    Returns ``bench.metrics.crowding``'s result; images without ground truth count for nothing.
    """
    acc = CellRecallAccumulator(grid, score_thresh, iou_thr)
    anns: dict[int, list[dict[str, Any]]] = {}
    for a in gt["annotations"]:
        if not a.get("iscrowd", 0):
            anns.setdefault(a["image_id"], []).append(a)
    det_image = np.asarray(dets["image_id"], dtype=np.int64)
    det_boxes = xywh_to_xyxy(np.asarray(dets["bbox"], dtype=np.float64).reshape(-1, 4))
    for image in gt["images"]:
        mine = anns.get(image["id"], [])
        sel = det_image == image["id"]
        acc.update(
            xywh_to_xyxy(np.array([a["bbox"] for a in mine], dtype=np.float64).reshape(-1, 4)),
            [a["category_id"] for a in mine],
            det_boxes[sel],
            np.asarray(dets["score"])[sel],
            np.asarray(dets["category_id"])[sel],
            (image["width"], image["height"]),
        )
    return acc.compute()


def crowded_config(config: dict[str, Any], device: str, max_images: int | None = None) -> Any:
    """The trial's config with its ``test`` split read from ``crowded`` and no test-image cap."""
    from bench.config.catalog import TrialConfig

    cfg = TrialConfig.model_validate(config)
    dataset = cfg.dataset.model_copy(update={"splits": {**cfg.dataset.splits, "test": SPLIT}})
    train = cfg.train.model_copy(update={"max_eval_images": max_images})
    return cfg.model_copy(update={"dataset": dataset, "train": train, "device": device})


def crowded_task(config: dict[str, Any], project: Path, device: str, max_images: int | None) -> tuple[Any, Any, Any]:
    """``(cfg, task, dataset_version)``: the trial's task reading ``crowded`` as its test split, the pin checked."""
    from bench.datasets import versioning
    from bench.engine.trainer import seed_everything
    from bench.tasks import task_impl

    cfg = crowded_config(config, device, max_images)
    root = Path(cfg.dataset.root)
    root = root if root.is_absolute() else project / root
    version = None
    if cfg.dataset.dvc_file:
        version = versioning.ensure(project, versioning.read_pin(project / cfg.dataset.dvc_file, cfg.dataset.root,
                                                                 project))
    view = cfg.dataset.views[cfg.task]
    if not (root / view.path / "annotations" / f"{SPLIT}.json").is_file():
        raise FileNotFoundError(f"{root} has no `{SPLIT}` split: pull a shapes version that has it "
                                "(`bench data pull shapes --force` at this checkout's datasets.dvc)")
    seed_everything(cfg.seed)
    return cfg, task_impl(cfg.task)(cfg, root), version


def assignment_recall(task: Any, model: Any, cfg: Any, grid: int) -> dict[str, Any] | None:
    """The objects-per-cell recall of the model's own training-target assignment on the crowded split.

    ``model.assigned(targets)`` (the YOLO generations) names the ground truths training gives a responsible
    predictor; an object without one is never learnt, so this is the recall an ideal detector of that design
    could reach.  Targets are scaled to the model's input as its forward pass does.  None for a model
    without ``assigned``.
    """
    from bench.engine.data import subsample
    from bench.models.detection._yolo_common import square_batch

    if not hasattr(model, "assigned"):
        return None
    acc = CellRecallAccumulator(grid)
    ds = subsample(task.dataset("test", train=False), cfg.train.max_eval_images, cfg.seed)
    for k in range(len(ds)):  # type: ignore[arg-type]
        image, target = ds[k]
        _, scaled, _ = square_batch([image], model.image_size, [target])
        acc.update_found(target["boxes"].numpy(), model.assigned(scaled)[0].cpu().numpy(),
                         (image.shape[-1], image.shape[-2]))
    return acc.compute()


def score_checkpoint(
    config: dict[str, Any],
    checkpoint: Path | None,
    project: Path,
    grid: int = 7,
    score_threshs: Sequence[float] = (0.0, 0.25),
    iou_thr: float = 0.5,
    device: str = "auto",
    max_images: int | None = None,
) -> dict[str, Any]:
    """Rebuild the trial's model, load ``checkpoint`` and score it on the crowded split.

    ``config``: the trial record's effective config; ``max_images``: subsample (tests), None = all;
    ``checkpoint`` None: only the assignment recall (no trained weights needed).  Returns ``images``,
    ``mAP``, ``mAP_50`` (COCO, on the crowded split), ``crowding`` (one ``bench.metrics.crowding`` result
    per score threshold), ``assignment`` (``assignment_recall``) and ``dataset_version``.
    """
    from bench.engine.checkpoint import load_weights
    from bench.engine.device import select_device
    from bench.engine.trainer import evaluate

    cfg, task, version = crowded_task(config, project, device, max_images)
    model = task.build_model()
    scored: dict[str, Any] = {"assignment": assignment_recall(task, model, cfg, grid), "dataset_version": version}
    if checkpoint is None:
        return {**scored, "images": None, "mAP": None, "mAP_50": None, "crowding": [], "epoch": None}
    dev = select_device(cfg.device)
    state = load_weights(checkpoint)
    model.load_state_dict(state["model"])
    model.to(dev)
    result = evaluate(task, model, "test", dev, cfg, {})
    dets = result.evaluator.detections()
    arrays = {"image_id": dets.image_id, "category_id": dets.category_id, "score": dets.score, "bbox": dets.bbox}
    gt = result.evaluator.gt
    return {
        **scored,
        "images": result.images,
        "mAP": result.metrics["mAP"],
        "mAP_50": result.metrics["mAP_50"],
        "crowding": [crowding_from_coco(gt, arrays, grid, t, iou_thr) for t in score_threshs],
        "epoch": state.get("epoch"),
    }


def load_trials(paths: Sequence[Path], models: Sequence[str] | None, need_checkpoint: bool = True) -> list[Any]:
    """The ok trial records (with a checkpoint when ``need_checkpoint``) in ``paths`` (``bench run --output``
    files), in file order, restricted to ``models`` (each must be present) when given."""
    from bench.results.record import read_results

    what = "ok trial with a checkpoint" if need_checkpoint else "ok trial"
    records = [r for p in paths for r in read_results(p) if r.status == "ok" and (r.checkpoint or not need_checkpoint)]
    if models:
        missing = [m for m in models if not any(r.model == m for r in records)]
        if missing:
            have = sorted({r.model for r in records}) or ["none"]
            raise ValueError(f"no {what} for {', '.join(missing)} in "
                             f"{', '.join(map(str, paths))} (found: {', '.join(have)})")
        records = [r for r in records if r.model in models]
    if not records:
        raise ValueError(f"no {what} in {', '.join(map(str, paths))}")
    return records


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _bins(c: dict[str, Any]) -> list[str]:
    return [f"{_pct(c['per_bin'][b]['recall'])} ({c['per_bin'][b]['num_gt']})" for b in BINS]


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown tables: the trained models (model, score threshold, recall and count per bin, overall recall,
    mAP_50), then the target assignments (recall per bin of the objects training assigns)."""
    head = ["model", "score >="] + [f"recall {b}/cell (n)" for b in BINS] + ["recall (n)", "mAP_50"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        for c in row["crowding"]:
            lines.append("| " + " | ".join([row["trial_id"], f"{c['score_thresh']:g}", *_bins(c),
                                            f"{_pct(c['recall'])} ({c['num_gt']})", _pct(row["mAP_50"])]) + " |")
    assigned = [row for row in rows if row["assignment"] is not None]
    if assigned:
        head = ["model (training targets)"] + [f"assigned {b}/cell (n)" for b in BINS] + ["assigned (n)"]
        lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in assigned:
            c = row["assignment"]
            lines.append("| " + " | ".join([row["trial_id"], *_bins(c), f"{_pct(c['recall'])} ({c['num_gt']})"]) + " |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", type=Path, help="`bench run --output` files")
    ap.add_argument("--models", default=None, help="comma-separated model names (default: every ok trial)")
    ap.add_argument("--grid", type=int, default=7, help="S of the S x S grid the objects are binned on (YOLO v1: 7)")
    ap.add_argument("--score-thresh", default="0,0.25", help="comma-separated score thresholds, one row each")
    ap.add_argument("--iou", type=float, default=0.5, help="IoU a detection needs to find an object (>=)")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--max-images", type=int, default=None, help="score a seeded subsample (a quick check)")
    ap.add_argument("--assignment-only", action="store_true",
                    help="only the training-target assignment's recall (no checkpoint needed)")
    ap.add_argument("--project", type=Path, default=Path.cwd(), help="project root (datasets.dvc, datasets/)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON output [default: {DEFAULT_OUT}]")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    threshs = [float(t) for t in args.score_thresh.split(",")]
    try:
        trials = load_trials(args.results, models, need_checkpoint=not args.assignment_only)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = []
    for r in trials:
        ckpt = None if args.assignment_only else Path(r.checkpoint)
        print(f"scoring {r.trial_id} ({ckpt or 'target assignment only'}) on {SPLIT}", file=sys.stderr, flush=True)
        scored = score_checkpoint(r.config, ckpt, args.project, args.grid, threshs, args.iou,
                                  args.device, args.max_images)
        rows.append({"trial_id": r.trial_id, "model": r.model, "profile": r.profile, "seed": r.seed,
                     "checkpoint": None if ckpt is None else r.checkpoint, "test_mAP_50": r.metrics.get("mAP_50"),
                     **scored})
    print(format_table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"split": SPLIT, "grid": args.grid, "iou_thr": args.iou, "score_thresholds": threshs,
              "metric": "recall_by_objects_per_cell", "spec": METRIC_SPEC, "results": rows}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
