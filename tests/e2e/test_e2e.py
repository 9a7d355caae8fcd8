"""End to end, with every component real: local Ray, a real `mlflow server`, a `ray start` cluster
receiving `ray job submit`, and the failure path.  These share Ray's machine-wide state, so they
run in one xdist group (sequentially, on one worker)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("ray")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Return once 127.0.0.1:``port`` accepts connections; fail if ``proc`` exits or time runs out."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"`ray start --head` exited with {proc.returncode} before its dashboard came up")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    pytest.fail(f"the Ray dashboard did not listen on port {port} within {timeout:.0f} s")


def stop_process_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``proc`` and every process it started, nothing else (``ray stop --force``, scoped).

    Not SIGTERM first: some Ray worker ignores it and the grace period cost 30 s per run (measured).
    """
    import psutil

    try:
        root = psutil.Process(proc.pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(tree, timeout=30)


def base_env(**extra: str) -> dict[str, str]:
    """The environment of a `bench` subprocess: offline, plain progress, and a fresh results store and
    checkpoint root (never the repository's: no trial reused or resumed from an earlier call) unless
    ``extra`` names them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_", "BENCH_"))}
    env.update(PATH=f"{BIN}:{env.get('PATH', '')}", HF_HUB_OFFLINE="1", BENCH_PLAIN_PROGRESS="1",
               BENCH_RESULTS=str(Path(tempfile.mkdtemp(prefix="bench-results-")) / "results.db"),
               # Checkpoint folders are named by trial key: keep other sessions' leftovers out of reach.
               BENCH_CHECKPOINTS=tempfile.mkdtemp(prefix="bench-ckpt-"))
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """(b) A real MLflow tracking server on 127.0.0.1, SQLite-backed, artifacts proxied."""
    tmp = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    env = base_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    log = (tmp / "server.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}", "--artifacts-destination", str(tmp / "art")],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url + "/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("mlflow server did not become healthy:\n" + (tmp / "server.log").read_text()[-3000:])
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def bench(*args: str, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "bench"), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def children(uri: str, parent_id: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("bench")
    return client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")


def test_run_all_smoke_local_ray_into_mlflow_server(mlflow_server: str, tmp_path: Path, project: Path) -> None:
    """(a)+(b): `bench run all --profile smoke` through a local Ray, runs land in the server."""
    from mlflow.tracking import MlflowClient

    out = tmp_path / "out.json"
    res = bench("run", "all", "--profile", "smoke", "--output", str(out), "--no-report",
                env=base_env(MLFLOW_TRACKING_URI=mlflow_server))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    records = json.loads(out.read_text())
    assert {r["model"] for r in records} == {"resnet18", "faster_rcnn_fpn", "unet"}
    for r in records:
        assert r["status"] == "ok", r["error"]
        assert r["error"] is None and r["mlflow_run_id"]
        assert r["dataset"] == "shapes" and r["task"] in ("classification", "detection", "semantic_segmentation")
        assert r["provenance"]["dataset_version"].startswith("md5:")
        assert r["provenance"]["packages"]["torch"].startswith("2.14.1")
        assert r["timings"]["compute_s"] > 0 and r["timings"]["train_s"] > 0
    # 3 one-CPU trials on a 2-CPU Ray: never more than 2 at once (a blocking call inside a trial
    # would let Ray hand its CPU to a third one).
    from datetime import datetime

    spans = [(datetime.fromisoformat(r["started_at"]), datetime.fromisoformat(r["finished_at"])) for r in records]
    for i, (s0, e0) in enumerate(spans):
        overlapping = [j for j, (s1, e1) in enumerate(spans) if j != i and s1 < e0 and s0 < e1]
        assert len(overlapping) <= 1 or not all(
            spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1] for a in overlapping for b in overlapping if a < b
        ), f"more than 2 trials ran at once on 2 CPUs: {spans}"
    metrics = {r["model"]: r["metrics"] for r in records}
    assert {"top1", "macro_f1"} <= set(metrics["resnet18"])
    assert {"mAP", "mAP_50", "mAP_75"} <= set(metrics["faster_rcnn_fpn"])
    assert {"dice", "jaccard"} <= set(metrics["unet"])

    client = MlflowClient(mlflow_server)
    run = client.get_run(records[0]["mlflow_run_id"])
    parent_id = run.data.tags["mlflow.parentRunId"]
    kids = children(mlflow_server, parent_id)
    assert len(kids) == 3 and all(k.info.status == "FINISHED" for k in kids)
    for kid in kids:
        tags, params = kid.data.tags, kid.data.params
        for key in ("model", "task", "dataset", "dataset_md5", "git_sha", "profile", "seed", "device",
                    "version.torch"):
            assert tags.get(key), key
        assert params["profile"] == "smoke" and "train.lr" in params
        hist = client.get_metric_history(kid.info.run_id, "train_loss")
        assert [m.step for m in hist] == [1]
        arts = {a.path for a in client.list_artifacts(kid.info.run_id)}
        assert "result.json" in arts and "plots" in arts
        plots = {a.path for a in client.list_artifacts(kid.info.run_id, "plots")}
        assert "plots/training_curve.png" in plots
        task_plot = "plots/pr_curves.png" if tags["task"] == "detection" else "plots/confusion_matrix.png"
        assert task_plot in plots, plots

    # the leaderboard from those runs
    rep = bench("report", "--results", str(out), "--out", str(tmp_path / "reports"), env=base_env())
    assert rep.returncode == 0, rep.stderr
    md = (tmp_path / "reports" / "leaderboard.md").read_text()
    for model in ("resnet18", "faster_rcnn_fpn", "unet"):
        assert f"| {model} |" in md
    assert "## detection on shapes, profile smoke (sorted by mAP, higher is better)" in md
    html = (tmp_path / "reports" / "leaderboard.html").read_text()
    assert "<table class='lb'>" in html and "http" not in html.split("<body>")[1]  # self-contained


def test_failed_build_does_not_stop_the_others(mlflow_server: str, tmp_path: Path, project: Path) -> None:
    """(e): a model whose build raises, and one asking for a GPU nobody has, are recorded failed with
    their reasons (the second before submission, without hanging); the other trial runs."""
    configs = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", configs)
    (configs / "models" / "broken_model.yaml").write_text("description: build raises\n")
    # a resnet18 that asks for a GPU this CPU-only Ray does not have: must fail fast, not hang
    (configs / "models" / "greedy.yaml").write_text(
        "model: resnet18\nprofiles:\n  smoke:\n    resources: {num_cpus: 1, num_gpus: 1}\n")
    suite = {"models": ["broken_model", "greedy", "resnet18"], "dataset": "shapes"}
    (configs / "suites" / "with_broken.yaml").write_text(yaml.safe_dump(suite))
    out = tmp_path / "out.json"
    env = base_env(MLFLOW_TRACKING_URI=mlflow_server, BENCH_CONFIGS=str(configs),
                   BENCH_PLUGINS="tests.plugins.broken_model", PYTHONPATH=str(ROOT))
    res = bench("run", "with_broken", "--profile", "smoke", "--output", str(out), "--no-report", env=env)
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]
    records = {r["model"]: r for r in json.loads(out.read_text())}
    assert set(records) == {"broken_model", "greedy", "resnet18"}, res.stdout[-3000:] + res.stderr[-3000:]
    assert records["resnet18"]["status"] == "ok", records["resnet18"]["error"]
    broken = records["broken_model"]
    assert broken["status"] == "failed"
    assert "RuntimeError: deliberately broken builder" in broken["error"]
    assert "build_broken_model" in broken["traceback"]
    greedy = records["greedy"]
    assert greedy["status"] == "failed"
    assert greedy["error"].startswith("ResourceUnavailable: no node can satisfy")
    assert "GPU=1" in greedy["error"] and "the cluster's nodes offer: {CPU=" in greedy["error"]
    from mlflow.tracking import MlflowClient

    run = MlflowClient(mlflow_server).get_run(broken["mlflow_run_id"])
    assert run.info.status == "FAILED"
    assert "deliberately broken" in run.data.tags["error"]


def test_ray_job_submit_to_started_cluster(mlflow_server: str, project: Path) -> None:
    """(d): `ray start --head`, then `ray job submit --working-dir . -- bench run resnet18 --profile smoke`."""
    from mlflow.tracking import MlflowClient

    gcs, dash = free_port(), free_port()
    # Ray 2.60 turns token auth on for new clusters; the job CLI must then send the token too.
    env = base_env(RAY_AUTH_MODE="token")
    ray = str(BIN / "ray")
    # the token the cluster and the job CLI share (created once per machine, kept if present)
    subprocess.run([ray, "get-auth-token", "--generate"], env=env, capture_output=True, timeout=60, check=True)
    # Every port explicit and free: the default agent port may still be held by the local Ray of the
    # previous test while it shuts down, and then job submission finds no agent.
    ports = {f"--{name}={free_port()}" for name in ("dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                                    "runtime-env-agent-port", "metrics-export-port")}
    # `--block` keeps `ray start` in the foreground, so every process of this cluster is one of its
    # descendants and the teardown can stop exactly those: `ray stop` would stop every Ray cluster
    # on the machine, including a benchmark someone is running next to the tests.
    head = subprocess.Popen(
        [ray, "start", "--head", "--block", f"--port={gcs}", "--num-cpus=2", "--include-dashboard=true",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", "--disable-usage-stats", *sorted(ports)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        wait_for_port(dash, head)
        runtime_env = json.dumps({"env_vars": {"MLFLOW_TRACKING_URI": mlflow_server, "BENCH_GIT_SHA": "e2e-test"}})
        for _ in range(30):  # the job agent comes up a few seconds after the dashboard port opens
            job = subprocess.run(
                [ray, "job", "submit", f"--address=http://127.0.0.1:{dash}", "--working-dir", ".",
                 "--runtime-env-json", runtime_env, "--", "bench", "run", "resnet18", "--dataset", "shapes",
                 "--profile", "smoke", "--no-report"],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
            )
            if "No available agent to submit job" not in job.stderr + job.stdout:
                break
            time.sleep(2)
        assert job.returncode == 0, job.stdout[-4000:] + job.stderr[-2000:]
        assert "succeeded" in job.stdout
    finally:
        stop_process_tree(head)
    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("bench")
    parents = client.search_runs([exp.experiment_id], "tags.`bench.kind` = 'suite' and tags.target = 'resnet18'",
                                 order_by=["attributes.start_time DESC"], max_results=1)
    assert parents, "the job's parent run did not reach the tracking server"
    kids = children(mlflow_server, parents[0].info.run_id)
    assert len(kids) == 1 and kids[0].info.status == "FINISHED"
    assert kids[0].data.tags["git_sha"] == "e2e-test"
    assert kids[0].data.tags["dataset_md5"].startswith("md5:")
