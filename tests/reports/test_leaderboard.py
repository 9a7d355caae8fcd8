"""Leaderboard tables from a real MLflow store: Siamese rows also rank on classification."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.config.catalog import Catalog, effective_trial
from bench.orchestration.trial import RunContext, base_result
from bench.reports.leaderboard import collect, to_markdown
from bench.results.record import Timings
from bench.tracking.mlflow_writer import MlflowWriter

ROOT = Path(__file__).resolve().parents[2]


def _record(model: str, metrics: dict[str, float]) -> object:
    cat = Catalog(ROOT / "configs")
    cfg = effective_trial(cat.model(model), cat.dataset("shapes"), cat.profile("smoke"), seed=0)
    return base_result(cfg, RunContext(project=str(ROOT), run_name="t", git_sha="abc"), status="ok",
                       metrics=metrics, num_params=1000, timings=Timings(train_s=1.0, inference_ms_per_image=0.5))


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
