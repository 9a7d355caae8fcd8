"""One trial, as executed inside a Ray worker: check data, train, test, return a record.

Whatever goes wrong becomes a ``failed`` record with the reason; nothing here raises to Ray, so
one broken trial never takes the suite down.  No metric logic and no MLflow here.

Checkpoints go to ``<checkpoint root>/<trial>-<key>/`` (:func:`checkpoint_dir`), named by the trial's
content key, so that a trial started again goes on from its last epoch, whether Ray retried it
after its node died or a new ``bench run`` followed a killed driver.  Each start is logged in the
folder's ``attempts.json`` and listed on the record; ``done.json`` marks a trial that produced its
record, which a later run (``--force``, or a retry of a failure) starts afresh rather than resuming.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.config.catalog import TrialConfig
from bench.engine.checkpoint import ATTEMPTS, BEST, DONE, LAST, CheckpointDir, is_url
from bench.results.record import Attempt, Baseline, ConfidenceSpec, Interval, Provenance, Timings, TrialResult


@dataclass(frozen=True)
class RunContext:
    """Facts the driver fixes once per invocation and hands to every trial."""

    project: str  # the driver's project root; workers fall back to their own working dir
    run_name: str
    git_sha: str
    # Where trial checkpoint folders go: a local path or an fsspec URL every node can reach
    # (``s3://bucket/ckpt``); empty: ``<project>/runs`` on the worker's node.
    checkpoint_root: str = ""
    keys: dict[str, str] = field(default_factory=dict)  # trial id -> content key (names its folder)
    resume_previous: bool = True  # go on from a checkpoint an earlier `bench run` left (False: --force)
    max_retries: int = 3  # Ray restarts of a trial whose worker or node died


def now() -> str:
    """UTC timestamp, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def worker_project(ctx: RunContext) -> Path:
    """The project root as seen from this node (job working dirs differ per node)."""
    from bench.paths import project_root

    cand = Path(ctx.project)
    if (cand / "datasets.dvc").exists() and (cand / "configs").is_dir():
        return cand
    return project_root()


def checkpoint_dir(cfg: TrialConfig, ctx: RunContext, project: Path) -> CheckpointDir:
    """The trial's checkpoint folder: ``<root>/<trial>-<key[:16]>``, else ``<root>/<run>/<trial>`` (no key).

    Folder names keep to ``[A-Za-z0-9._-]``: a trial id's ``#`` would start a URL fragment.
    """
    root = ctx.checkpoint_root or str(project / "runs")
    key = ctx.keys.get(cfg.trial_id)
    sub = f"{_safe(cfg.trial_id)}-{key[:16]}" if key else f"{_safe(ctx.run_name)}/{_safe(cfg.trial_id)}"
    return CheckpointDir(f"{root.rstrip('/')}/{sub}" if is_url(root) else str(Path(root) / sub))


def _safe(name: str) -> str:
    """``name`` as a folder name: runs of other characters than ``[A-Za-z0-9._-]`` become ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def node_name() -> str:
    """This worker's Ray node id (inside Ray), else the hostname."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        return ray.get_runtime_context().get_node_id()
    return socket.gethostname()


def start_attempt(ckpt: CheckpointDir, ctx: RunContext) -> list[Attempt]:
    """Log this start in ``attempts.json``; clear the folder first when it must not be resumed from.

    Resumed from: a checkpoint of this run (Ray retried the trial), or of an earlier run that never
    finished the trial (its driver was killed) unless ``--force``.  A finished trial's folder
    (``done.json``) is cleared, so ``--force`` or a rerun of a failed trial trains from scratch.
    """
    ckpt.makedirs()
    attempts = [Attempt.model_validate(a) for a in ckpt.read_json(ATTEMPTS, [])]
    this_run = any(a.run == ctx.run_name for a in attempts)
    if not (this_run or (ctx.resume_previous and not ckpt.exists(DONE))):
        ckpt.remove(LAST, BEST, DONE, ATTEMPTS)
        attempts = []
    attempts.append(Attempt(number=len(attempts) + 1, run=ctx.run_name, node=node_name(), started_at=now()))
    _write_attempts(ckpt, attempts)
    return attempts


def claim(ckpt: CheckpointDir, ctx: RunContext, held: list[Any]) -> CheckpointDir:
    """``ckpt``, locked for this trial; if another live process trains the same key in it (two
    ``bench run`` of one experiment at once), a folder of this run's own instead.

    The lock is an OS file lock (``filelock``), so a killed process frees it.  Local folders only:
    object stores have no locks, and on a cluster one driver runs a key at a time.
    """
    if is_url(ckpt.location):
        return ckpt
    from filelock import FileLock, Timeout

    for folder in (ckpt.location, f"{ckpt.location}-{_safe(ctx.run_name)}"):
        Path(folder).parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(folder + ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        held.append(lock)
        return CheckpointDir(folder)
    raise RuntimeError(f"{ckpt.location}: this trial's checkpoint folder is in use by another process of the same "
                       f"run {ctx.run_name!r}")


def mark_done(ckpt: CheckpointDir | None, ctx: RunContext) -> None:
    """The trial produced its record (ok or failed): a later run starts it afresh, not from here.

    Not written when the process is killed, nor on KeyboardInterrupt: those leave a trial to resume.
    """
    if ckpt is not None:
        with contextlib.suppress(Exception):  # best effort: at worst a later run resumes a finished trial
            ckpt.write_json(DONE, {"run": ctx.run_name, "finished_at": now()})


def _write_attempts(ckpt: CheckpointDir, attempts: list[Attempt]) -> None:
    ckpt.write_json(ATTEMPTS, [a.model_dump(mode="json") for a in attempts])


def base_result(cfg: TrialConfig, ctx: RunContext, **fields: Any) -> TrialResult:
    """A record carrying the trial's identity and provenance; ``fields`` fill the outcome."""
    from bench.results.provenance import hardware, package_versions

    prov = Provenance(
        config_hash=cfg.config_hash(), git_sha=ctx.git_sha, packages=package_versions(),
        hardware=hardware(), dataset_version=fields.pop("dataset_version", None),
        metric_spec=fields.pop("metric_spec", None),
    )
    return TrialResult(
        trial_id=cfg.trial_id, model=cfg.model, task=cfg.task, dataset=cfg.dataset.name, profile=cfg.profile,
        seed=cfg.seed, provenance=prov, config=cfg.model_dump(mode="json"), **fields,
    )


def run_trial(cfg: TrialConfig, ctx: RunContext, progress: Callable[[dict[str, Any]], None]) -> TrialResult:
    """Execute one trial end to end; always returns a record (``status`` ok or failed)."""
    t0 = time.perf_counter()
    started = now()
    dataset_version = None
    setup_s = 0.0
    attempts: list[Attempt] = []
    ckpt: CheckpointDir | None = None
    held: list[Any] = []  # the checkpoint folder's lock, released when the record is made
    try:
        import torch

        torch.set_num_threads(max(1, int(cfg.resources.num_cpus)))
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from bench.datasets import versioning
        from bench.engine.trainer import train_and_test

        project = worker_project(ctx)
        progress({"event": "data"})
        data_root = Path(cfg.dataset.root)
        data_root = data_root if data_root.is_absolute() else project / data_root
        if cfg.dataset.dvc_file:
            # The dataset's own output of the .dvc file: a shapes trial never hashes or pulls mnist.
            pin = versioning.read_pin(project / cfg.dataset.dvc_file, cfg.dataset.root, project)
            dataset_version = versioning.ensure(project, pin, cfg.dataset.name)
        ckpt = claim(checkpoint_dir(cfg, ctx, project), ctx, held)
        attempts = start_attempt(ckpt, ctx)
        setup_s = time.perf_counter() - t0
        progress({"event": "train", "attempt": len(attempts), "node": attempts[-1].node, "checkpoint": ckpt.location})

        def on_progress(event: dict[str, Any]) -> None:
            if event.get("event") == "resumed":  # on the record of this attempt, and in the folder's log
                attempts[-1] = attempts[-1].model_copy(update={"resumed_from_epoch": event["epoch"]})
                _write_attempts(ckpt, attempts)
            progress(event)

        out = train_and_test(cfg, data_root, ckpt, on_progress, project, resume=True)
        from bench.engine.trainer import scalar_metrics

        metrics = out.metrics
        samples, ci, ci_spec = _confidence(cfg, out.samples)
        timings = Timings(
            data_s=out.timings.get("data_s", 0.0), compute_s=out.timings.get("compute_s", 0.0),
            metric_s=out.timings.get("metric_s", 0.0), setup_s=setup_s, train_s=out.timings.get("train_s", 0.0),
            val_s=out.timings.get("val_s", 0.0), test_s=out.timings.get("test_s", 0.0),
            checkpoint_s=out.timings.get("checkpoint_s", 0.0),
            total_s=time.perf_counter() - t0,
            inference_ms_per_image=out.inference_ms_per_image,
        )
        extras = {k: v for k, v in metrics.items() if k not in ("per_class", "spec")
                  and not (v is None or isinstance(v, int | float))}
        extras.update(out.extras)
        mark_done(ckpt, ctx)
        return base_result(
            cfg, ctx, status="ok", metrics=scalar_metrics(metrics), per_class=_jsonable(metrics.get("per_class") or {}),
            extras=_jsonable(extras), history=out.history, training=out.training, test_images=out.test_images,
            baseline=_baseline(out.baseline), num_params=out.num_params, device=out.device, efficiency=out.efficiency,
            timings=timings, checkpoint=out.checkpoint, started_at=started, finished_at=now(),
            dataset_version=dataset_version, metric_spec=metrics.get("spec"), samples=samples, ci=ci,
            ci_spec=ci_spec, attempts=attempts,
        )
    except Exception as exc:  # noqa: BLE001 - the whole point: a failure becomes a record
        mark_done(ckpt, ctx)
        return base_result(
            cfg, ctx, status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(),
            timings=Timings(setup_s=setup_s, total_s=time.perf_counter() - t0), started_at=started,
            finished_at=now(), dataset_version=dataset_version, attempts=attempts,
        )
    finally:
        for lock in held:
            lock.release()


def _baseline(test: Any) -> Baseline | None:
    """The record of a ``bench.metrics.significance.BaselineTest`` (None stays None)."""
    if test is None:
        return None
    from bench.metrics.significance import ALPHA

    return Baseline(name=test.name, metric=test.metric, score=test.score, test=test.test, p_value=test.p_value,
                    significant=test.significant, alpha=ALPHA)


def _confidence(
    cfg: TrialConfig, samples: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, dict[str, Interval], ConfidenceSpec | None]:
    """The record's per-image samples (lists) and the bootstrap CI of each headline test metric.

    ``train.bootstrap_samples`` resamples seeded with the trial's seed; 0 (or a task without
    per-image resampling) keeps the samples and computes no CI.
    """
    from bench.metrics.bootstrap import TASK_METRICS, bootstrap_ci

    if samples is None:
        return None, {}, None
    b = cfg.train.bootstrap_samples
    if b == 0 or cfg.task not in TASK_METRICS:
        return _jsonable(samples), {}, None
    spec = ConfidenceSpec(samples=b, seed=cfg.seed)
    ci = bootstrap_ci(cfg.task, samples, b, cfg.seed, spec.level)
    return _jsonable(samples), {k: Interval(low=lo, high=hi) for k, (lo, hi) in ci.items()}, spec


def _jsonable(obj: Any) -> Any:
    """NumPy arrays and scalars -> lists and floats, recursively."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return obj
