"""The trial wrapper: a modified dataset is refused with the fix, and failures become records."""

from __future__ import annotations

from pathlib import Path

from bench.config.catalog import Catalog, effective_trial
from bench.orchestration.trial import RunContext, run_trial
from tests.conftest import ROOT, copy_project


def smoke_trial(model: str, project: Path):  # noqa: ANN201 - TrialConfig
    cat = Catalog(project / "configs")
    return effective_trial(cat.model(model), cat.dataset("shapes"), cat.profile("smoke"), seed=0)


def test_modified_dataset_file_fails_the_trial_with_fix(project: Path, tmp_path: Path) -> None:
    proj = copy_project(ROOT, tmp_path / "p", with_data=True)
    ann = proj / "datasets" / "shapes" / "annotations" / "val.json"
    ann.write_text(ann.read_text().replace('"iscrowd":0', '"iscrowd":1', 1))
    events: list[dict] = []
    result = run_trial(smoke_trial("unet", proj), RunContext(str(proj), "t", "sha"), events.append)
    assert result.status == "failed"
    assert "DataVersionError" in result.error
    assert "shapes/annotations/val.json" in result.error  # names the modified file
    assert "bench data pull shapes --force" in result.error
    assert result.provenance.config_hash and result.trial_id == "unet@shapes#0"
    assert not result.metrics


def test_ok_trial_record_has_provenance(project: Path, tmp_path: Path) -> None:
    events: list[dict] = []
    result = run_trial(smoke_trial("unet", ROOT), RunContext(str(ROOT), "pytest-trial", "sha1"), events.append)
    assert result.status == "ok", result.traceback
    assert [e["event"] for e in events][:2] == ["data", "train"]
    assert result.provenance.dataset_version and result.provenance.git_sha == "sha1"
    assert result.provenance.metric_spec.startswith("bench-metrics/")
    assert {"dice", "jaccard", "dice_fg"} <= set(result.metrics)
    assert result.timings.compute_s > 0 and result.timings.inference_ms_per_image
    assert result.history and result.history[0].epoch == 1
    assert result.history[0].train_acc is not None and 0 <= result.history[0].train_acc <= 1  # pixel accuracy
    assert result.training and result.training.stopped_by == "schedule" and result.training.epochs_done == 1.0
    assert result.test_images == 8  # smoke: max_eval_images
    assert result.baseline and (result.baseline.name, result.baseline.metric) == ("all background", "jaccard")
    assert result.baseline.p_value is not None and 0 <= result.baseline.p_value <= 1
    assert Path(result.checkpoint).is_file()
    # Per-image samples of the 8 test images, and a bootstrap CI around each headline metric.
    assert result.samples and len(result.samples["image_id"]) == 8 and len(result.samples["confmat"]) == 8
    assert result.ci_spec and result.ci_spec.samples == result.config["train"]["bootstrap_samples"]
    headline = ("jaccard", "dice", "jaccard_fg", "dice_fg", "sensitivity_fg", "specificity_fg", "pixel_accuracy")
    assert set(result.ci) == {k for k in headline if result.metrics.get(k) is not None}
    assert all(iv.low <= result.metrics[k] <= iv.high for k, iv in result.ci.items())


def test_confidence_fills_samples_and_intervals(project: Path) -> None:
    import numpy as np

    from bench.orchestration.trial import _confidence

    cfg = smoke_trial("unet", ROOT)
    rng = np.random.default_rng(0)
    cms = rng.integers(0, 50, (12, 3, 3)).astype(np.int32)
    samples = {"image_id": np.arange(12), "confmat": cms}
    stored, ci, spec = _confidence(cfg, samples)
    assert stored == {"image_id": list(range(12)), "confmat": cms.tolist()}
    assert spec is not None and (spec.samples, spec.seed, spec.level) == (cfg.train.bootstrap_samples, 0, 0.95)
    assert set(ci) == {"jaccard", "dice", "jaccard_fg", "dice_fg", "sensitivity_fg", "specificity_fg", "pixel_accuracy"}
    assert all(iv.low <= iv.high for iv in ci.values())
    none = cfg.model_copy(update={"train": cfg.train.model_copy(update={"bootstrap_samples": 0})})
    assert _confidence(none, samples) == (stored, {}, None)
    assert _confidence(cfg, None) == (None, {}, None)
