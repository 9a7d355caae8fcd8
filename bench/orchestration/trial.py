"""One trial, as executed inside a Ray worker: check data, train, test, return a record.

Whatever goes wrong becomes a ``failed`` record with the reason; nothing here raises to Ray, so
one broken trial never takes the suite down.  No metric logic and no MLflow here.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.config.catalog import TrialConfig
from bench.results.record import Baseline, ConfidenceSpec, Interval, Provenance, Timings, TrialResult


@dataclass(frozen=True)
class RunContext:
    """Facts the driver fixes once per invocation and hands to every trial."""

    project: str  # the driver's project root; workers fall back to their own working dir
    run_name: str  # names the checkpoint folder: runs/<run_name>/<trial_id>/
    git_sha: str


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
        setup_s = time.perf_counter() - t0
        progress({"event": "train"})
        out = train_and_test(cfg, data_root, project / "runs" / ctx.run_name / cfg.trial_id, progress, project)
        from bench.engine.trainer import scalar_metrics

        metrics = out.metrics
        samples, ci, ci_spec = _confidence(cfg, out.samples)
        timings = Timings(
            data_s=out.timings.get("data_s", 0.0), compute_s=out.timings.get("compute_s", 0.0),
            metric_s=out.timings.get("metric_s", 0.0), setup_s=setup_s, train_s=out.timings.get("train_s", 0.0),
            val_s=out.timings.get("val_s", 0.0), test_s=out.timings.get("test_s", 0.0),
            total_s=time.perf_counter() - t0,
            inference_ms_per_image=out.inference_ms_per_image,
        )
        extras = {k: v for k, v in metrics.items() if k not in ("per_class", "spec")
                  and not (v is None or isinstance(v, int | float))}
        extras.update(out.extras)
        return base_result(
            cfg, ctx, status="ok", metrics=scalar_metrics(metrics), per_class=_jsonable(metrics.get("per_class") or {}),
            extras=_jsonable(extras), history=out.history, training=out.training, test_images=out.test_images,
            baseline=_baseline(out.baseline), num_params=out.num_params, device=out.device, efficiency=out.efficiency,
            timings=timings, checkpoint=out.checkpoint, started_at=started, finished_at=now(),
            dataset_version=dataset_version, metric_spec=metrics.get("spec"), samples=samples, ci=ci,
            ci_spec=ci_spec,
        )
    except Exception as exc:  # noqa: BLE001 - the whole point: a failure becomes a record
        return base_result(
            cfg, ctx, status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(),
            timings=Timings(setup_s=setup_s, total_s=time.perf_counter() - t0), started_at=started,
            finished_at=now(), dataset_version=dataset_version,
        )


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
