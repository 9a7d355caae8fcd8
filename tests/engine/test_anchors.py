"""Anchors from k-means on the training boxes: the clustering, the cache, the task filling them, MLflow logging."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

from bench.config.catalog import Catalog, effective_trial
from bench.engine import anchors as A
from bench.models import MODELS


def test_kmeans_finds_separated_shape_clusters_sorted_by_area() -> None:
    rng = np.random.default_rng(1)
    truth = np.array([[10.0, 10.0], [30.0, 15.0], [15.0, 40.0]])
    wh = np.concatenate([rng.normal(c, 0.5, (100, 2)) for c in truth])
    found = A.kmeans_anchors(wh, 3)
    assert np.allclose(found, truth[np.argsort(truth.prod(1))], atol=0.5)
    assert A.mean_best_iou(wh, found) > 0.9


def test_iou_distance_not_euclidean() -> None:
    # Two boxes 10x10 and 20x20 sharing a centre overlap with IoU 1/4; the formula, by hand.
    assert np.isclose(A.wh_iou(np.array([[10.0, 10.0]]), np.array([[20.0, 20.0]]))[0, 0], 0.25)
    with pytest.raises(ValueError, match="explicit `anchors`"):
        A.kmeans_anchors(np.array([[5.0, 5.0], [5.0, 5.0]]), 2)


def test_training_split_anchors_are_cached(tmp_path: Path) -> None:
    gt = {"images": [{"id": 1, "width": 64, "height": 32}, {"id": 2, "width": 64, "height": 64}],
          "annotations": [{"image_id": 1, "bbox": [0, 0, 8, 8]}, {"image_id": 2, "bbox": [0, 0, 16, 8]},
                          {"image_id": 2, "bbox": [0, 0, 32, 32], "iscrowd": 1}]}
    # At a 128 px input: image 1 is scaled (2, 4), image 2 (2, 2); the crowd box is left out.
    assert A.training_wh(gt, 128).tolist() == [[16.0, 32.0], [32.0, 16.0]]
    path = tmp_path / "a.json"
    first = A.for_training_split(gt, 2, 128, path)
    again = A.for_training_split(gt, 2, 128, path)
    assert not first.hit and again.hit and again.anchors == first.anchors and path.is_file()
    assert first.record()["k"] == 2 and first.mean_iou == pytest.approx(1.0)


ANCHOR_MODELS = [n for n in MODELS.names() if "anchors" in inspect.signature(MODELS.get(n).obj).parameters]


@pytest.mark.parametrize("name", ANCHOR_MODELS)
def test_task_fills_kmeans_anchors_from_the_training_split(name: str, project: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Every model with an ``anchors`` parameter gets ``num_anchors`` k-means anchors of shapes' training boxes
    at its input size, recorded for the trial record (and so MLflow)."""
    from bench.engine.detection import DetectionTask
    from bench.tracking.mlflow_writer import derived_params

    monkeypatch.setenv("BENCH_PROPOSAL_CACHE", str(tmp_path / "proposals"))
    cat = Catalog(project / "configs")
    cfg = effective_trial(cat.model(name), cat.dataset("shapes"), cat.profile("smoke"), seed=0)
    task = DetectionTask(cfg, project / cfg.dataset.root)
    got = task.anchor_params()["anchors"]
    k = cfg.params.get("num_anchors", inspect.signature(MODELS.get(cfg.builder).obj).parameters["num_anchors"].default)
    assert len(got) == k
    areas = [w * h for w, h in got]
    assert areas == sorted(areas)
    wh = A.training_wh(task.records("train").gt, cfg.train.image_size)
    assert np.allclose(got, A.kmeans_anchors(wh, k))
    rec = task.extras()["anchors"]
    assert rec["image_size"] == cfg.train.image_size and rec["boxes"] == len(wh)
    assert (tmp_path / "anchors").is_dir()

    from bench.results.record import Provenance, TrialResult

    result = TrialResult(trial_id="t", model=name, task="detection", dataset="shapes", profile="smoke", seed=0,
                         status="ok", provenance=Provenance(config_hash="x"), extras=task.extras())
    assert derived_params(result)["anchors.kmeans"] == str(rec["anchors"])
