"""benchmarks/yolo_crowding.py: COCO arrays into the crowding metric, and a checkpoint scored end to end."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_script():  # noqa: ANN201 - the module
    spec = importlib.util.spec_from_file_location("yolo_crowding", ROOT / "benchmarks" / "yolo_crowding.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


yc = load_script()


def as_detections(anns: list[dict], score: float = 0.9) -> dict[str, np.ndarray]:
    """Detections that repeat the given annotations' boxes and classes."""
    return {"image_id": np.array([a["image_id"] for a in anns]),
            "category_id": np.array([a["category_id"] for a in anns]),
            "score": np.full(len(anns), score),
            "bbox": np.array([a["bbox"] for a in anns], dtype=float).reshape(-1, 4)}


def test_crowding_from_coco_on_the_pinned_split(project: Path) -> None:
    gt = json.loads((project / "datasets" / "shapes" / "annotations" / "crowded.json").read_text())
    perfect = yc.crowding_from_coco(gt, as_detections(gt["annotations"]), grid=7, score_thresh=0.0)
    assert {b: (v["recall"], v["num_gt"]) for b, v in perfect["per_bin"].items()} == {
        "1": (1.0, 1017), "2": (1.0, 540), "3+": (1.0, 96)}
    # Keep one object per (image, 7x7 cell), as YOLO v1 at best would: every lone object is found,
    # exactly one of each shared cell's objects.
    seen, one_per_cell = set(), []
    for a in gt["annotations"]:
        x, y, w, h = a["bbox"]
        cell = (a["image_id"], min(int((x + w / 2) * 7 / 64), 6), min(int((y + h / 2) * 7 / 64), 6))
        if cell not in seen:
            seen.add(cell)
            one_per_cell.append(a)
    res = yc.crowding_from_coco(gt, as_detections(one_per_cell), grid=7, score_thresh=0.0)
    assert res["per_bin"]["1"]["recall"] == 1.0
    assert res["per_bin"]["2"]["recall"] == 0.5
    assert 1 / 4 <= res["per_bin"]["3+"]["recall"] <= 1 / 3
    # Below the score threshold nothing counts.
    assert yc.crowding_from_coco(gt, as_detections(one_per_cell, 0.1), 7, score_thresh=0.25)["recall"] == 0.0


def test_checkpoint_scored_end_to_end(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A results file naming a checkpoint -> the rebuilt model on 4 crowded images -> table and JSON.

    The checkpoint is hog_detector's smoke model at initialisation (no training here; the cheapest
    detector to build): what is checked is the plumbing, so the numbers are only checked for consistency.
    """
    import torch

    from bench.config.catalog import Catalog, effective_trial
    from bench.tasks import task_impl

    cat = Catalog(project / "configs")
    cfg = effective_trial(cat.model("hog_detector"), cat.dataset("shapes"), cat.profile("smoke"), seed=0)
    task = task_impl(cfg.task)(cfg, project / cfg.dataset.root)
    ckpt = tmp_path / "best.pt"
    torch.save({"model": task.build_model().state_dict(), "epoch": 1, "config": cfg.model_dump(mode="json")}, ckpt)
    record = {"trial_id": cfg.trial_id, "model": cfg.model, "task": cfg.task, "dataset": "shapes", "profile": "smoke",
              "seed": 0, "status": "ok", "provenance": {"config_hash": cfg.config_hash()},
              "config": cfg.model_dump(mode="json"), "checkpoint": str(ckpt), "metrics": {"mAP_50": 0.5}}
    results = tmp_path / "results.json"
    results.write_text(json.dumps([record, {**record, "model": "other", "status": "failed", "checkpoint": None}]))
    out = tmp_path / "crowding.json"
    args = [str(results), "--models", "hog_detector", "--max-images", "4", "--device", "cpu",
            "--project", str(project), "--out", str(out)]
    assert yc.main(args) == 0
    report = json.loads(out.read_text())
    (row,) = report["results"]
    assert (row["model"], row["images"], row["epoch"], row["test_mAP_50"]) == ("hog_detector", 4, 1, 0.5)
    pin = (project / "datasets.dvc").read_text().split("md5: ")[1].split(".dir")[0]
    assert row["dataset_version"] == f"md5:{pin}"
    low, high = row["crowding"]
    assert (low["score_thresh"], high["score_thresh"]) == (0.0, 0.25)
    assert low["num_images"] == 4 and low["num_gt"] == high["num_gt"] >= 4 * 4  # 7-12 drawn per scene, a few left out
    assert sum(b["num_gt"] for b in low["per_bin"].values()) == low["num_gt"]
    assert all(h["matched"] <= lo["matched"] for h, lo in zip(high["per_bin"].values(), low["per_bin"].values(),
                                                               strict=True))
    table = capsys.readouterr().out
    assert "| hog_detector@shapes#0 | 0.25 |" in table and "recall 3+/cell (n)" in table
    # A model that is not in the file is an error naming what is there.
    assert yc.main([str(results), "--models", "yolo_v1", "--out", str(out)]) == 2
    assert "no ok trial with a checkpoint for yolo_v1" in capsys.readouterr().err


def test_assignment_only_needs_no_checkpoint(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """yolo_v1's target assignment on 6 crowded images: every lone object is trained, exactly one of each pair
    (one object per cell), at most a third of the 3+ bin.  A model without ``assigned`` has no row."""
    from bench.config.catalog import Catalog, effective_trial

    cat = Catalog(project / "configs")
    records = []
    for name in ("yolo_v1", "hog_detector"):
        cfg = effective_trial(cat.model(name), cat.dataset("shapes"), cat.profile("smoke"), seed=0)
        records.append({"trial_id": cfg.trial_id, "model": name, "task": cfg.task, "dataset": "shapes",
                        "profile": "smoke", "seed": 0, "status": "ok", "config": cfg.model_dump(mode="json"),
                        "provenance": {"config_hash": cfg.config_hash()}, "checkpoint": None, "metrics": {}})
    results = tmp_path / "results.json"
    results.write_text(json.dumps(records))
    out = tmp_path / "crowding.json"
    # Without --assignment-only a checkpoint is required.
    assert yc.main([str(results), "--models", "yolo_v1", "--out", str(out)]) == 2
    assert "no ok trial with a checkpoint for yolo_v1" in capsys.readouterr().err
    args = [str(results), "--assignment-only", "--max-images", "6", "--device", "cpu", "--project", str(project),
            "--out", str(out)]
    assert yc.main(args) == 0
    v1, hog = json.loads(out.read_text())["results"]
    assert hog["assignment"] is None and v1["crowding"] == [] and v1["checkpoint"] is None
    bins = v1["assignment"]["per_bin"]
    assert bins["1"]["recall"] == 1.0 and bins["2"]["recall"] == 0.5 and bins["1"]["num_gt"] > 0
    assert bins["3+"]["num_gt"] == 0 or bins["3+"]["recall"] <= 1 / 3
    assert "| yolo_v1@shapes#0 | 1.000" in capsys.readouterr().out
