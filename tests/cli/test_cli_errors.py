"""CLI errors: one line, exit code 2, the closest name offered; nothing starts before input is valid."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli.main import app


def run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.output


def test_unknown_model_did_you_mean() -> None:
    code, out = run("run", "resnet19", "--profile", "smoke")
    assert code == 2
    assert "unknown run target 'resnet19'; did you mean 'resnet18'" in out
    assert "Traceback" not in out


def test_unknown_profile() -> None:
    code, out = run("run", "unet", "--profile", "smok")
    assert code == 2 and "did you mean 'smoke'" in out


def test_unknown_dataset() -> None:
    code, out = run("run", "unet", "--dataset", "shape")
    assert code == 2 and "unknown dataset 'shape'; did you mean 'shapes'" in out


def test_bad_dataset_yaml_names_file_and_key(tmp_path: Path) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text("root: x\nclasses: [a]\nviews:\n  detection: {format: yolo, path: .}\n")
    code, out = run("run", "unet", "--dataset", str(f))
    assert code == 2
    assert "mine.yaml: key 'views.detection.format'" in out
    assert "'imagefolder', 'coco', 'voc' or 'masks'" in out


def test_unknown_task_in_list() -> None:
    code, out = run("list", "--task", "detektion")
    assert code == 2 and "did you mean 'detection'" in out


def test_list_filters_by_task() -> None:
    code, out = run("list", "--task", "detection")
    assert code == 0 and "faster_rcnn" in out and "resnet18" not in out
    code, out = run("list", "--task", "verification")
    assert code == 0 and "siamese_contrastive" in out and "siamese_triplet" in out and "resnet18" not in out
    code, out = run("list", "--task", "classification")
    from bench.models import MODELS

    expected = [e.name for e in MODELS.entries() if e.meta.task == "classification" and e.name != "broken_model"]
    assert code == 0 and len(expected) >= 24 and all(name in out for name in expected), out


@pytest.mark.parametrize("cmd", [[], ["run"], ["list"], ["data"], ["report"], ["eval"]])
def test_help_teaches_with_examples(cmd: list[str]) -> None:
    code, out = run(*cmd, "--help")
    assert code == 0
    assert "bench" in out and ("Example" in out or "Typical session" in out or "Commands" in out)


def test_job_without_tracking_uri_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.tracking.mlflow_writer import job_tracking_warning

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR", raising=False)
    assert job_tracking_warning() is None
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")
    assert "MLFLOW_TRACKING_URI" in (job_tracking_warning() or "")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert job_tracking_warning() is None
