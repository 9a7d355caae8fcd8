"""``bench eval`` commands through typer's CliRunner on small files in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from bench.cli.eval import app
from bench.metrics.detection import evaluate_coco
from bench.metrics.synthetic import random_coco

runner = CliRunner()


def test_help_teaches_with_examples() -> None:
    for cmd in ("detection", "segmentation", "classification"):
        r = runner.invoke(app, [cmd, "--help"])
        assert r.exit_code == 0 and "Example" in r.output and f"bench eval {cmd}" in r.output


def test_detection(tmp_path: Path) -> None:
    gt, preds = random_coco(31)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(preds))
    out = tmp_path / "m.json"
    files = ["--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json")]
    opts = ["--out", str(out), "--voc-iou", "0.6", "--voc-legacy-coords"]
    r = runner.invoke(app, ["detection", *files, *opts])
    assert r.exit_code == 0, r.output
    assert "mAP_50" in r.output and "per class" in r.output
    written = json.loads(out.read_text())
    want = evaluate_coco(gt, preds, voc_iou=0.6, voc_legacy_coords=True)
    assert written["mAP"] == pytest.approx(want["mAP"]) and written["mAP11"] == pytest.approx(want["mAP11"])
    assert written["voc_legacy_coords"] is True


def test_detection_bad_record_exits_2(tmp_path: Path) -> None:
    gt, preds = random_coco(31)
    preds[3]["image_id"] = 424242
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(preds))
    files = ["--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json")]
    r = runner.invoke(app, ["detection", *files, "--out", str(tmp_path / "m.json")])
    assert r.exit_code == 2
    assert "prediction #3 (image_id=424242): unknown image_id" in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    files = ["--gt", str(tmp_path / "nope.json"), "--pred", str(tmp_path / "pred.json")]
    r = runner.invoke(app, ["detection", *files, "--out", str(tmp_path / "m.json")])
    assert r.exit_code == 2 and "not found" in r.output


def _write_pngs(d: Path, maps: dict[str, np.ndarray]) -> None:
    d.mkdir()
    for name, m in maps.items():
        Image.fromarray(m.astype(np.uint8)).save(d / name)


def test_segmentation(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    gts = {f"{i}.png": rng.integers(0, 3, (8, 10)) for i in range(3)}
    gts["0.png"][0, :4] = 255
    preds = {k: np.where(rng.random(v.shape) < 0.7, v % 255 % 3, 1) for k, v in gts.items()}
    _write_pngs(tmp_path / "gt", gts)
    _write_pngs(tmp_path / "pred", preds)
    out = tmp_path / "m.json"
    r = runner.invoke(app, ["segmentation", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"),
                            "--num-classes", "3", "--out", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    t = np.stack(list(gts.values()))
    p = np.stack([preds[k] for k in gts])
    keep = t != 255
    assert res["pixel_accuracy"] == pytest.approx((t[keep] == p[keep]).mean())
    assert res["num_images"] == 3 and res["reduction"] == "dataset"


def test_segmentation_errors(tmp_path: Path) -> None:
    _write_pngs(tmp_path / "gt", {"a.png": np.zeros((4, 4)), "b.png": np.zeros((4, 4))})
    _write_pngs(tmp_path / "pred", {"a.png": np.zeros((4, 5))})
    args = ["segmentation", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"),
            "--num-classes", "2", "--out", str(tmp_path / "m.json")]
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and "missing prediction" in r.output and "b.png" in r.output
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "pred" / "b.png")
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and "a.png: prediction size (5, 4) != ground truth size (4, 4)" in r.output
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "pred" / "a.png")
    Image.fromarray(np.full((4, 4), 7, np.uint8)).save(tmp_path / "gt" / "b.png")
    r = runner.invoke(app, args)
    assert r.exit_code == 2 and "b.png: target label 7" in r.output


def test_classification(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("id,label\nimg1,2\nimg2,0\nimg3,1\n")
    (tmp_path / "scores.csv").write_text(
        "id,score_0,score_1,score_2\nimg2,0.8,0.1,0.1\nimg1,0.1,0.2,0.7\nimg3,0.5,0.4,0.1\n")
    out = tmp_path / "m.json"
    r = runner.invoke(app, ["classification", "--gt", str(tmp_path / "labels.csv"),
                            "--pred", str(tmp_path / "scores.csv"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["top1"] == pytest.approx(2 / 3) and res["top5"] is None
    assert res["confusion_matrix"] == [[1, 0, 0], [1, 0, 0], [0, 0, 1]]


@pytest.mark.parametrize(("labels", "scores", "message"), [
    ("id,label\na,0\nb,1\n", "id,score_0,score_1\na,1,0\n", "id 'b' from"),
    ("id,label\na,0\n", "id,score_0,score_1\na,1,0\nz,0,1\n", "id 'z' has no label"),
    ("id,label\na,5\n", "id,score_0,score_1\na,1,0\n", "id 'a': label 5 is outside"),
    ("id,label\na,0\n", "id,s0,s1\na,1,0\n", "header must be"),
    ("id,label\na,0\n", "id,score_0,score_1\na,1,x\n", "non-numeric score"),
])
def test_classification_errors(tmp_path: Path, labels: str, scores: str, message: str) -> None:
    (tmp_path / "labels.csv").write_text(labels)
    (tmp_path / "scores.csv").write_text(scores)
    r = runner.invoke(app, ["classification", "--gt", str(tmp_path / "labels.csv"),
                            "--pred", str(tmp_path / "scores.csv"), "--out", str(tmp_path / "m.json")])
    assert r.exit_code == 2 and message in r.output, r.output
    assert "Traceback" not in r.output


def test_plots(tmp_path: Path) -> None:
    from bench.reports.plots import confusion_matrix_plot, pr_curves

    res = evaluate_coco(*random_coco(32))
    assert pr_curves(res["per_class"], tmp_path / "pr.png").stat().st_size > 1000
    cm = np.array([[5, 1], [0, 0]])
    assert confusion_matrix_plot(cm, ["a", "b"], tmp_path / "cm.png").stat().st_size > 1000
