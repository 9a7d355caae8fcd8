"""Leaderboard tables from a real MLflow store: Siamese rows also rank on classification."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.config.catalog import Catalog, effective_trial
from bench.orchestration.trial import RunContext, base_result
from bench.reports.leaderboard import collect, to_html, to_markdown
from bench.results.record import Baseline, EpochLog, Timings, TrainingEnd
from bench.tracking.mlflow_writer import MlflowWriter

ROOT = Path(__file__).resolve().parents[2]


def _record(model: str, metrics: dict[str, float], status: str = "ok", **fields: object) -> object:
    cat = Catalog(ROOT / "configs")
    cfg = effective_trial(cat.model(model), cat.dataset("shapes"), cat.profile("smoke"), seed=0)
    return base_result(cfg, RunContext(project=str(ROOT), run_name="t", git_sha="abc"), status=status,
                       metrics=metrics, num_params=1000, timings=Timings(train_s=1.0, inference_ms_per_image=0.5),
                       **fields)


def _majority(p_value: float) -> Baseline:
    return Baseline(name="majority class", metric="top1", score=0.34, test="binomial, one-sided", p_value=p_value,
                    significant=p_value < 0.05, alpha=0.05)


@pytest.mark.xdist_group("mlflow-local")
def test_rows_show_baseline_training_end_and_test_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    writer = MlflowWriter(tmp_path)
    writer.start_parent("t", tags={"profile": "cpu", "git_sha": "abc"}, params={})
    history = [EpochLog(epoch=e, train_loss=1.0 / e, train_acc=0.5 + e / 100, lr=0.1, seconds=1.0) for e in (1, 2)]
    writer.log_trial(_record("resnet18", {"top1": 0.36}, history=history, test_images=300, baseline=_majority(0.3),
                             training=TrainingEnd(epochs_planned=30, epochs_done=1.5, stopped_by="time_limit")), [])
    writer.log_trial(_record("simple_cnn", {"top1": 0.9}, test_images=300, baseline=_majority(1e-9),
                             history=[EpochLog(epoch=1, train_loss=0.25, lr=0.1, seconds=1.0)],
                             training=TrainingEnd(epochs_planned=30, epochs_done=30.0, stopped_by="schedule")), [])
    writer.log_trial(_record("vgg11", {}, status="failed", error="RuntimeError: out of memory"), [])
    writer.end_parent(failed=1, total=3)
    parent, tables = collect(writer.uri)
    md = to_markdown(parent, tables)
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in md.splitlines() if line.startswith("| ")}
    assert "| 1.5/30 ep, time limit | 0.5200 | 300 | ok | ≈ baseline |" in rows["resnet18"]
    assert "| 30/30 ep | loss 0.25 | 300 | ok |  |" in rows["simple_cnn"]  # no accuracy: the loss
    assert "failed: RuntimeError: out of memory" in rows["vgg11"] and "≈ baseline" not in rows["vgg11"]
    assert "Baseline: majority class: top1 = 0.3400 (binomial, one-sided)" in md
    assert "Test images scored: 300." in md
    assert "| training | train acc | test n | status | notes |" in md
    page = to_html(parent, tables)
    assert "≈ baseline" in page and "1.5/30 ep, time limit" in page and "<td>300</td>" in page
    assert "Test images scored: 300." in page


@pytest.mark.xdist_group("mlflow-local")
def test_siamese_rows_join_the_classification_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    writer = MlflowWriter(tmp_path)
    writer.start_parent("t", tags={"profile": "smoke", "git_sha": "abc"}, params={})
    writer.log_trial(_record("resnet18", {"top1": 0.8, "top5": 1.0, "macro_f1": 0.79}), [])
    writer.log_trial(_record("siamese_triplet", {"top1": 0.9, "macro_f1": 0.88, "roc_auc": 0.97, "eer": 0.05,
                                                 "accuracy": 0.93}), [])
    writer.end_parent(failed=0, total=2)
    _, tables = collect(writer.uri)
    by_task = {(t.task, t.dataset): t for t in tables}
    cls = by_task["classification", "shapes"]
    assert [r.model for r in cls.rows] == ["siamese_triplet", "resnet18"]  # sorted by top-1
    assert cls.columns[-1] == "roc_auc" and {"top1", "macro_f1"} <= set(cls.columns)
    ver = by_task["verification", "shapes"]
    assert [r.model for r in ver.rows] == ["siamese_triplet"] and ver.columns[0] == "roc_auc"
    md = to_markdown(*collect(writer.uri))
    assert "| siamese_triplet | 0.9000 | — | 0.8800 | 0.9700 |" in md
