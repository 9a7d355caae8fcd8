"""DVC pinning: one pin per dataset, our md5 is DVC's, modified data is refused with the fix, pull restores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.config.catalog import Catalog
from bench.datasets.versioning import DataVersionError, dir_md5, read_pin, read_pins, verify
from tests.conftest import copy_project

ROOT = Path(__file__).resolve().parents[2]
BENCH = str(Path(sys.executable).with_name("bench"))


def shapes_pin(project: Path):  # noqa: ANN201 - Pin
    return read_pin(project / "datasets.dvc", "datasets/shapes", project)


def test_each_dataset_yaml_names_its_own_pin() -> None:
    pins = {p.path: p for p in read_pins(ROOT / "datasets.dvc")}
    assert set(pins) >= {"datasets/shapes", "datasets/mnist", "datasets/shapes_small"}
    cat = Catalog(ROOT / "configs")
    for name in ("shapes", "mnist", "shapes_small"):
        ds = cat.dataset(name)
        assert read_pin(ROOT / ds.dvc_file, ds.root, ROOT) == pins[f"datasets/{name}"]
    # absolute and ./-prefixed roots name the same output
    assert read_pin(ROOT / "datasets.dvc", ROOT / "datasets" / "mnist", ROOT) == pins["datasets/mnist"]
    assert read_pin(ROOT / "datasets.dvc", "./datasets/mnist/", ROOT) == pins["datasets/mnist"]


def test_pin_lookup_errors_name_the_fix() -> None:
    with pytest.raises(DataVersionError,
                       match=r"pins 3 outputs \(datasets/shapes, datasets/mnist, datasets/shapes_small\)"):
        read_pin(ROOT / "datasets.dvc")
    with pytest.raises(DataVersionError, match=r"pins no output at datasets/nope .*dvc add datasets/nope"):
        read_pin(ROOT / "datasets.dvc", "datasets/nope", ROOT)


def test_on_disk_data_matches_pin(project: Path) -> None:
    pin = shapes_pin(project)
    assert dir_md5(project / pin.path) == pin.md5
    assert verify(project, pin) == "md5:" + pin.md5.removesuffix(".dir")


def test_modified_file_is_refused_with_fix(project: Path, tmp_path: Path) -> None:
    proj = copy_project(project, tmp_path / "p", with_data=True)
    pin = shapes_pin(proj)
    assert verify(proj, pin) == pin.version  # fills the stat cache: the edit below must not hide behind it
    victim = proj / "datasets" / "shapes" / "masks" / "val" / "val_00007.png"
    victim.write_bytes(victim.read_bytes() + b"\0")
    with pytest.raises(DataVersionError) as err:
        verify(proj, pin)
    msg = str(err.value)
    assert "does not match datasets.dvc" in msg
    assert "bench data pull shapes --force" in msg
    assert "dvc add datasets/shapes" in msg


def test_same_size_edit_with_restored_mtime_is_caught(project: Path, tmp_path: Path) -> None:
    """The stat cache keys on ctime too, which `touch`/`os.utime` cannot put back."""
    proj = copy_project(project, tmp_path / "p", with_data=True)
    pin = shapes_pin(proj)
    verify(proj, pin)
    victim = proj / "datasets" / "shapes" / "meta.json"
    st = victim.stat()
    text = victim.read_text()
    victim.write_text(text.replace("shapes", "shapez", 1))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(DataVersionError, match="modified: datasets/shapes/meta.json"):
        verify(proj, pin)


def test_dvc_pull_into_empty_checkout(project: Path, tmp_path: Path) -> None:
    """(c) a fresh checkout without data: `bench data pull shapes` restores exactly that pinned dataset.

    Only shapes is pulled: each dataset has its own pin, and fetching MNIST's 70k files here would
    cost minutes.  The other datasets are reported as not pulled, which is not an error.
    """
    proj = copy_project(project, tmp_path / "fresh", with_data=False)
    env = {**os.environ, "BENCH_ROOT": str(proj), "BENCH_DVC_CACHE": str(tmp_path / "cache")}

    def bench(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([BENCH, "data", *args], cwd=proj, env=env, capture_output=True, text=True)

    out = bench("pull", "shapes")
    assert out.returncode == 0, out.stderr + out.stdout
    pin = shapes_pin(proj)
    assert dir_md5(proj / "datasets" / "shapes") == pin.md5
    assert not (proj / "datasets" / "mnist").exists()  # the other pin was not touched
    status = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "datasets/shapes"], cwd=proj, capture_output=True, text=True
    )
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout
    # `bench data status` agrees, reports mnist as not pulled; then a modification flips it to exit 1
    ok = bench("status")
    assert ok.returncode == 0 and "shapes" in ok.stdout and "clean" in ok.stdout, ok.stdout + ok.stderr
    assert "mnist" in ok.stdout and "not pulled" in ok.stdout
    assert bench("status", "mnist").returncode == 1  # a dataset asked for by name must be there
    (proj / "datasets" / "shapes" / "meta.json").write_text("{}")
    bad = bench("status", "shapes")
    assert bad.returncode == 1 and "bench data pull shapes --force" in bad.stdout
    fixed = bench("pull", "shapes", "--force")
    assert fixed.returncode == 0, fixed.stderr
    assert dir_md5(proj / "datasets" / "shapes") == pin.md5


def test_pin_in_a_nested_dvc_file(tmp_path: Path) -> None:
    """`dvc add datasets/mine` writes datasets/mine.dvc with a path relative to datasets/."""
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "mine.dvc").write_text("outs:\n- md5: abc.dir\n  path: mine\n")
    pin = read_pin(tmp_path / "datasets" / "mine.dvc", "datasets/mine", tmp_path)
    assert (pin.path, pin.md5) == ("datasets/mine", "abc.dir")
    assert read_pin(tmp_path / "datasets" / "mine.dvc", project=tmp_path) == pin
