"""The generic registry: decorator registration, duplicates, did-you-mean, lazy discovery."""

from __future__ import annotations

import pytest

from bench.registry import Registry, RegistryError, closest
from tests.conftest import heavy_imports_after


def test_register_get_and_list() -> None:
    reg: Registry[object, str] = Registry("widget")

    @reg.register("yolo_v3", "meta-a")
    def build() -> None: ...

    assert reg.get("yolo_v3").obj is build
    assert reg.get("yolo_v3").meta == "meta-a"
    assert reg.names() == ["yolo_v3"]
    assert "yolo_v3" in reg and "other" not in reg


def test_duplicate_name_raises() -> None:
    reg: Registry[object, str] = Registry("widget")
    reg.add("a", object(), "m")
    with pytest.raises(RegistryError, match="duplicate widget name 'a'"):
        reg.add("a", object(), "m")


def test_unknown_name_suggests_and_lists() -> None:
    reg: Registry[object, str] = Registry("model")
    for n in ("yolo_v3", "yolo_v2", "unet"):
        reg.add(n, object(), "m")
    with pytest.raises(RegistryError) as err:
        reg.get("yolo3")
    msg = str(err.value)
    assert "did you mean 'yolo_v3'" in msg
    assert "available: unet, yolo_v2, yolo_v3" in msg


def test_closest_prefers_similar() -> None:
    assert closest("resnet", ["resnet18", "unet", "faster_rcnn"])[0] == "resnet18"


def test_model_registry_is_lazy_about_torch() -> None:
    """Discovering every registered model must not import torch (bench list stays fast)."""
    code = ("from bench.models import MODELS; from bench.tasks import TASKS; "
            "from bench.datasets import DATASETS; assert len(MODELS.names()) >= 3; DATASETS.names()")
    assert "torch" not in heavy_imports_after(code)


def test_bench_list_imports_no_torch() -> None:
    """`bench list` in a fresh interpreter never imports torch (its time: benchmarks/cli_startup.py)."""
    code = ("from bench.cli.main import app; "
            "from typer.testing import CliRunner; r = CliRunner().invoke(app, ['list']); "
            "assert r.exit_code == 0, r.output; assert 'faster_rcnn' in r.output")
    assert "torch" not in heavy_imports_after(code)
