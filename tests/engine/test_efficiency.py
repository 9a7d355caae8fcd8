"""Efficiency measurement (``bench.engine.efficiency``): the protocol, the numbers, and that it never fails a trial.

FLOPs are checked against a hand count on a net small enough to count: a 3x3 convolution (3 -> 4
channels, padding 1) on a 32 px image has 4 x 32 x 32 outputs of 3 x 3 x 3 = 27 multiply-adds
each, 110,592 MACs; the linear layer on its 4096 outputs has 4096 x 3 = 12,288; at 2 FLOPs per MAC
(biases, ReLU and softmax count 0, as torch counts) that is 245,760 FLOPs.  Every registered model
(smoke configuration: 32 px for most, batch 4; the slow part) is measured with a minimal budget.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from bench.config.catalog import Catalog, effective_trial
from bench.engine import efficiency
from bench.engine.efficiency import Budget, PeakMemory, measure, timed_run
from bench.models import MODELS
from bench.tasks import task_impl

ROOT = Path(__file__).resolve().parents[2]
CATALOG = Catalog(ROOT / "configs")
CPU = torch.device("cpu")
# One warm-up and three timed steps per pass: the protocol's minimum, for speed.
QUICK = Budget(warmup_iters=1, timed_iters=3, min_timed=3, warmup_s=0.0, timed_s=0.0)
HAND_FLOPS = 2 * (4 * 32 * 32 * 27 + 4096 * 3)  # 245,760
MIB = 2**20


def smoke(name: str) -> tuple[Any, Any]:
    """``(cfg, task)`` of ``name`` at the smoke profile on its first dataset (shapes for all but threshold_otsu)."""
    model = CATALOG.model(name)
    cfg = effective_trial(model, CATALOG.dataset(model.datasets[0]), CATALOG.profile("smoke"), seed=0)
    return cfg, task_impl(cfg.task)(cfg, ROOT / cfg.dataset.root)


def hand_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 32 * 32, 3))


def test_hand_counted_net(project: Path) -> None:
    cfg, task = smoke("simple_cnn")  # a classification task at 32 px, eval batch 4
    assert cfg.train.image_size == 32
    eff, error = measure(task, hand_net(), CPU, cfg, QUICK)
    assert error is None
    assert eff.flops == HAND_FLOPS
    assert eff.params == (4 * 27 + 4) + (4096 * 3 + 3)  # weights and biases
    assert eff.eval_batch == (cfg.train.eval_batch_size or cfg.train.batch_size) and eff.device == "cpu"
    assert eff.latency_ms > 0 and eff.throughput_ips > 0
    assert eff.peak_memory_mb > 0 and eff.memory_kind == "rss"


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_is_measured(name: str, project: Path) -> None:
    cfg, task = smoke(name)
    torch.manual_seed(0)
    model = task.build_model()
    eff, error = measure(task, model, CPU, cfg, QUICK)
    print(eff)
    assert error is None, error
    assert eff.params == sum(p.numel() for p in model.parameters())
    assert eff.flops > 0 and eff.latency_ms > 0 and eff.throughput_ips > 0
    assert eff.peak_memory_mb > 0 and eff.memory_kind == "rss"


def test_warm_up_is_excluded_and_time_bounds_the_count() -> None:
    calls: list[int] = []
    run = timed_run(lambda: calls.append(1), CPU, Budget(warmup_iters=2, timed_iters=5, warmup_s=1e9, timed_s=1e9))
    assert len(calls) == 7 and len(run.steps) == 5  # 2 warm-up steps, not timed
    calls.clear()
    run = timed_run(lambda: calls.append(1), CPU, Budget(warmup_iters=10, timed_iters=40, warmup_s=0, timed_s=0))
    assert len(calls) == 1 + 3 and len(run.steps) == 3  # out of time at once: one warm-up, min_timed steps
    run = timed_run(lambda: time.sleep(0.01), CPU, Budget(warmup_iters=1, timed_iters=1000, timed_s=0.05))
    assert 3 <= len(run.steps) < 20 and run.elapsed_s >= sum(run.steps) and run.mean_step_s >= 0.01


class Flaky(nn.Module):
    """The hand net, failing on batches larger than ``max_batch`` and drawing random numbers."""

    def __init__(self, max_batch: int) -> None:
        super().__init__()
        self.net, self.max_batch = hand_net(), max_batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) > self.max_batch:
            raise RuntimeError(f"batch {len(x)} too large")
        return self.net(x) + 0 * torch.rand(1)


def test_failures_leave_fields_empty_with_the_reason(project: Path) -> None:
    cfg, task = smoke("simple_cnn")
    eff, error = measure(task, Flaky(max_batch=1), CPU, cfg, QUICK)  # batch 1 works, the eval batch fails
    assert eff.flops == HAND_FLOPS and eff.latency_ms > 0 and eff.peak_memory_mb > 0
    assert eff.throughput_ips is None
    assert error == f"throughput: RuntimeError: batch {eff.eval_batch} too large"
    eff, error = measure(task, Flaky(max_batch=0), CPU, cfg, QUICK)  # nothing runs
    assert eff.params == sum(p.numel() for p in hand_net().parameters())
    assert eff.flops is eff.latency_ms is eff.throughput_ips is eff.peak_memory_mb is eff.memory_kind is None
    assert error.startswith("flops: RuntimeError: batch 1 too large; latency: ") and "throughput: " in error


def test_torch_rng_is_left_as_it_was(project: Path) -> None:
    cfg, task = smoke("simple_cnn")
    model = Flaky(max_batch=64)  # its forward draws from the RNG
    torch.manual_seed(123)
    state = torch.get_rng_state()
    measure(task, model, CPU, cfg, QUICK)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("kernel_counter", [True, False], ids=["vmhwm", "sampled"])
def test_cpu_peak_rss_sees_a_transient_allocation(kernel_counter: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not kernel_counter:
        monkeypatch.setattr(efficiency, "_reset_high_water_mark", lambda: False)  # as where /proc is missing
    with PeakMemory(CPU) as before:
        pass
    with PeakMemory(CPU) as mem:
        big = torch.ones(64 * MIB)  # 256 MiB, written, so resident
        time.sleep(0.05)  # several sampling periods
        del big
    assert mem.error is None and mem.kind == "rss"
    assert mem.peak_bytes - before.peak_bytes >= 200 * MIB


def test_trial_records_efficiency_and_survives_a_failed_measurement(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record and the MLflow run get the numbers; a measurement failure only empties its field."""
    from bench.orchestration.trial import RunContext, run_trial
    from bench.tracking.mlflow_writer import efficiency_metrics

    def broken(*args: object) -> float:
        raise RuntimeError("no formula")

    monkeypatch.setattr(efficiency, "count_flops", broken)
    cfg, _ = smoke("simple_cnn")
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"checkpoint": False})})
    result = run_trial(cfg, RunContext(str(project), "pytest-efficiency", "sha"), lambda event: None)
    assert result.status == "ok", result.traceback
    eff = result.efficiency
    assert eff.flops is None and eff.params == result.num_params and eff.latency_ms > 0 and eff.throughput_ips > 0
    assert result.extras["efficiency_error"] == "flops: RuntimeError: no formula"
    assert set(efficiency_metrics(result)) == {"params", "latency_ms", "throughput_ips", "peak_memory_mb"}


@pytest.mark.xdist_group("mlflow-local")
def test_mlflow_run_gets_the_numbers_and_the_memory_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    from bench.orchestration.trial import RunContext, base_result
    from bench.results.record import Efficiency
    from bench.tracking.mlflow_writer import MlflowWriter

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg, _ = smoke("simple_cnn")
    eff = Efficiency(params=12403, flops=245760.0, latency_ms=0.5, throughput_ips=2000.0, eval_batch=4,
                     peak_memory_mb=700.0, memory_kind="rss", device="cpu")
    record = base_result(cfg, RunContext(str(ROOT), "t", "sha"), status="ok", efficiency=eff)
    writer = MlflowWriter(tmp_path)
    writer.start_parent("t", tags={}, params={})
    run = MlflowClient(writer.uri).get_run(writer.log_trial(record, []))
    assert {k: run.data.metrics[k] for k in ("params", "flops", "latency_ms", "throughput_ips", "peak_memory_mb")} == {
        "params": 12403, "flops": 245760, "latency_ms": 0.5, "throughput_ips": 2000, "peak_memory_mb": 700}
    assert run.data.tags["memory_kind"] == "rss"
