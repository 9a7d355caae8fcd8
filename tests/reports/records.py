"""Small synthetic trial records for the leaderboard tests (no training, no MLflow)."""

from __future__ import annotations

from typing import Any

from bench.results.record import Efficiency, EpochLog, Provenance, TrialResult


def record(model: str, task: str = "classification", metrics: dict[str, float | None] | None = None, *,
           dataset: str = "shapes", profile: str = "cpu", seed: int = 0, status: str = "ok",
           latency_ms: float | None = None, **fields: Any) -> TrialResult:
    """One record of ``model``; ``latency_ms`` given: an :class:`Efficiency` with it (and made-up params/FLOPs)."""
    if latency_ms is not None:
        fields.setdefault("efficiency", Efficiency(params=1_500_000, flops=2.5e9, latency_ms=latency_ms,
                                                   throughput_ips=1000 / latency_ms, peak_memory_mb=256.0))
    return TrialResult(
        trial_id=f"{model}-{dataset}-{profile}-s{seed}", model=model, task=task, dataset=dataset, profile=profile,
        seed=seed, status=status, metrics=metrics or {}, provenance=Provenance(config_hash="h"), **fields,
    )


def history(epochs: int, primary: str = "top1", acc: bool = True) -> list[EpochLog]:
    """``epochs`` epochs of a loss going down and accuracies going up."""
    return [EpochLog(epoch=e, train_loss=1.0 / e, train_acc=0.5 + e / 100 if acc else None,
                     val={primary: 0.4 + e / 50}, lr=0.1, seconds=1.0) for e in range(1, epochs + 1)]


def detection_per_class(classes: int = 3) -> dict[str, Any]:
    """``per_class`` as ``bench.metrics.detection`` fills it: a VOC PR curve on 101 recall levels per class."""
    recall = [i / 100 for i in range(101)]
    return {f"class{k}": {"AP": 0.3, "AP50": 0.5, "AP11": 0.5, "APall": 0.5 + k / 10, "num_gt": 10, "num_pred": 20,
                          "pr_curve": {"recall": recall, "precision": [max(0.0, 1 - r * (1 + k / 3)) for r in recall]}}
            for k in range(classes)}
