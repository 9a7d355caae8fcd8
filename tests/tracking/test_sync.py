"""`bench sync`: records that never reached MLflow are pushed under their run's parent, once."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.results.store import ResultsStore
from tests.results.helpers import record


def test_sync_pushes_unsynced_records_under_a_parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    from bench.tracking.mlflow_writer import MlflowWriter
    from bench.tracking.sync import sync_pending

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    store = ResultsStore(tmp_path / "results.db")
    store.start_run("offline-run", "all", "cpu", "sha", "code")  # ran while the server was down
    store.add("offline-run", record("a", key="ka"))
    store.add("offline-run", record("b", key="kb", status="failed", top1=None))
    writer = MlflowWriter(tmp_path)
    seen: list[tuple[str, str | None, str | None]] = []
    assert sync_pending(store, writer, lambda *a: seen.append(a)) == 0
    assert [s[0] for s in seen] == ["a@shapes#0", "b@shapes#0"] and all(s[1] and s[2] is None for s in seen)
    assert store.unsynced() == []
    parent = store.run_info("offline-run").mlflow_parent_id
    client = MlflowClient(writer.uri)
    assert client.get_run(parent).info.run_name == "offline-run"
    kids = client.search_runs([writer.experiment_id], f"tags.mlflow.parentRunId = '{parent}'")
    assert sorted(k.data.tags["model"] for k in kids) == ["a", "b"]
    assert store.cached("ka").record.mlflow_run_id in {k.info.run_id for k in kids}
    assert sync_pending(store, writer, lambda *a: seen.append(a)) == 0 and len(seen) == 2  # nothing twice


def test_sync_command_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from bench.cli.main import app

    monkeypatch.setenv("BENCH_RESULTS", str(tmp_path / "results.db"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    res = CliRunner().invoke(app, ["sync"])
    assert res.exit_code == 0 and "nothing to sync" in res.output
    store = ResultsStore(tmp_path / "results.db")
    store.start_run("r", "all", "cpu", "sha", "code")
    store.add("r", record(key="k"))
    res = CliRunner().invoke(app, ["sync"])
    assert res.exit_code == 0 and "synced 1 of 1" in res.output, res.output


def test_sync_adopts_a_run_mlflow_already_took_and_replaces_a_half_written_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exactly once: the answer to a logged record was lost (adopted, not logged twice); an outage cut
    another record's logging short (the RUNNING leftover is deleted, the record logged anew)."""
    from mlflow.tracking import MlflowClient

    from bench.tracking.mlflow_writer import MlflowWriter
    from bench.tracking.sync import log_record, sync_pending

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    store = ResultsStore(tmp_path / "results.db")
    store.start_run("r", "all", "cpu", "sha", "code")
    writer = MlflowWriter(tmp_path)
    store.set_parent("r", writer.start_parent("r", tags={}, params={}))
    a, b = record("a", key="ka"), record("b", key="kb")
    store.add("r", a)
    store.add("r", b)
    taken = log_record(writer, a, run="r")  # MLflow took it; the driver never heard back
    half = writer.client.create_run(writer.experiment_id, run_name="b@shapes#0",
                                    tags={"bench.kind": "trial", "bench.run": "r", "bench.trial_key": "kb"}).info.run_id
    store.finish_run("r", "finished")
    assert sync_pending(store, writer, lambda *a: None) == 0
    client = MlflowClient(writer.uri)
    live = client.search_runs([writer.experiment_id], "tags.`bench.kind` = 'trial'")
    assert sorted(r.data.tags["bench.trial_key"] for r in live) == ["ka", "kb"]
    assert all(r.info.status == "FINISHED" for r in live)
    assert store.cached("ka").record.mlflow_run_id == taken
    assert client.get_run(half).info.lifecycle_stage == "deleted"
    assert client.get_run(store.run_info("r").mlflow_parent_id).info.status == "FINISHED"
