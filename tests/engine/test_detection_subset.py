"""A subsampled detection evaluation scores the evaluated images only."""

from __future__ import annotations

from pathlib import Path

from bench.config.catalog import Catalog, effective_trial
from bench.engine.data import subsample
from bench.engine.detection import DetectionTask


def test_subsampled_evaluation_holds_only_the_subsample_ground_truth(project: Path) -> None:
    cat = Catalog(project / "configs")
    cfg = effective_trial(cat.model("faster_rcnn"), cat.dataset("shapes"), cat.profile("smoke"), seed=0)
    task = DetectionTask(cfg, project / cfg.dataset.root)
    ds = subsample(task.dataset("test", train=False), 8, seed=0)
    ids = {int(ds[i][1]["image_id"]) for i in range(len(ds))}
    gt = task.evaluator("test", ds.indices).gt
    assert {im["id"] for im in gt["images"]} == ids and len(ids) == 8
    assert {a["image_id"] for a in gt["annotations"]} <= ids
    full = task.evaluator("test").gt
    assert len(full["images"]) > 8
