"""cluster.yaml passes Ray's own cluster-launcher validation (offline), and keeps the dashboard local."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def load() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def validate(cfg: dict) -> dict:
    from ray.autoscaler._private.util import fillout_defaults, validate_config

    filled = fillout_defaults(copy.deepcopy(cfg))
    validate_config(filled)
    return filled


def test_cluster_yaml_is_valid_for_ray() -> None:
    filled = validate(load())
    types = filled["available_node_types"]
    head = types[filled["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    assert any(t["resources"].get("GPU", 0) > 0 for t in types.values()), "no GPU worker type"


def test_validation_rejects_unknown_keys() -> None:
    """The check above could fail: Ray's schema rejects a misspelt key."""
    cfg = load()
    cfg["available_node_types"]["worker_gpu"]["min_worker"] = 1
    with pytest.raises(Exception, match="min_worker"):
        validate(cfg)


def test_setup_installs_and_pulls_data_and_dashboard_stays_local() -> None:
    cfg = load()
    setup = " ".join(cfg["setup_commands"])
    assert "pip install" in setup and "bench data pull" in setup
    head = " ".join(cfg["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head
