"""Model params from YAML are checked against the builder signature before any worker starts."""

from __future__ import annotations

import pytest

from bench.models import check_params


def test_unknown_param_suggests() -> None:
    with pytest.raises(ValueError, match=r"unknown key 'params.backbon' .*did you mean 'backbone'"):
        check_params("faster_rcnn", {"backbon": "resnet18"}, "configs/models/faster_rcnn.yaml")


def test_param_type_checked() -> None:
    with pytest.raises(ValueError, match=r"faster_rcnn.yaml: key 'params.fpn_channels'"):
        check_params("faster_rcnn", {"fpn_channels": "wide"}, "faster_rcnn.yaml")


def test_engine_args_are_reserved() -> None:
    with pytest.raises(ValueError, match="set by the engine"):
        check_params("unet", {"num_classes": 3}, "unet.yaml")


def test_valid_params_coerced() -> None:
    assert check_params("faster_rcnn", {"anchor_sizes": [8, 16, 32, 64, 128]}, "x")["anchor_sizes"] == (
        8, 16, 32, 64, 128)
