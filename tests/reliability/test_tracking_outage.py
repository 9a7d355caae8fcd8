"""A tracking server stopped mid-suite loses nothing: the run goes on, its records wait in the results
store, `bench run` names the trials waiting, and after a restart `bench sync` makes MLflow equal to
the store (one finished run per trial, no duplicate)."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from bench.results.store import ResultsStore
from tests.e2e.test_e2e import BIN, ROOT, base_env, free_port, stop_process_tree

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("ray")]

SEEDS = 4


def start_server(folder: Path, port: int) -> subprocess.Popen[bytes]:
    """``mlflow server`` on 127.0.0.1:``port`` over ``folder``'s SQLite db, once healthy."""
    log = (folder / "server.log").open("a")
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", str(folder / "art")],
        env=base_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                return proc
        except OSError:
            time.sleep(0.3)
    stop_process_tree(proc)
    pytest.fail("mlflow server did not become healthy:\n" + (folder / "server.log").read_text()[-3000:])


def mlflow_trials(uri: str) -> dict[str, list]:
    """Trial child runs by trial key (every run, whatever its status, deleted ones excepted)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("bench")
    out: dict[str, list] = {}
    for r in client.search_runs([exp.experiment_id], "tags.`bench.kind` = 'trial'"):
        out.setdefault(r.data.tags["bench.trial_key"], []).append(r)
    return out


def test_stopped_tracking_server_loses_nothing_and_sync_levels_it(project: Path, tmp_path: Path) -> None:
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = start_server(tmp_path, port)
    db = tmp_path / "results.db"
    env = base_env(BENCH_RESULTS=str(db), MLFLOW_TRACKING_URI=uri)
    # Trials of a few seconds, two at a time on this machine: some land after the server is stopped.
    args = [str(BIN / "bench"), "run", "simple_cnn", "--profile", "smoke", "--dataset", "shapes", "--seeds",
            str(SEEDS), "--no-report", "--set", "train.epochs=3", "--set", "train.max_train_images=64"]
    log = (tmp_path / "run.log").open("w")
    run = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and run.poll() is None:  # stop MLflow once it has taken one record
            if db.exists() and ResultsStore(db).count_records() - len(ResultsStore(db).unsynced()) >= 1:
                break
            time.sleep(0.1)
        stop_process_tree(server)
        run.wait(timeout=300)
    finally:
        stop_process_tree(run)
        stop_process_tree(server)
    out = (tmp_path / "run.log").read_text()
    assert run.returncode == 0, out[-4000:]  # the suite went on
    store = ResultsStore(db)
    assert store.count_records() == SEEDS  # nothing lost
    waiting = [s.record.trial_id for s in store.unsynced()]
    assert 1 <= len(waiting) < SEEDS, out[-4000:]
    assert f"{len(waiting)} trial(s) are waiting to be synced to MLflow" in out
    assert all(t in out.split("waiting to be synced")[1] for t in waiting)  # named, not only counted

    server = start_server(tmp_path, port)
    try:
        sync = subprocess.run([str(BIN / "bench"), "sync"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)
        assert sync.returncode == 0, sync.stdout + sync.stderr
        assert f"synced {len(waiting)} of {len(waiting)}" in sync.stdout
        runs = mlflow_trials(uri)
        (suite,) = store.runs()
        records = [s.record for s in store.members(suite.name)]
        assert set(runs) == {r.key for r in records}
        for r in records:  # MLflow level with the store: one finished run per record, the same numbers
            (mr,) = runs[r.key]
            assert mr.info.status == "FINISHED" and mr.info.run_id == r.mlflow_run_id
            assert mr.data.tags["mlflow.runName"] == r.trial_id
            want = {f"test_{k}": v for k, v in r.metrics.items() if v is not None}
            assert want and {k: mr.data.metrics.get(k) for k in want} == pytest.approx(want)
            assert mr.data.metrics["test_images"] == r.test_images
        from mlflow.tracking import MlflowClient

        parent = MlflowClient(uri).get_run(suite.mlflow_parent_id)
        assert parent.info.status == "FINISHED"  # closed by the sync: the run's own end was lost
        again = subprocess.run([str(BIN / "bench"), "sync"], cwd=ROOT, env=env, capture_output=True, text=True,
                               timeout=120)
        assert again.returncode == 0 and "nothing to sync" in again.stdout
        assert sum(len(v) for v in mlflow_trials(uri).values()) == SEEDS
    finally:
        stop_process_tree(server)


def test_unreachable_server_at_start_the_run_goes_on(project: Path, tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    env = base_env(BENCH_RESULTS=str(db), MLFLOW_TRACKING_URI="http://127.0.0.1:9")  # discard port: nothing listens
    res = subprocess.run([str(BIN / "bench"), "run", "simple_cnn", "--profile", "smoke", "--dataset", "shapes",
                          "--no-report"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "cannot use MLflow at http://127.0.0.1:9" in out and "The run goes on" in out
    assert "1 trial(s) are waiting to be synced to MLflow (http://127.0.0.1:9): simple_cnn@shapes#0" in " ".join(
        out.split())
    assert [s.record.trial_id for s in ResultsStore(db).unsynced()] == ["simple_cnn@shapes#0"]
