"""``shapes_small``: the binary, class-imbalanced view drawn by the shapes generator (``SPECS``): labels {0, 1}
only, small objects, a foreground share of ~2%, the masks view only; ``shapes`` itself unchanged by the
parametrisation; the pinned version pulls from the local remote into a fresh checkout."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.datasets.formats import load_masks
from bench.datasets.shapes import BINARY_CLASSES, SPECS, ShapesSpec, generate, recorded_spec, render_scene
from bench.datasets.versioning import dir_md5, ensure, read_pin
from tests.conftest import ROOT, copy_project

SPEC = SPECS["shapes_small"]
FEW = replace(SPEC, scenes=(60, 10, 10))  # 80 scenes: enough for the share, quick to draw
BENCH = str(Path(sys.executable).with_name("bench"))


@pytest.fixture(scope="module")
def few(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("small") / "shapes_small", FEW)


def labels_of(root: Path, split: str) -> np.ndarray:
    """``[N, H, W]`` uint8 label maps of ``split``."""
    return np.stack([np.asarray(Image.open(p)) for p in sorted((root / "masks" / split).glob("*.png"))])


def test_binary_labels_and_masks_view_only(few: Path) -> None:
    for split, n in zip(("train", "val", "test"), FEW.scenes, strict=True):
        labels = labels_of(few, split)
        assert len(labels) == n and labels.shape[1:] == (64, 64)
        assert set(np.unique(labels)) == {0, 1}  # background and the one class, nothing else
        assert (labels.reshape(n, -1).max(1) == 1).all()  # every scene has foreground (1-3 shapes)
        rec = load_masks(few, split, list(BINARY_CLASSES))  # the `masks` format adapter reads it
        assert len(rec.images) == n and Image.open(rec.images[0]).size == (64, 64)
    assert sorted(p.name for p in few.iterdir()) == ["images", "masks", "meta.json"]  # no COCO, no class folders
    meta = json.loads((few / "meta.json").read_text())
    assert meta["name"] == "shapes_small" and meta["classes"] == ["foreground"]
    assert meta["spec"]["binary"] is True and meta["spec"]["max_size"] == 10


def test_foreground_is_a_small_share(few: Path) -> None:
    share = float(np.concatenate([labels_of(few, s).ravel() for s in ("train", "val", "test")]).mean())
    assert 0.01 <= share <= 0.035, share


def test_objects_are_small_and_few() -> None:
    """Each shape's visible mask: 1-3 per scene, extents within 4-10 px (a square's axis-aligned box reaches
    x sqrt(2) when rotated, +1 px of rasterisation), never empty."""
    rng = np.random.default_rng(0)
    extents, counts = [], []
    for _ in range(200):
        n = int(rng.integers(SPEC.min_objects, SPEC.max_objects + 1))
        _, objects = render_scene(rng, SPEC, n, (SPEC.min_size, SPEC.max_size))
        counts.append(len(objects))
        for _, m in objects:
            ys, xs = np.nonzero(m)
            assert len(ys) > 0
            extents.append(max(ys.max() - ys.min(), xs.max() - xs.min()) + 1)
    assert min(counts) >= 1 and max(counts) <= 3
    assert max(extents) <= math.ceil(SPEC.max_size * math.sqrt(2)) + 1, max(extents)
    assert 5 <= float(np.median(extents)) <= 10, np.median(extents)


def test_shapes_spec_and_meta_unchanged(project: Path) -> None:
    """The parametrisation left shapes as pinned: its spec is the default, and meta.json records the same keys
    (fields added later are left out at their defaults), so regenerating shapes reproduces its pin."""
    assert SPECS["shapes"] == ShapesSpec()
    pinned = json.loads((project / "datasets" / "shapes" / "meta.json").read_text())
    assert json.loads(json.dumps(recorded_spec(ShapesSpec()))) == pinned["spec"]


def test_refuses_binary_with_other_views(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="masks view only"):
        generate(tmp_path / "x", replace(SPEC, singles=(3, 1, 1)))


def test_generate_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bench.cli.data_cmd import app

    out = tmp_path / "gen"
    bad = CliRunner().invoke(app, ["generate", "shapes_small", "--source", "x.whl", "--out", str(out)])
    assert bad.exit_code != 0 and "--source does not apply to shapes_small" in bad.output
    unknown = CliRunner().invoke(app, ["generate", "nope", "--out", str(out)])
    assert unknown.exit_code != 0 and "`shapes_small`" in unknown.output


def test_pinned_version(project: Path) -> None:
    """The pinned data (pulled from the local remote when missing) is what SPECS draws: its meta.json is
    this spec's, and its foreground share is the one its config states."""
    pin = read_pin(ROOT / "datasets.dvc", "datasets/shapes_small", ROOT)
    ensure(ROOT, pin)
    root = ROOT / pin.path
    assert json.loads((root / "meta.json").read_text())["spec"] == json.loads(json.dumps(recorded_spec(SPEC)))
    share = float(np.concatenate([labels_of(root, s).ravel() for s in ("train", "val", "test")]).mean())
    assert round(share, 4) == 0.0235, share
    assert [len(labels_of(root, s)) for s in ("train", "val", "test")] == [500, 100, 100]  # shapes' sizes


def test_dvc_pull_into_empty_checkout(project: Path, tmp_path: Path) -> None:
    """A fresh checkout without data: `bench data pull shapes_small` fetches exactly that pinned output from
    the committed local remote (a fresh DVC cache), and leaves shapes alone."""
    proj = copy_project(project, tmp_path / "fresh", with_data=False)
    env = {**os.environ, "BENCH_ROOT": str(proj), "BENCH_DVC_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([BENCH, "data", "pull", "shapes_small"], cwd=proj, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr + out.stdout
    pin = read_pin(proj / "datasets.dvc", "datasets/shapes_small", proj)
    assert dir_md5(proj / "datasets" / "shapes_small") == pin.md5
    assert not (proj / "datasets" / "shapes").exists()
