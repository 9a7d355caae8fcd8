"""The driver end to end (real Ray, MLflow on SQLite, the results store): a killed `bench run` started
again trains only the unfinished trials, and a no-op rerun starts no Ray at all."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from bench.results.store import ResultsStore
from tests.e2e.test_e2e import BIN, ROOT, base_env, stop_process_tree

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("ray")]


def run_args(seeds: int) -> list[str]:
    return [str(BIN / "bench"), "run", "simple_cnn", "--profile", "smoke", "--dataset", "shapes",
            "--seeds", str(seeds), "--no-report"]


def test_killed_driver_rerun_trains_only_unfinished_trials(project: Path, tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    env = base_env(BENCH_RESULTS=str(db), MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(run_args(4), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while time.time() < deadline and first.poll() is None:  # kill the driver once a trial has landed
        if db.exists() and ResultsStore(db).count_records() >= 1:
            break
        time.sleep(0.2)
    assert first.poll() is None, "the first run ended before being killed:\n" + (tmp_path / "first.log").read_text()
    stop_process_tree(first)  # SIGKILL: no cleanup, no atexit
    store = ResultsStore(db)
    finished = store.count_records()
    assert 1 <= finished < 4, f"killed mid-suite: {finished} of 4 trials had landed"
    (killed_run,) = store.runs()
    assert killed_run.status == "running"  # it never got to say otherwise

    second = subprocess.run(run_args(4), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    trained = store.count_records() - finished
    assert trained == 4 - finished  # only the unfinished trials were trained again
    rerun = store.runs()[0]
    members = store.members(rerun.name)
    assert len(members) == 4 and sum(m.cached for m in members) == finished
    assert rerun.status == "finished"

    t0 = time.perf_counter()
    third = subprocess.run(run_args(4), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    noop_s = time.perf_counter() - t0
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert store.count_records() == 4  # nothing trained
    assert third.stdout.count("cached") >= 4 and "Ray " not in third.stdout  # Ray was never started
    assert noop_s < 60  # generous: a noisy shared machine; benchmarks/noop_rerun.py measures the ratio
