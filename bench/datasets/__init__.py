"""The dataset-format registry: adapters that turn files on disk into typed split records.

A dataset YAML (``configs/datasets/*.yaml``) names, per task, a ``view``: a format registered
here and a path.  Adapters use only NumPy/PIL/JSON, so listing and validating stays torch-free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.registry import Registry


@dataclass(frozen=True)
class FormatSpec:
    """Metadata of a dataset format adapter."""

    tasks: tuple[str, ...]  # the tasks whose views may use this format
    layout: str  # the on-disk layout the adapter expects, shown by `bench list`


DATASETS: Registry[Callable[..., Any], FormatSpec] = Registry("dataset format", discover=("bench.datasets",))


def register_format(
    name: str, *, task: str | tuple[str, ...], layout: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a format adapter ``(view_root, split, classes) -> split records``.

    ``task``: the task, or tasks, whose dataset views may name this format (COCO instances serve
    detection and instance segmentation).
    """
    tasks = (task,) if isinstance(task, str) else tuple(task)
    return DATASETS.register(name, FormatSpec(tasks=tasks, layout=layout))
