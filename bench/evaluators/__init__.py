"""Evaluators: accumulators over batches whose state can be shipped between processes and summed.

Every evaluator has ``reset()``, ``update(...)``, ``compute() -> dict``, ``merge(other)`` (in
place, returns self), ``state() -> dict`` of plain numbers/arrays/lists (picklable, so Ray workers
can send it to the driver) and ``from_state(state)``.  Merging the states of workers that saw
disjoint parts of the data gives the same result as one evaluator that saw all of it (for
detection: provided the parts are merged in data order, which only matters for exact score ties
across workers).

This module stays cheap to import: the classes live in submodules imported on first registry
lookup (``discover``) or on attribute access (``from bench.evaluators import SegmentationEvaluator``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from bench.registry import Registry


@dataclass(frozen=True)
class EvaluatorSpec:
    """What a registered evaluator accumulates; ``task`` equals its registry name."""

    task: str
    description: str


EVALUATORS: Registry[type, EvaluatorSpec] = Registry("evaluator", discover=("bench.evaluators",))

_LAZY = {
    "ClassificationEvaluator": "bench.evaluators.classification",
    "VerificationEvaluator": "bench.evaluators.classification",
    "SegmentationEvaluator": "bench.evaluators.segmentation",
    "EmbeddingEvaluator": "bench.evaluators.verification",
    "DetectionEvaluator": "bench.evaluators.detection",
    "InstanceSegmentationEvaluator": "bench.evaluators.instance_segmentation",
}


def __getattr__(name: str) -> Any:
    """PEP 562 lazy re-export of the evaluator classes."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["EVALUATORS", "EvaluatorSpec", *_LAZY]
