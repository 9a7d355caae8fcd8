"""The driver of one ``bench run``: plan -> submit -> collect -> store -> sync -> report.

* :func:`plan_run` turns (target, dataset, profile, seeds, overrides) into validated trial configs
  with their content keys, before Ray starts; a bad config never costs a cluster start.
* :class:`Driver` reuses every trial whose key has an ``ok`` record in the results store (shown
  as ``cached``), submits the others to Ray, writes each record to the store the moment it lands
  (so a killed driver loses nothing that finished), then syncs it to MLflow.  Trials checkpoint
  every epoch into folders named by their keys, so a trial Ray restarts after its node died, or
  one a new ``bench run`` finds half-done after a killed driver, goes on from its last epoch.
* A tracking outage costs nothing but a delay: a record MLflow does not take stays in the store,
  MLflow is left alone for ``TRACKING_RETRY_S`` (each attempt would stall on its timeouts), the
  run's pending records are pushed again at its end, and ``bench sync`` pushes what is still left.
* Only the driver talks to MLflow and to the store; the CLI parses arguments and shows progress.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.config.catalog import Catalog, ResolvedTrial, TrialConfig
from bench.results.record import TrialResult
from bench.results.store import ResultsStore, StoredRecord

if TYPE_CHECKING:  # Ray and MLflow are imported only when a run needs them
    from bench.orchestration.ray_runner import ClusterInfo
    from bench.tracking.mlflow_writer import MlflowWriter


@dataclass(frozen=True)
class PlannedTrial:
    """One trial to run or reuse: its effective config, content key and annotated YAML (for MLflow)."""

    config: TrialConfig
    key: str
    dataset_version: str
    annotated: str


@dataclass(frozen=True)
class RunPlan:
    """Every trial of one invocation, validated."""

    target: str
    profile: str
    seeds: tuple[int, ...]
    trials: tuple[PlannedTrial, ...]
    code_version: str


def seed_list(base: int, seeds: int | None, suite_seeds: int | None) -> tuple[int, ...]:
    """``--seeds N`` (else the suite's ``seeds:``, else 1) consecutive seeds from ``--seed``."""
    n = seeds or suite_seeds or 1
    return tuple(range(base, base + n))


def local_gpus() -> int:
    """GPUs on this machine, asked of ``nvidia-smi`` (no torch import, no Ray start)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return 0
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.splitlines())


def default_profile(cluster_gpus: Callable[[], float]) -> str:
    """``gpu`` when the cluster has GPUs, else ``cpu``.

    ``cluster_gpus`` is asked only under ``RAY_ADDRESS`` (a remote cluster must be joined to know);
    a local run asks ``nvidia-smi``.
    """
    gpus = cluster_gpus() if os.environ.get("RAY_ADDRESS") else local_gpus()
    return "gpu" if gpus > 0 else "cpu"


def dataset_version(project: Path, cfg: TrialConfig) -> str:
    """The data's version for the trial key: the DVC pin, else the md5 of the folder as it is."""
    from bench.datasets import versioning

    if cfg.dataset.dvc_file:
        return versioning.read_pin(project / cfg.dataset.dvc_file, cfg.dataset.root, project).version
    root = Path(cfg.dataset.root)
    root = root if root.is_absolute() else project / root
    if not root.is_dir():
        raise FileNotFoundError(f"dataset {cfg.dataset.name}: folder {root} does not exist (root: in its YAML)")
    return versioning.folder_version(project, root)


def plan_run(
    project: Path, cat: Catalog, target: str, dataset: str | None, profile: str, seed: int, seeds: int | None,
    overrides: dict[str, Any] | None = None,
) -> RunPlan:
    """Validated trial configs and keys of ``bench run TARGET``; raises ``ConfigError``/``ValueError``.

    One trial per (model, dataset, seed): ``dataset`` (or the suite's) replaces each model's list.
    Every YAML setting must take effect (``unused_settings``) and every effective ``params`` must
    fit its builder (``check_params``), checked once, on the configs that will run.
    """
    from bench.config.catalog import config_yaml, resolve_trial, unused_settings
    from bench.config.loader import ConfigError
    from bench.metrics import METRIC_SPEC
    from bench.models import check_params
    from bench.results.keys import code_version, trial_key

    models, suite_dataset = cat.resolve_target(target)
    suite = cat.target_suite(target)
    problems = unused_settings(cat, [m.name for m in models], own_file_only=True)
    if problems:
        raise ConfigError("\n".join(problems))
    prof = cat.profile(profile)
    seeds_run = seed_list(seed, seeds, suite.seeds if suite else None)
    name = dataset or suite_dataset
    resolved: list[ResolvedTrial] = []
    for m in models:
        for d in ([name] if name else m.datasets):
            ds = cat.dataset(d)
            resolved += [resolve_trial(m, ds, prof, s, suite, overrides) for s in seeds_run]
    code = code_version()
    planned = []
    for r in resolved:
        cfg = r.config
        check_params(cfg.builder, cfg.params, f"{cat.model_files.get(cfg.model, cfg.model)} (profile {prof.name})")
        check_trial(cfg)
        version = dataset_version(project, cfg)
        planned.append(PlannedTrial(cfg, trial_key(cfg, version, METRIC_SPEC, code), version, config_yaml(r)))
    # A suite given as a YAML path is named by its file stem (run names appear in MLflow and the store).
    label = Path(target).stem if target.endswith((".yaml", ".yml")) else target
    return RunPlan(label, prof.name, seeds_run, tuple(planned), code)


def check_trial(cfg: TrialConfig) -> None:
    """Settings that only some tasks can honour are errors elsewhere, never silently ignored."""
    if cfg.train.shuffle_train_labels and cfg.task not in ("classification", "verification"):
        raise ValueError(f"{cfg.trial_id}: train.shuffle_train_labels applies to classification and verification "
                         f"(labels per image), not to {cfg.task}; remove it for this model")


TRACKING_RETRY_S = 30.0  # after MLflow failed to take a record, leave it alone this long


@dataclass
class RunOutcome:
    """What one invocation produced, in landing order (cached records first)."""

    run_name: str
    results: list[TrialResult] = field(default_factory=list)
    cached: set[str] = field(default_factory=set)  # trial ids reused from the store
    stored: list[StoredRecord] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # trial ids whose records MLflow has not taken yet

    @property
    def unsynced(self) -> int:
        return len(self.waiting)


class Driver:
    """Runs a :class:`RunPlan`: the only place that writes the results store and MLflow.

    ``writer``: a ``bench.tracking.mlflow_writer.MlflowWriter`` or None (store only; ``bench sync``
    pushes later).  ``on_result(result, cached)`` is called for each record as it lands (display).
    """

    def __init__(self, project: Path, store: ResultsStore, writer: MlflowWriter | None,
                 on_result: Callable[[TrialResult, bool], None], on_warning: Callable[[str], None]) -> None:
        self.project = project
        self.store = store
        self.writer = writer
        self.on_result = on_result
        self.on_warning = on_warning
        self.tracking_down_until = 0.0  # monotonic time before which MLflow is not tried again

    def run(self, plan: RunPlan, cluster: Callable[[], ClusterInfo], on_event: Callable[[dict[str, Any]], None],
            force: bool = False, output: Path | None = None, run_name: str | None = None,
            checkpoint_root: str = "", max_retries: int = 3) -> RunOutcome:
        """Reuse, submit, collect, store and sync every trial of ``plan``.

        ``cluster()`` joins or starts Ray (returning ``ClusterInfo``); it is called only when some
        trial must run, so a rerun of a finished suite costs seconds, not a Ray start.
        ``checkpoint_root``: where trial checkpoint folders go (a path or an fsspec URL every node
        reaches; empty: ``runs/`` of the project).  ``max_retries``: Ray restarts of a trial whose
        worker or node died (application errors are recorded, never retried).  ``force`` also
        stops trials from resuming checkpoints that earlier runs left.
        """
        from bench.orchestration.trial import RunContext
        from bench.results.provenance import git_sha

        sha = git_sha(self.project)
        name = run_name or f"{plan.target}-{time.strftime('%Y%m%d-%H%M%S')}"
        self.store.start_run(name, plan.target, plan.profile, sha, plan.code_version)
        if self.writer is not None:
            self._start_parent(self.writer, name, plan, sha)
        outcome = RunOutcome(name)
        todo = []
        for p in plan.trials:
            hit = None if force else self.store.cached(p.key)
            if hit is None:
                todo.append(p)
                continue
            self.store.reuse(name, hit.id)
            outcome.cached.add(p.config.trial_id)
            if output:  # the results file is complete: per-image statistics included
                hit = StoredRecord(hit.id, hit.run, True, self.store.with_samples(hit))
            self._landed(outcome, hit, cached=True, output=output)
        by_id = {p.config.trial_id: p for p in todo}

        def on_record(result: TrialResult) -> None:
            p = by_id[result.trial_id]
            prov = result.provenance.model_copy(update={"code_version": plan.code_version,
                                                        "dataset_version": result.provenance.dataset_version
                                                        or p.dataset_version})
            result = result.model_copy(update={"key": p.key, "provenance": prov})
            rid = self.store.add(name, result)
            stored = StoredRecord(rid, name, False, result)
            stored = self._sync(stored, p.annotated, name)
            self._landed(outcome, stored, cached=False, output=output)

        from bench.orchestration.ray_runner import run_trials

        ctx = RunContext(project=str(self.project), run_name=name, git_sha=sha, checkpoint_root=checkpoint_root,
                         keys={p.config.trial_id: p.key for p in todo}, resume_previous=not force,
                         max_retries=max_retries)
        try:
            if todo:
                cluster()
                run_trials([p.config for p in todo], ctx, on_event, on_record)
        except KeyboardInterrupt:
            self._finish(outcome, len(plan.trials), killed=True)
            raise
        self._finish(outcome, len(plan.trials))
        return outcome

    def _start_parent(self, writer: MlflowWriter, name: str, plan: RunPlan, sha: str) -> None:
        try:
            parent = writer.start_parent(
                name, tags={"target": plan.target, "profile": plan.profile, "git_sha": sha,
                            "code_version": plan.code_version, "ray_address": os.environ.get("RAY_ADDRESS", "local")},
                params={"target": plan.target, "profile": plan.profile, "seeds": ",".join(map(str, plan.seeds)),
                        "trials": ",".join(p.config.trial_id for p in plan.trials)})
            self.store.set_parent(name, parent)
        except Exception as exc:  # noqa: BLE001 - the store keeps everything; `bench sync` retries
            self.on_warning(f"MLflow did not take the parent run ({type(exc).__name__}: {exc}); records stay in "
                            "the results store, `bench sync` pushes them later")
            self.writer = None

    def _sync(self, stored: StoredRecord, annotated: str | None, run: str) -> StoredRecord:
        """Log one stored record to MLflow; on failure it stays unsynced (with a warning).

        After a failure MLflow is left alone for ``TRACKING_RETRY_S``: during an outage every call
        waits out its timeouts, and the trials that land meanwhile should not queue behind them.
        """
        if self.writer is None or time.monotonic() < self.tracking_down_until:
            return stored
        from bench.tracking.sync import log_record

        try:
            rid = log_record(self.writer, stored.record, annotated, run=run)
        except Exception as exc:  # noqa: BLE001 - keep the record whatever the tracking store says
            self.tracking_down_until = time.monotonic() + TRACKING_RETRY_S
            self.on_warning(f"MLflow did not take {stored.record.trial_id} ({type(exc).__name__}: {str(exc)[:200]}); "
                            f"it stays in the results store. Not trying MLflow again for {TRACKING_RETRY_S:.0f} s; "
                            "pending records are pushed again at the end of the run, and `bench sync` pushes "
                            "whatever is left")
            return stored
        self.store.set_synced(stored.id, rid)
        return StoredRecord(stored.id, stored.run, stored.cached,
                            stored.record.model_copy(update={"mlflow_run_id": rid}))

    def _landed(self, outcome: RunOutcome, stored: StoredRecord, cached: bool, output: Path | None) -> None:
        from bench.results.record import write_results

        outcome.results.append(stored.record)
        outcome.stored.append(stored)
        if stored.record.mlflow_run_id is None and not cached:
            outcome.waiting.append(stored.record.trial_id)
        self.on_result(stored.record, cached)
        if output:  # rewritten after every trial: a killed driver leaves every finished record
            write_results(output, outcome.results)

    def _finish(self, outcome: RunOutcome, total: int, killed: bool = False) -> None:
        failed = sum(r.status != "ok" for r in outcome.results) + (total - len(outcome.results))
        status = "killed" if killed else ("finished" if failed == 0 else "failed")
        self.store.finish_run(outcome.run_name, status)
        if self.writer is not None and outcome.waiting and not killed:
            self._push_pending(outcome)
        if self.writer is not None:
            try:
                self.writer.end_parent(failed, total, killed=killed)
            except Exception as exc:  # noqa: BLE001
                self.on_warning(f"MLflow did not close the parent run: {exc}; `bench sync` closes it")

    def _push_pending(self, outcome: RunOutcome) -> None:
        """One more try, at the end of the run, for the records MLflow did not take while it landed."""
        from bench.tracking.sync import sync_pending

        synced: dict[str, str] = {}

        def done(trial_id: str, run_id: str | None, error: str | None) -> None:
            if run_id:
                synced[trial_id] = run_id

        parent = self.writer.parent_id if self.writer else None
        try:
            sync_pending(self.store, self.writer, done, run=outcome.run_name, stop_at_error=True)
        finally:
            if self.writer is not None:
                self.writer.parent_id = parent
        outcome.waiting = [t for t in outcome.waiting if t not in synced]
        outcome.results = [r.model_copy(update={"mlflow_run_id": synced[r.trial_id]}) if r.trial_id in synced else r
                           for r in outcome.results]
