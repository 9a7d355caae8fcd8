"""The metric registry: discovery, metadata, spec string, and cheap imports."""

from __future__ import annotations

import pytest

from bench.metrics import METRIC_SPEC, METRICS, MetricSpec
from bench.registry import RegistryError
from tests.conftest import heavy_imports_after

EXPECTED = {"coco_detection": "detection", "segmentation": "semantic_segmentation",
            "classification": "classification", "verification": "verification"}


def test_all_headline_metrics_registered() -> None:
    assert set(EXPECTED) <= set(METRICS.names())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_entry_metadata(name: str) -> None:
    entry = METRICS.get(name)
    assert isinstance(entry.meta, MetricSpec)
    assert entry.meta.task == EXPECTED[name]
    assert entry.meta.reduction and entry.meta.description
    assert callable(entry.obj) and entry.obj.__doc__


def test_unknown_metric_suggests() -> None:
    with pytest.raises(RegistryError, match="did you mean 'segmentation'"):
        METRICS.get("segmentaton")


def test_spec_string() -> None:
    assert METRIC_SPEC == "bench-metrics/1.0"


def test_imports_are_cheap_and_torch_free() -> None:
    code = ("import bench.metrics, bench.evaluators; "
            "from bench.metrics import METRICS; from bench.evaluators import EVALUATORS; "
            "METRICS.names(); EVALUATORS.names(); import bench.cli.eval, bench.reports.plots")
    assert heavy_imports_after(code) == []
