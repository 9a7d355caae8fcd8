"""Cost of a trained model at test time: parameters, FLOPs, latency, throughput and peak memory.

Timing follows the inference protocol of timm's ``benchmark.py``: the model in eval mode under
``no_grad`` (and the trial's autocast), warm-up iterations run first and excluded, the device
synchronised around every timed step.  As there,

* ``latency_ms`` is the **mean** step time at batch 1 (timm's ``step_time``), per image;
* ``throughput_ips`` is the images of the whole timed run at the evaluation batch size divided by
  its synchronised wall time (timm's ``samples_per_sec``).

Unlike timm, whose inputs are random tensors of one shape, the inputs are real test images (the
images the test evaluation scored, ``max_eval_images`` applied) already on the device, run through
the task's own ``predict``: a detector gets its list of images and does its own resizing and
post-processing, a classifier's softmax is included.  And the iteration counts are bounded in time
(:class:`Budget`) so that a trial pays a few seconds, not minutes, for a big model on a CPU.

``flops``: ``torch.utils.flop_counter.FlopCounterMode`` over one forward at batch 1.  It counts the
ops torch has formulas for (matrix products, convolutions, attention), a multiply-add as 2 FLOPs;
elementwise ops, normalisation, pooling, resizing, RoI align and NMS count 0 (so ``hog_svm``'s
descriptor is free and its FLOPs are its SVM's).  timm's tables give fvcore GMACs: about half.

``peak_memory_mb`` (MiB, 2**20 bytes) over the two timed passes:

* CUDA (``memory_kind="cuda_max_allocated"``): ``torch.cuda.max_memory_allocated`` after
  ``reset_peak_memory_stats``: the tensors torch allocated (weights, inputs, activations), not the
  caching allocator's reserve;
* CPU (``"rss"``): the peak resident set of the whole process (interpreter, libraries, datasets,
  model).  Ray reuses worker processes, so the lifetime peak (``ru_maxrss``) could belong to an
  earlier trial: on Linux the kernel's high-water mark is reset first (``/proc/self/clear_refs``,
  ``5``) and ``VmHWM`` read after, which is exact; elsewhere psutil samples RSS every millisecond in
  a thread (a peak shorter than that can be missed).

Nothing here raises: each number that cannot be measured stays None and the reason is returned.
The torch RNG state is saved and restored, so the measurement leaves no trace on later draws.
"""

from __future__ import annotations

import logging
import re
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import torch
from torch import nn
from torch.utils.data import default_collate
from torch.utils.flop_counter import FlopCounterMode

from bench.config.catalog import TrialConfig
from bench.engine.base import Task
from bench.engine.data import subsample
from bench.engine.device import autocast, sync
from bench.results.record import Efficiency

log = logging.getLogger(__name__)
T = TypeVar("T")
MIB = 2**20


@dataclass(frozen=True)
class Budget:
    """Iterations of one timed pass: timm's defaults (10 warm-up, 40 timed), cut short by time.

    Warm-up runs at least once (the first call pays for lazy initialisation and allocator growth)
    and stops after ``warmup_iters`` or once ``warmup_s`` have passed; the timed run makes at least
    ``min_timed`` steps and stops after ``timed_iters`` or once ``timed_s`` have passed.  A pass
    therefore costs about ``warmup_s + timed_s`` plus one step, or ``1 + min_timed`` steps where a
    step is longer than that.
    """

    warmup_iters: int = 10
    timed_iters: int = 40
    min_timed: int = 3
    warmup_s: float = 0.5
    timed_s: float = 1.0


@dataclass(frozen=True)
class TimedRun:
    """The timed steps of one pass: each step's synchronised seconds and the wall time of them all."""

    steps: list[float]
    elapsed_s: float

    @property
    def mean_step_s(self) -> float:
        return statistics.fmean(self.steps)


def measure(
    task: Task, model: nn.Module, device: torch.device, cfg: TrialConfig, budget: Budget | None = None,
) -> tuple[Efficiency, str | None]:
    """The efficiency record of ``model`` (trained, on ``device``) and why any field is missing.

    Returns ``(efficiency, error)``: ``error`` is None when every field was measured, else
    ``"what: Type: message"`` entries joined by ``"; "``.  Run after the test evaluation.
    """
    budget = budget or Budget()
    errors: list[str] = []
    eval_batch = cfg.train.eval_batch_size or cfg.train.batch_size
    fields: dict[str, Any] = {"params": sum(p.numel() for p in model.parameters()), "eval_batch": eval_batch,
                              "device": str(device)}
    model.eval()
    with torch.random.fork_rng(devices=_cuda_devices(device)), torch.no_grad():
        batches = _attempt("test images", errors, lambda: sample_batches(task, cfg, eval_batch, device))
        if batches is not None:
            one, full = batches
            fields["flops"] = _attempt("flops", errors, lambda: count_flops(task, model, one, device))

            def run(batch: Any) -> Callable[[], Any]:
                def step() -> Any:
                    with autocast(device, cfg.train.amp):
                        return task.predict(model, batch, device)
                return step

            with PeakMemory(device) as mem:
                single = _attempt("latency", errors, lambda: timed_run(run(one), device, budget))
                bulk = _attempt("throughput", errors, lambda: timed_run(run(full), device, budget))
            if single is not None:
                fields["latency_ms"] = 1000 * single.mean_step_s
            if bulk is not None:
                fields["throughput_ips"] = eval_batch * len(bulk.steps) / bulk.elapsed_s
            if mem.error:
                errors.append(f"peak memory: {mem.error}")
            elif single is not None or bulk is not None:
                fields["peak_memory_mb"], fields["memory_kind"] = mem.peak_bytes / MIB, mem.kind
    return Efficiency(**fields), "; ".join(errors) or None


def sample_batches(task: Task, cfg: TrialConfig, eval_batch: int, device: torch.device) -> tuple[Any, Any]:
    """``(batch of 1, batch of eval_batch)`` of test images, collated by the task and on ``device``.

    The images the test evaluation scored (the same ``max_eval_images`` subsample), from the first;
    a test set smaller than ``eval_batch`` is repeated to fill the batch.
    """
    ds = subsample(task.dataset("test", train=False), cfg.train.max_eval_images, cfg.seed)
    n = len(ds)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError("the test split is empty")
    collate = task.collate or default_collate
    full = collate([ds[i % n] for i in range(eval_batch)])
    one = collate([ds[0]])
    return to_device(one, device), to_device(full, device)


def to_device(obj: Any, device: torch.device) -> Any:
    """Every tensor in nested tuples/lists/dicts moved to ``device`` (so the timing excludes the copy)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def count_flops(task: Task, model: nn.Module, batch: Any, device: torch.device) -> float:
    """Forward FLOPs of ``task.predict`` on ``batch`` (batch 1: per image), as torch counts them."""
    counter = FlopCounterMode(display=False)
    with counter:
        task.predict(model, batch, device)
    return float(counter.get_total_flops())


def timed_run(step: Callable[[], Any], device: torch.device, budget: Budget) -> TimedRun:
    """Warm up ``step``, then time it (see :class:`Budget` for the counts), synchronising ``device``."""
    start = time.perf_counter()
    for _ in range(max(1, budget.warmup_iters)):  # at least one: lazy init and allocator growth
        step()
        sync(device)
        if time.perf_counter() - start >= budget.warmup_s:
            break
    steps: list[float] = []
    start = time.perf_counter()
    while len(steps) < budget.timed_iters and (
            len(steps) < budget.min_timed or time.perf_counter() - start < budget.timed_s):
        t0 = time.perf_counter()
        step()
        sync(device)
        steps.append(time.perf_counter() - t0)
    return TimedRun(steps, time.perf_counter() - start)


class PeakMemory:
    """Context manager: the peak memory of the block (see the module docstring), in ``peak_bytes``.

    Never raises: a failure to measure leaves ``error`` set and ``peak_bytes`` 0.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.kind = "cuda_max_allocated" if device.type == "cuda" else "rss"
        self.peak_bytes = 0
        self.error: str | None = None
        self._sampler: _RssSampler | None = None

    def __enter__(self) -> PeakMemory:
        try:
            if self.device.type == "cuda":
                sync(self.device)
                torch.cuda.reset_peak_memory_stats(self.device)
            elif not _reset_high_water_mark():
                self._sampler = _RssSampler()
                self._sampler.start()
        except Exception as exc:  # noqa: BLE001 - measuring memory must not fail the trial
            self.error = f"{type(exc).__name__}: {exc}"
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self.device.type == "cuda":
                sync(self.device)
                self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
            elif self._sampler is not None:
                self.peak_bytes = self._sampler.stop()
            elif self.error is None:
                self.peak_bytes = _high_water_mark()
        except Exception as err:  # noqa: BLE001
            self.error = self.error or f"{type(err).__name__}: {err}"


STATUS, CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def _reset_high_water_mark() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux >= 4.0); False where not possible."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _high_water_mark() -> int:
    """This process's peak RSS since the last reset, in bytes (``VmHWM`` of ``/proc/self/status``)."""
    match = re.search(r"^VmHWM:\s+(\d+) kB", STATUS.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError("no VmHWM line in /proc/self/status")
    return int(match.group(1)) * 1024


class _RssSampler(threading.Thread):
    """RSS of this process every ``interval_s`` in a daemon thread; :meth:`stop` returns the peak."""

    def __init__(self, interval_s: float = 0.001) -> None:
        super().__init__(daemon=True)
        import psutil  # a Ray dependency; only needed where the kernel counter is unavailable

        self._proc, self._interval = psutil.Process(), interval_s
        self._done = threading.Event()
        self.peak = self._proc.memory_info().rss

    def run(self) -> None:
        while not self._done.wait(self._interval):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return max(self.peak, self._proc.memory_info().rss)


def _cuda_devices(device: torch.device) -> list[int]:
    """The CUDA devices whose RNG ``fork_rng`` must save: the one in use, or none on CPU."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def _attempt(what: str, errors: list[str], fn: Callable[[], T]) -> T | None:
    """``fn()``, or None with ``"what: Type: message"`` appended to ``errors`` (and logged at debug)."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - a failed measurement must not fail an otherwise good trial
        errors.append(f"{what}: {type(exc).__name__}: {exc}")
        log.debug("efficiency: %s not measured", what, exc_info=True)
        return None
