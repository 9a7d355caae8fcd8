"""The regression gate end to end: a candidate whose one model trained on shuffled labels gives exactly
that model's rows `regressed` and exit 1; the same code again gives no `regressed` row and exit 0."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.test_e2e import BIN, ROOT, base_env

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("ray")]

# simple_cnn learns shapes well above chance in seconds at this budget; hog_svm is the bystander.
LEARNS = {"epochs": 8, "max_train_images": 600, "max_eval_images": 300, "batch_size": 32, "lr": 0.003}


def suite(path: Path, shuffled: bool) -> Path:
    path.write_text(yaml.safe_dump({
        "description": "regression gate test", "models": ["simple_cnn", "hog_svm"], "dataset": "shapes",
        "profiles": {"smoke": {"simple_cnn": {**LEARNS, "shuffle_train_labels": shuffled}}},
    }))
    return path


def bench(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "bench"), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)


def test_planted_break_is_the_only_regression(project: Path, tmp_path: Path) -> None:
    env = base_env(MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    files = {}
    for name, shuffled, force in (("base", False, False), ("again", False, True), ("planted", True, False)):
        files[name] = tmp_path / f"{name}.json"
        args = ["run", str(suite(tmp_path / f"{name}.yaml", shuffled)), "--profile", "smoke", "--no-report",
                "--output", str(files[name])]
        res = bench(*args, *(["--force"] if force else []), env=env)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    same = bench("compare", str(files["base"]), str(files["again"]), "--json", str(tmp_path / "same.json"), env=env)
    assert same.returncode == 0, same.stdout
    rows = json.loads((tmp_path / "same.json").read_text())["rows"]
    assert rows and not [r for r in rows if r["verdict"] == "regressed"]

    planted = bench("compare", str(files["base"]), str(files["planted"]), "--json", str(tmp_path / "p.json"),
                    env=env)
    assert planted.returncode == 1, planted.stdout
    rows = json.loads((tmp_path / "p.json").read_text())["rows"]
    regressed = {(r["model"], r["metric"]) for r in rows if r["verdict"] == "regressed"}
    assert regressed == {("simple_cnn", "top1"), ("simple_cnn", "macro_f1")}, planted.stdout
    top1 = next(r for r in rows if r["model"] == "simple_cnn" and r["metric"] == "top1")
    assert top1["noise"].startswith("paired bootstrap") and top1["differs"] == ["config"]
    hog = [r for r in rows if r["model"] == "hog_svm"]
    assert hog and all(r["verdict"] == "unchanged" for r in hog)  # reused from the store: the same record
