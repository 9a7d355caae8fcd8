"""Fail-fast resource checks: a request no node can hold is reported, never queued forever."""

from __future__ import annotations

from bench.orchestration.ray_runner import infeasible_reason

CPU_ONLY = [{"CPU": 2.0, "memory": 8 * 2**30}]
MIXED = [{"CPU": 8.0, "memory": 30 * 2**30}, {"CPU": 8.0, "GPU": 1.0, "memory": 60 * 2**30}]


def test_feasible_requests() -> None:
    assert infeasible_reason({"CPU": 1, "GPU": 0}, CPU_ONLY) is None
    assert infeasible_reason({"CPU": 4, "GPU": 0.5}, MIXED) is None


def test_gpu_on_cpu_only_cluster_names_request_and_offer() -> None:
    msg = infeasible_reason({"CPU": 1, "GPU": 1}, CPU_ONLY)
    assert msg is not None
    assert "GPU=1" in msg and "{CPU=2, GPU=0, memory=8.0GiB}" in msg


def test_request_must_fit_one_node_not_the_sum() -> None:
    # 12 CPUs exist in total, but no single node has them.
    assert infeasible_reason({"CPU": 12}, MIXED) is not None
    # a GPU and lots of CPU must be on the same node
    assert infeasible_reason({"CPU": 8, "GPU": 1, "memory": 40 * 2**30}, MIXED) is None
    assert infeasible_reason({"CPU": 8, "GPU": 1, "memory": 80 * 2**30}, MIXED) is not None
