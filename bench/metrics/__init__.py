"""Metrics: functions over NumPy arrays, registered by name with their reduction.

All NumPy except COCO AP/AR (faster-coco-eval, checked against pycocotools in ``tests/metrics``)
and the exact binomial test of ``significance`` (scipy).

This module is imported by ``bench list`` and by every worker, so it must stay cheap: it defines
the registry, the spec version and the input-error type only.  The metric implementations live in
submodules (``detection``, ``segmentation``, ``classification``) that the registry imports on
first lookup (``discover``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from bench.registry import Registry

#: Version of the metric definitions; stored in every result under ``spec`` so that numbers
#: computed under different definitions are never compared silently.
METRIC_SPEC = "bench-metrics/1.0"

F = TypeVar("F", bound=Callable[..., Any])


class MetricInputError(ValueError):
    """Invalid metric input; the message names the offending record (``prediction #17 ...``)."""


@dataclass(frozen=True)
class MetricSpec:
    """What a registered metric function computes.

    ``reduction`` names how per-item values become the headline number (e.g. ``"macro over
    classes, dataset-level counts"``), because a metric without its reduction is ambiguous.
    """

    task: str
    reduction: str
    higher_is_better: bool
    description: str


METRICS: Registry[Callable[..., Any], MetricSpec] = Registry("metric", discover=("bench.metrics",))


def register_metric(name: str, **spec: Any) -> Callable[[F], F]:
    """Decorator: ``@register_metric("segmentation", task=..., reduction=..., ...)``.

    The keyword arguments are the fields of :class:`MetricSpec`.
    """
    meta = MetricSpec(**spec)

    def deco(fn: F) -> F:
        METRICS.add(name, fn, meta)
        return fn

    return deco


__all__ = ["METRICS", "METRIC_SPEC", "MetricInputError", "MetricSpec", "register_metric"]
