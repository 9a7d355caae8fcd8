"""The SQLite results store: atomic writes, cache look-ups, run membership, latest per model."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.results.store import ResultsStore, default_path
from tests.results.helpers import record


def test_add_reuse_members_and_samples_round_trip(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "r.db")
    store.start_run("r1", "all", "cpu", "sha", "code")
    samples = {"image_id": [0, 1], "label": [0, 1], "pred": [0, 0], "top5": [True, True]}
    rid = store.add("r1", record(key="k1", samples=samples))
    store.add("r1", record(model="unet", key="k2", status="failed"))
    assert store.cached("k1").id == rid
    assert store.cached("k2") is None  # failed records are never reused
    assert store.cached("nope") is None
    assert store.samples(rid) == samples
    assert store.members("r1")[0].record.samples is None  # samples live apart from the record
    assert store.with_samples(store.members("r1")[0]).samples == samples
    store.start_run("r2", "all", "cpu", "sha", "code")
    store.reuse("r2", rid)
    (m,) = store.members("r2")
    assert m.cached and m.id == rid
    assert store.count_records() == 2


def test_unsynced_until_set_synced_and_cached_carries_run_id(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "r.db")
    store.start_run("r1", "all", "cpu", "sha", "code")
    rid = store.add("r1", record(key="k1"))
    assert [s.id for s in store.unsynced()] == [rid]
    store.set_synced(rid, "mlflow-run-1")
    assert store.unsynced() == []
    assert store.cached("k1").record.mlflow_run_id == "mlflow-run-1"


def test_a_failing_write_leaves_nothing_half_written(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "r.db")
    store.start_run("r1", "all", "cpu", "sha", "code")
    bad = record(key="k1", samples={"x": {1, 2}})  # a set is not JSON: fails after the record row insert
    with pytest.raises(TypeError):
        store.add("r1", bad)
    assert store.count_records() == 0 and store.members("r1") == []
    with pytest.raises(ValueError, match="no key"):
        store.add("r1", record().model_copy(update={"key": None}))


def test_latest_takes_every_seed_of_the_newest_run_per_model(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "r.db")
    store.start_run("old", "all", "cpu", "sha", "code")
    for s in (0, 1):
        store.add("old", record(seed=s, top1=0.5, key=f"old{s}"))
    store.add("old", record(model="unet", key="u0"))
    store.start_run("new", "resnet18", "cpu", "sha", "code")
    store.add("new", record(seed=0, top1=0.8, key="new0"))
    latest = store.latest()
    got = sorted((s.run, s.record.model, s.record.seed) for s in latest)
    assert got == [("new", "resnet18", 0), ("old", "unet", 0)]
    assert store.latest(profiles=["gpu"]) == []


def test_default_path_honours_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_RESULTS", raising=False)
    assert default_path(tmp_path) == tmp_path / "results" / "results.db"
    monkeypatch.setenv("BENCH_RESULTS", str(tmp_path / "persist"))
    assert default_path(tmp_path) == tmp_path / "persist" / "results.db"
    monkeypatch.setenv("BENCH_RESULTS", str(tmp_path / "x.db"))
    assert default_path(tmp_path) == tmp_path / "x.db"
