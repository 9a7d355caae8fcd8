"""The driver-side MLflow writer: one parent run per invocation, one child run per trial.

Only the driver talks to MLflow (workers return records), and it writes each trial in a few
batched calls, so a tracking server sees little traffic however many workers there are.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.results.record import TrialResult
from bench.tracking.redact import redact, redact_yaml

EXPERIMENT = "bench"
TAG_KIND = "bench.kind"
# A child run is the record (bench.run, bench.trial_key) of the results store: the pair that makes
# logging it again (after an outage, by `bench sync`) find the run instead of making a second one.
TAG_RUN, TAG_KEY = "bench.run", "bench.trial_key"

# MLflow's HTTP client retries a failed request 7 times with exponential backoff (minutes per call).
# While a tracking server is down, the driver would stall that long on every record; failing fast
# keeps the suite going (records wait in the results store for `bench sync`).  Set in the
# environment to override.
FAIL_FAST_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def tracking_uri(project: Path) -> str:
    """``$MLFLOW_TRACKING_URI``, else a SQLite file in the project (the embedded default)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project / 'mlflow.db'}"


def in_ray_job() -> bool:
    """True inside a ``ray job submit`` entrypoint (which runs in a temporary working-dir copy)."""
    return "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ or "runtime_resources" in str(Path.cwd())


def job_tracking_warning() -> str | None:
    """The loud warning for a Ray job with no tracking URI (its SQLite default would vanish)."""
    if in_ray_job() and not os.environ.get("MLFLOW_TRACKING_URI"):
        return (
            "WARNING: running inside a Ray job without MLFLOW_TRACKING_URI. Results go to a SQLite file in "
            "the job's temporary working dir and will be lost when the job ends. Pass the tracking server, "
            "e.g. ray job submit --runtime-env-json "
            "'{\"env_vars\": {\"MLFLOW_TRACKING_URI\": \"http://HOST:5000\"}}' -- bench run all"
        )
    return None


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mapping -> ``{"train.lr": "0.001", ...}`` (MLflow params are flat strings)."""
    from bench.config.loader import leaves

    return {key: str(val)[:6000] for key, val in leaves(d, prefix).items()}


def derived_params(result: TrialResult) -> dict[str, str]:
    """Settings the trial derived from its data rather than read from its config: the k-means anchors of a
    YOLO model (``anchors.kmeans`` as ``[[w, h], ...]`` input pixels, their mean best IoU and box count)."""
    found = result.extras.get("anchors")
    if not found:
        return {}
    return {"anchors.kmeans": str(found["anchors"]), "anchors.mean_iou": str(found["mean_iou"]),
            "anchors.boxes": str(found["boxes"]), "anchors.image_size": str(found["image_size"])}


def outcome_tags(result: TrialResult) -> dict[str, str]:
    """Tags saying how training ended and what the test score was compared with.

    ``stopped_by`` (schedule | time_limit), ``baseline`` (its name), ``baseline_metric``,
    ``baseline_test`` and ``baseline_significant`` ("true" | "false" | "" when untestable).
    """
    tags: dict[str, str] = {}
    if result.training is not None:
        tags["stopped_by"] = result.training.stopped_by
    b = result.baseline
    if b is not None:
        sig = "" if b.significant is None else str(b.significant).lower()
        tags.update(baseline=b.name, baseline_metric=b.metric, baseline_test=b.test, baseline_significant=sig)
    return tags


def outcome_metrics(result: TrialResult) -> dict[str, float]:
    """Final metrics: ``epochs_planned``, ``epochs_done``, ``test_images``, ``baseline_score``,
    ``baseline_p_value`` (the ones the record has)."""
    out: dict[str, float] = {}
    if result.training is not None:
        out.update(epochs_planned=result.training.epochs_planned, epochs_done=result.training.epochs_done)
    if result.test_images is not None:
        out["test_images"] = result.test_images
    if result.baseline is not None:
        for key, v in (("baseline_score", result.baseline.score), ("baseline_p_value", result.baseline.p_value)):
            if v is not None:
                out[key] = v
    return out


EFFICIENCY_METRICS = ("params", "flops", "latency_ms", "throughput_ips", "peak_memory_mb")


def efficiency_metrics(result: TrialResult) -> dict[str, float]:
    """Final metrics of the tested model's cost (``bench.engine.efficiency``): ``params``, ``flops``
    (per image, batch 1), ``latency_ms`` (batch 1), ``throughput_ips`` (evaluation batch) and
    ``peak_memory_mb``, the ones measured; the tag ``memory_kind`` says what the memory is."""
    eff = result.efficiency
    if eff is None:
        return {}
    return {k: float(v) for k in EFFICIENCY_METRICS if (v := getattr(eff, k)) is not None}


class MlflowWriter:
    """Creates the runs of one ``bench run`` invocation."""

    def __init__(self, project: Path) -> None:
        for name, value in FAIL_FAST_ENV.items():
            os.environ.setdefault(name, value)
        import mlflow
        from mlflow.tracking import MlflowClient

        self.uri = tracking_uri(project)
        mlflow.set_tracking_uri(self.uri)
        self.client = MlflowClient(self.uri)
        exp = self.client.get_experiment_by_name(EXPERIMENT)
        if exp is None:
            artifacts = None
            if self.uri.startswith("sqlite:"):
                artifacts = (project / "mlartifacts").resolve().as_uri()
            self.experiment_id = self.client.create_experiment(EXPERIMENT, artifact_location=artifacts)
        else:
            self.experiment_id = exp.experiment_id
        self.parent_id: str | None = None

    def start_parent(self, name: str, tags: Mapping[str, str], params: Mapping[str, Any]) -> str:
        """The invocation's parent run."""
        self.parent_id = self._create_run(name, {TAG_KIND: "suite", **tags})
        self._log_batch(self.parent_id, params=flatten(params))
        return self.parent_id

    def end_parent(self, failed: int, total: int, killed: bool = False) -> None:
        """Close the parent run: FINISHED when every trial was ok, FAILED otherwise, KILLED on Ctrl-C."""
        if self.parent_id is None:
            raise RuntimeError("end_parent() before start_parent()")
        self._log_batch(self.parent_id, metrics={"trials_ok": total - failed, "trials_failed": failed})
        status = "KILLED" if killed else ("FINISHED" if failed == 0 else "FAILED")
        self.client.set_terminated(self.parent_id, status)

    def find_trial(self, run: str, key: str) -> tuple[str | None, list[str]]:
        """The child run already logged for record (``run``, ``key``), if any, and unfinished ones.

        Returns ``(terminated run id or None, ids of runs left RUNNING by a logging cut short)``.
        """
        found = self.client.search_runs(
            [self.experiment_id], f"tags.`{TAG_RUN}` = '{_quote(run)}' and tags.`{TAG_KEY}` = '{_quote(key)}'")
        done = [r.info.run_id for r in found if r.info.status in ("FINISHED", "FAILED", "KILLED")]
        partial = [r.info.run_id for r in found if r.info.run_id not in done]
        return (done[0] if done else None), partial

    def log_trial(self, result: TrialResult, artifacts: list[Path], config_yaml: str | None = None,
                  run: str = "") -> str:
        """A child run for ``result``: params, per-epoch and final metrics, tags, artifacts.

        Params: the effective config flattened, and :func:`derived_params` (k-means anchors).
        Per epoch (step = epoch): ``train_loss``, ``train_acc`` (where the task counts it), ``lr``,
        ``val_*``.  Final (step 0): ``test_*``, timings, ``num_params`` and :func:`outcome_metrics`;
        :func:`outcome_tags` says how training ended and what the baseline was; :func:`efficiency_metrics`
        and the tag ``memory_kind`` give the tested model's cost.  ``config_yaml``: the effective config
        annotated with each value's source (``bench config``), logged as ``config.yaml`` next to
        ``result.json``.  ``run``: the ``bench run`` the record belongs to (tag ``bench.run``).
        """
        from mlflow.entities import Metric

        tags = {
            "mlflow.parentRunId": self.parent_id or "",
            TAG_KIND: "trial",
            TAG_RUN: run,
            TAG_KEY: result.key or "",
            "model": result.model,
            "task": result.task,
            "dataset": result.dataset,
            "dataset_md5": result.provenance.dataset_version or "",
            "git_sha": result.provenance.git_sha,
            "profile": result.profile,
            "seed": str(result.seed),
            "device": result.device or "",
            "status": result.status,
            "config_hash": result.provenance.config_hash,
            "metric_spec": result.provenance.metric_spec or "",
            "hostname": str(result.provenance.hardware.get("hostname", "")),
            **{f"version.{k}": v for k, v in result.provenance.packages.items()},
        }
        if result.error:
            tags["error"] = result.error[:5000]
        tags.update(outcome_tags(result))
        if result.efficiency is not None and result.efficiency.memory_kind:
            tags["memory_kind"] = result.efficiency.memory_kind
        rid = self._create_run(result.trial_id, tags)
        ts = 0
        metrics: list[Metric] = []
        for log in result.history:
            metrics.append(Metric("train_loss", log.train_loss, ts, log.epoch))
            if log.train_acc is not None:
                metrics.append(Metric("train_acc", log.train_acc, ts, log.epoch))
            metrics.append(Metric("lr", log.lr, ts, log.epoch))
            metrics += [Metric(f"val_{k}", v, ts, log.epoch) for k, v in log.val.items() if v is not None]
        finals = {f"test_{k}": v for k, v in result.metrics.items() if v is not None}
        t = result.timings
        finals.update(train_time_s=t.train_s, total_time_s=t.total_s, data_time_s=t.data_s,
                      compute_time_s=t.compute_s, metric_time_s=t.metric_s, checkpoint_time_s=t.checkpoint_s)
        if t.inference_ms_per_image is not None:
            finals["inference_ms_per_image"] = t.inference_ms_per_image
        if result.num_params is not None:
            finals["num_params"] = float(result.num_params)
        finals.update(outcome_metrics(result))
        finals.update(efficiency_metrics(result))
        metrics += [Metric(k, float(v), ts, 0) for k, v in finals.items()]
        self._log_batch(rid, params={**flatten(result.config), **derived_params(result)}, metrics_list=metrics)
        # Through pydantic's JSON (NaN -> null, as before) and back, so the redaction walks plain JSON types.
        record = json.loads(result.model_copy(update={"mlflow_run_id": rid}).model_dump_json())
        self._log_text(rid, "result.json", json.dumps(redact(record), indent=2))
        if config_yaml:
            self._log_text(rid, "config.yaml", redact_yaml(config_yaml + "\n"))
        for path in artifacts:
            self.client.log_artifact(rid, str(path), artifact_path="plots")
        self.client.set_terminated(rid, "FINISHED" if result.status == "ok" else "FAILED")
        return rid

    # Every param, tag and text artifact goes through the three methods below, and each redacts
    # (bench.tracking.redact): whoever can read the tracking server must not read a credential.

    def _create_run(self, name: str, tags: Mapping[str, str]) -> str:
        """A new run with ``tags`` (redacted); returns its id."""
        run = self.client.create_run(self.experiment_id, run_name=name, tags=redact(dict(tags)))
        return run.info.run_id

    def _log_text(self, run_id: str, name: str, text: str) -> None:
        """Log ``text`` (already redacted by the caller: JSON and YAML need their own walk) as artifact ``name``."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_text(text)
            self.client.log_artifact(run_id, str(path))

    def _log_batch(
        self, run_id: str, params: Mapping[str, str] | None = None, metrics: Mapping[str, float] | None = None,
        metrics_list: list[Any] | None = None,
    ) -> None:
        """``log_batch`` in chunks within MLflow's limits (100 params, 1000 metrics per call)."""
        from mlflow.entities import Metric, Param

        plist = [Param(k, v) for k, v in redact(dict(params or {})).items()]
        mlist = list(metrics_list or []) + [Metric(k, float(v), 0, 0) for k, v in (metrics or {}).items()]
        for i in range(0, len(plist), 100):
            self.client.log_batch(run_id, params=plist[i : i + 100])
        for i in range(0, len(mlist), 1000):
            self.client.log_batch(run_id, metrics=mlist[i : i + 1000])


def _quote(value: str) -> str:
    """A value inside a single-quoted MLflow filter string."""
    return value.replace("\\", "\\\\").replace("'", "\\'")
