"""Synthetic trial records for the results tests (no training)."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.results.record import Interval, Provenance, TrialResult


def classification_samples(correct: np.ndarray, n_classes: int = 3, seed: int = 0) -> dict[str, Any]:
    """Per-image statistics of a classification test set where ``correct[i]`` says image i was right."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, len(correct))
    wrong = (labels + rng.integers(1, n_classes, len(correct))) % n_classes
    pred = np.where(correct, labels, wrong)
    return {"image_id": list(range(len(correct))), "label": labels.tolist(), "pred": pred.tolist(),
            "top5": [True] * len(correct)}


def record(model: str = "resnet18", seed: int = 0, top1: float | None = 0.9, status: str = "ok",
           samples: dict[str, Any] | None = None, git_sha: str = "a" * 40, code: str | None = "c0de",
           config: dict[str, Any] | None = None, ci: tuple[float, float] | None = None,
           task: str = "classification", dataset: str = "shapes", profile: str = "cpu", key: str | None = None,
           packages: dict[str, str] | None = None) -> TrialResult:
    metrics = {} if top1 is None else {"top1": top1, "macro_f1": top1}
    return TrialResult(
        trial_id=f"{model}@{dataset}#{seed}", model=model, task=task, dataset=dataset, profile=profile, seed=seed,
        status=status, error=None if status == "ok" else "RuntimeError: boom", metrics=metrics,
        provenance=Provenance(config_hash="h", dataset_version="md5:d", git_sha=git_sha, metric_spec="m/1",
                              code_version=code, packages=packages or {"torch": "2.14.1"}),
        config=config or {"model": model, "seed": seed, "train": {"lr": 0.001}}, samples=samples,
        ci={"top1": Interval(low=ci[0], high=ci[1])} if ci else {}, key=key or f"k-{model}-{seed}-{top1}",
    )
