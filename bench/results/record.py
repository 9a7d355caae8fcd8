"""The record every trial returns, ok or failed, with the provenance that makes it trustworthy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Record(BaseModel):
    """Base: unknown keys rejected (records are read back from JSON), mutable by ``model_copy`` only."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Timings(Record):
    """Wall-clock seconds.  ``data_s + compute_s + metric_s`` is the time inside the loops."""

    data_s: float = 0.0  # waiting for batches and copying them to the device
    compute_s: float = 0.0  # forward/backward/step (device-synchronised)
    metric_s: float = 0.0  # evaluator updates and metric computation
    setup_s: float = 0.0  # data check/pull, model build
    train_s: float = 0.0  # the training phase, per-epoch validation excluded (that is val_s)
    val_s: float = 0.0  # per-epoch validation during training
    test_s: float = 0.0  # the final test evaluation
    checkpoint_s: float = 0.0  # writing the per-epoch checkpoints (part of train_s): what resumability costs
    total_s: float = 0.0
    inference_ms_per_image: float | None = None  # model forward only, test split, after warm-up


class Provenance(Record):
    """Where a number came from."""

    config_hash: str
    dataset_version: str | None = None
    git_sha: str = "unknown"
    packages: dict[str, str] = Field(default_factory=dict)
    hardware: dict[str, Any] = Field(default_factory=dict)
    metric_spec: str | None = None
    # Hash of the ``bench/`` sources as they are (``bench.results.keys.code_version``): part of the
    # trial key, unlike ``git_sha``, which a README-only commit changes and a Ray job's copy lacks.
    code_version: str | None = None


class EpochLog(Record):
    """One training epoch: mean train loss, training accuracy and the validation metrics."""

    epoch: int
    train_loss: float
    # Fraction of training targets predicted right during the epoch (train mode, running over its
    # batches, as the weights changed): samples for classification, non-ignored pixels for
    # segmentation; None where the task has no such count (detection, verification).
    train_acc: float | None = None
    val: dict[str, float | None] = Field(default_factory=dict)
    lr: float
    seconds: float


class TrainingEnd(Record):
    """How training ended: the full schedule, or cut short by ``train.time_limit_s``."""

    epochs_planned: int  # train.epochs
    epochs_done: float  # iterations done / iterations per epoch (1.5 = one and a half epochs)
    stopped_by: Literal["schedule", "time_limit"]


class Baseline(Record):
    """The task's trivial baseline on the same test images, and a one-sided test of the score against it.

    See ``bench.metrics.significance`` for the baselines and tests of each task.
    """

    name: str  # "majority class", "all background", "untrained model"
    metric: str  # the metric ``score`` is in (top1, jaccard, mAP)
    score: float | None  # the baseline's value of ``metric``
    test: str  # e.g. "binomial, one-sided"
    p_value: float | None  # of H0 "not better than the baseline"; None: nothing to test
    significant: bool | None  # p_value < alpha
    alpha: float


class Interval(Record):
    """A confidence interval ``[low, high]``."""

    low: float
    high: float


class ConfidenceSpec(Record):
    """How :attr:`TrialResult.ci` was computed (``bench.metrics.bootstrap``)."""

    method: str = "percentile bootstrap over test images"
    samples: int  # B, the number of resamples
    level: float = 0.95
    seed: int = 0


class Efficiency(Record):
    """Cost of the trained model at test time, after timm's benchmark protocol (``bench.engine.efficiency``)."""

    params: int | None = None
    flops: float | None = None  # forward FLOPs per image at batch 1 (torch.utils.flop_counter; a multiply-add is 2)
    latency_ms: float | None = None  # per image at batch 1, warm-up excluded, device synchronised
    throughput_ips: float | None = None  # images per second at the evaluation batch size
    eval_batch: int | None = None
    peak_memory_mb: float | None = None  # CUDA max allocated, or peak RSS on CPU
    memory_kind: Literal["cuda_max_allocated", "rss"] | None = None
    device: str | None = None


class Attempt(Record):
    """One start of a trial.  A trial whose node or worker died is started again by Ray (``max_retries``)
    and goes on from its last checkpoint; each start is listed on the record."""

    number: int  # 1, 2, ...
    run: str  # the `bench run` invocation it belonged to (a rerun after a killed driver resumes too)
    node: str  # Ray node id (else the hostname) it ran on
    started_at: str
    resumed_from_epoch: int | None = None  # the checkpoint's epoch it went on from; None: from scratch


class TrialResult(Record):
    """The outcome of one trial, written to ``--output`` and logged to MLflow by the driver."""

    trial_id: str
    model: str
    task: str
    dataset: str
    profile: str
    seed: int
    status: Literal["ok", "failed"]
    error: str | None = None
    traceback: str | None = None
    metrics: dict[str, float | None] = Field(default_factory=dict)
    per_class: dict[str, Any] = Field(default_factory=dict)
    extras: dict[str, Any] = Field(default_factory=dict)  # non-scalar results (confusion matrix ...)
    history: list[EpochLog] = Field(default_factory=list)
    training: TrainingEnd | None = None
    test_images: int | None = None  # test images evaluated, after max_eval_images subsampling
    baseline: Baseline | None = None
    num_params: int | None = None
    device: str | None = None
    timings: Timings = Timings()
    provenance: Provenance
    config: dict[str, Any] = Field(default_factory=dict)
    checkpoint: str | None = None
    # Content address: hash of effective config, dataset md5, metric spec, code version, seed and
    # profile (``bench.results.keys.trial_key``); equal keys = the same experiment.
    key: str | None = None
    # 95% bootstrap CI of each scalar test metric over test images (``bench.metrics.bootstrap``).
    ci: dict[str, Interval] = Field(default_factory=dict)
    ci_spec: ConfidenceSpec | None = None
    # Per-image statistics kept by the test evaluator, from which any test metric can be recomputed on
    # a resample of the test images (arrays as lists, leading dimension = images; see
    # ``bench.metrics.bootstrap``).  Stored apart from the record in the results store.
    samples: dict[str, Any] | None = None
    efficiency: Efficiency | None = None
    mlflow_run_id: str | None = None
    # Every start of this trial, the last one being the one that produced this record.
    attempts: list[Attempt] = Field(default_factory=list)
    started_at: str | None = None
    finished_at: str | None = None


def write_results(path: Path, results: list[TrialResult]) -> None:
    """``--output`` file: a JSON list, one object per trial."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([r.model_dump(mode="json") for r in results], indent=2) + "\n")


def read_results(path: Path) -> list[TrialResult]:
    """Inverse of ``write_results``, for files of this or an older bench version (see :func:`lenient_record`)."""
    try:
        items = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read a results file: {exc}") from None
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected a JSON list of trial records (`bench run --output FILE`)")
    return [lenient_record(obj, f"{path} record #{i}") for i, obj in enumerate(items)]


def lenient_record(obj: dict[str, Any], where: str) -> TrialResult:
    """A record of any bench version: keys this version does not know are dropped.

    Older files lack newer fields (they get defaults) and may carry fields since removed.
    """
    data = json.loads(json.dumps(obj))
    for _ in range(50):
        try:
            return TrialResult.model_validate(data)
        except ValidationError as exc:
            extras = [e["loc"] for e in exc.errors() if e["type"] == "extra_forbidden"]
            if not extras:
                raise ValueError(f"{where}: not a trial record: {exc}") from None
            for loc in extras:
                parent = data
                for part in loc[:-1]:
                    parent = parent[part]
                parent.pop(loc[-1], None)
    raise ValueError(f"{where}: could not read the record")
