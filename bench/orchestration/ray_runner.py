"""Fan trials out over Ray and collect their records as they finish (driver side).

``RAY_ADDRESS`` set (as under ``ray job submit``) -> connect to that cluster; otherwise start a
local Ray sized to the machine.  Each trial is one Ray task with the resources its config asks
for; GPU requests are dropped when the cluster has no GPU (Ray would wait for one forever).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.config.catalog import TrialConfig
from bench.orchestration.trial import RunContext, base_result, now, run_trial
from bench.results.record import TrialResult
from bench.tracking.mlflow_writer import in_ray_job

# Forwarded to every worker so they resolve the same registries and stay offline.
FORWARDED_ENV = ("BENCH_PLUGINS", "BENCH_CONFIGS", "BENCH_DVC_CACHE", "HF_HUB_OFFLINE", "BENCH_GIT_SHA")


@dataclass(frozen=True)
class ClusterInfo:
    """What the driver learned about the Ray cluster it is using."""

    address: str
    cpus: float
    gpus: float
    started_locally: bool


def init_ray(verbose: bool = False) -> ClusterInfo:
    """Connect to ``$RAY_ADDRESS`` or start a local Ray with every core of this machine."""
    import ray

    env_vars = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    env_vars.setdefault("HF_HUB_OFFLINE", "1")
    address = os.environ.get("RAY_ADDRESS")
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"log_to_driver": verbose, "logging_level": "WARNING"}
        # Inside `ray job submit` the job's runtime env (working dir + env vars) already reaches every
        # worker; passing another one here would replace it.
        if not in_ray_job():
            kwargs["runtime_env"] = {"env_vars": env_vars}
        if address:
            ray.init(address=address, **kwargs)
        else:
            # "local" always starts a fresh instance, never an unrelated `ray start` cluster on this host.
            ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, **kwargs)
    res = ray.cluster_resources()
    return ClusterInfo(
        address=address or "local", cpus=res.get("CPU", 0.0), gpus=res.get("GPU", 0.0), started_locally=not address
    )


def task_options(cfg: TrialConfig, cluster: ClusterInfo) -> dict[str, Any]:
    """Ray options of one trial: its config's resources, minus GPUs the cluster does not have."""
    r = cfg.resources
    opts: dict[str, Any] = {
        "num_cpus": min(r.num_cpus, cluster.cpus) if cluster.cpus else r.num_cpus,
        "num_gpus": r.num_gpus if cluster.gpus > 0 else 0,
        "max_retries": 0,  # a trial is not idempotent work worth repeating blindly; failures are recorded
        "name": f"trial:{cfg.trial_id}",
    }
    if r.memory_gb:
        opts["memory"] = int(r.memory_gb * 2**30)
    return opts


def _remote_trial(cfg: TrialConfig, ctx: RunContext, queue: Any) -> TrialResult:
    """Body of the Ray task: progress events go to the driver through a Ray queue."""

    def progress(event: dict[str, Any]) -> None:
        # Progress is best effort: a full or gone queue must not fail a trial.
        with contextlib.suppress(Exception):
            queue.put_nowait({"trial_id": cfg.trial_id, **event})

    return run_trial(cfg, ctx, progress)


def run_trials(
    cfgs: list[TrialConfig],
    ctx: RunContext,
    cluster: ClusterInfo,
    on_event: Callable[[dict[str, Any]], None],
    on_result: Callable[[TrialResult], None],
) -> list[TrialResult]:
    """Submit every trial, stream progress events, hand each record to ``on_result`` as it lands."""
    import ray
    from ray.util.queue import Queue

    queue = Queue(maxsize=10_000, actor_options={"num_cpus": 0})
    remote = ray.remote(_remote_trial)
    pending: dict[Any, TrialConfig] = {}
    for cfg in cfgs:
        ref = remote.options(**task_options(cfg, cluster)).remote(cfg, ctx, queue)
        pending[ref] = cfg
        on_event({"trial_id": cfg.trial_id, "event": "queued"})
    results: list[TrialResult] = []
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
        _drain(queue, on_event)
        for ref in done:
            cfg = pending.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - worker died (OOM, segfault): still a record
                result = base_result(cfg, ctx, status="failed", error=f"{type(exc).__name__}: {exc}",
                                     finished_at=now())
            results.append(result)
            on_result(result)
    time.sleep(0.1)
    _drain(queue, on_event)
    ray.kill(queue.actor)
    return results


def _drain(queue: Any, on_event: Callable[[dict[str, Any]], None]) -> None:
    """Hand every queued progress event to ``on_event``."""
    while not queue.empty():
        try:
            on_event(queue.get_nowait())
        except Exception:  # noqa: BLE001 - raced with another reader or an empty queue
            return
