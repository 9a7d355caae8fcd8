"""Fan trials out over Ray and collect their records as they finish (driver side).

``RAY_ADDRESS`` set (as under ``ray job submit``) -> connect to that cluster; otherwise start a
local Ray sized to the machine.  Each trial is one Ray task with the resources its config asks
for.  Ray never schedules a task no node can hold (it waits forever), so such a trial is failed
before submission with the request and the nodes' resources in its error.
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
FORWARDED_ENV = ("BENCH_PLUGINS", "BENCH_CONFIGS", "BENCH_DVC_CACHE", "BENCH_PROPOSAL_CACHE", "HF_HUB_OFFLINE",
                 "BENCH_GIT_SHA")


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


def request(cfg: TrialConfig) -> dict[str, float]:
    """The Ray resources one trial asks for (``memory`` in bytes, as Ray counts it)."""
    r = cfg.resources
    req = {"CPU": r.num_cpus, "GPU": r.num_gpus}
    if r.memory_gb:
        req["memory"] = r.memory_gb * 2**30
    return req


def node_resources() -> list[dict[str, float]]:
    """Total resources of every alive node of the connected cluster."""
    import ray

    return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]


def infeasible_reason(req: dict[str, float], nodes: list[dict[str, float]]) -> str | None:
    """Why no single node can ever run a task asking ``req`` (None when some node can).

    ``req``/``nodes``: resource name -> amount, e.g. ``{"CPU": 4, "GPU": 1}``.
    """
    if any(all(node.get(k, 0.0) >= v for k, v in req.items() if v) for node in nodes):
        return None
    asked = ", ".join(f"{k}={_fmt(k, v)}" for k, v in req.items() if v)
    offer = "; ".join(
        "{" + ", ".join(f"{k}={_fmt(k, node.get(k, 0.0))}" for k in ("CPU", "GPU", "memory")) + "}"
        for node in nodes
    ) or "no alive nodes"
    return (f"no node can satisfy this trial's resource request ({asked}); the cluster's nodes offer: {offer}. "
            "Lower `resources` in the profile or model YAML, or pick another --profile "
            "(Ray would otherwise wait for such a node forever).")


def _fmt(key: str, value: float) -> str:
    return f"{value / 2**30:.1f}GiB" if key == "memory" else f"{value:g}"


def task_options(cfg: TrialConfig, max_retries: int = 3) -> dict[str, Any]:
    """Ray options of one trial: exactly the resources its config asks for, and its retry policy.

    Ray restarts the task when its worker process or node dies (``max_retries``); the restarted
    trial goes on from its last checkpoint.  Exceptions are never retried (``retry_exceptions``
    off): ``run_trial`` turns them into failed records, and rerunning a deterministic error only
    repeats it.
    """
    r = cfg.resources
    opts: dict[str, Any] = {
        "num_cpus": r.num_cpus,
        "num_gpus": r.num_gpus,
        "max_retries": max_retries,
        "retry_exceptions": False,
        "name": f"trial:{cfg.trial_id}",
    }
    if r.memory_gb:
        opts["memory"] = int(r.memory_gb * 2**30)
    return opts


def _remote_trial(cfg: TrialConfig, ctx: RunContext, queue: Any) -> TrialResult:
    """Body of the Ray task: progress events go to the driver through a Ray queue."""

    def progress(event: dict[str, Any]) -> None:
        # Fire and forget: Queue.put_nowait() would ray.get() inside this task, and Ray hands a blocked
        # task's CPU to the next trial, oversubscribing the node. Progress is best effort anyway.
        with contextlib.suppress(Exception):
            queue.actor.put_nowait.remote({"trial_id": cfg.trial_id, **event})

    return run_trial(cfg, ctx, progress)


def run_trials(
    cfgs: list[TrialConfig],
    ctx: RunContext,
    on_event: Callable[[dict[str, Any]], None],
    on_result: Callable[[TrialResult], None],
) -> list[TrialResult]:
    """Submit every trial, stream progress events, hand each record to ``on_result`` as it lands."""
    import ray
    from ray.util.queue import Queue
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    # On the driver's node: progress must outlive the loss of any worker node.
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    queue = Queue(maxsize=10_000, actor_options={"num_cpus": 0, "scheduling_strategy": here})
    remote = ray.remote(_remote_trial)
    pending: dict[Any, TrialConfig] = {}
    results: list[TrialResult] = []
    nodes = node_resources()
    for cfg in cfgs:
        reason = infeasible_reason(request(cfg), nodes)
        if reason:  # fail fast: never submit what Ray would queue forever
            result = base_result(cfg, ctx, status="failed", error=f"ResourceUnavailable: {reason}", finished_at=now())
            results.append(result)
            on_result(result)
            continue
        ref = remote.options(**task_options(cfg, ctx.max_retries)).remote(cfg, ctx, queue)
        pending[ref] = cfg
        on_event({"trial_id": cfg.trial_id, "event": "queued"})
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
        _drain(queue, on_event)
        for ref in done:
            cfg = pending.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - died max_retries + 1 times (OOM, segfault): still a record
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
