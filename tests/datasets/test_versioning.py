"""DVC pinning: our md5 is DVC's, modified data is refused with the fix, pull restores offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.datasets.versioning import DataVersionError, dir_md5, read_pin, verify
from tests.conftest import copy_project

ROOT = Path(__file__).resolve().parents[2]
BENCH = str(Path(sys.executable).with_name("bench"))


def test_on_disk_data_matches_pin(project: Path) -> None:
    pin = read_pin(project / "datasets.dvc")
    assert dir_md5(project / pin.path) == pin.md5
    assert verify(project, pin) == "md5:" + pin.md5.removesuffix(".dir")


def test_modified_file_is_refused_with_fix(project: Path, tmp_path: Path) -> None:
    proj = copy_project(project, tmp_path / "p", with_data=True)
    victim = proj / "datasets" / "shapes" / "masks" / "val" / "val_00007.png"
    victim.write_bytes(victim.read_bytes() + b"\0")
    with pytest.raises(DataVersionError) as err:
        verify(proj, read_pin(proj / "datasets.dvc"))
    msg = str(err.value)
    assert "does not match datasets.dvc" in msg
    assert "bench data pull --force" in msg
    assert "dvc add datasets" in msg


def test_dvc_pull_into_empty_checkout(project: Path, tmp_path: Path) -> None:
    """(c) a fresh checkout without data: `bench data pull` restores exactly the pinned version."""
    proj = copy_project(project, tmp_path / "fresh", with_data=False)
    env = {**os.environ, "BENCH_ROOT": str(proj), "BENCH_DVC_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([BENCH, "data", "pull"], cwd=proj, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr + out.stdout
    pin = read_pin(proj / "datasets.dvc")
    assert dir_md5(proj / "datasets") == pin.md5
    status = subprocess.run([sys.executable, "-m", "dvc", "status"], cwd=proj, capture_output=True, text=True)
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout
    # and `bench data status` agrees; then a modification flips it to exit 1 with the fix
    ok = subprocess.run([BENCH, "data", "status"], cwd=proj, env=env, capture_output=True, text=True)
    assert ok.returncode == 0 and "clean" in ok.stdout
    (proj / "datasets" / "shapes" / "meta.json").write_text("{}")
    bad = subprocess.run([BENCH, "data", "status"], cwd=proj, env=env, capture_output=True, text=True)
    assert bad.returncode == 1 and "bench data pull --force" in bad.stdout
    fixed = subprocess.run([BENCH, "data", "pull", "--force"], cwd=proj, env=env, capture_output=True, text=True)
    assert fixed.returncode == 0, fixed.stderr
    assert dir_md5(proj / "datasets") == pin.md5
