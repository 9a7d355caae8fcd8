"""What `ray job submit --working-dir .` packages: .gitignore and .rayignore as Ray reads them.

`ray job submit` hashes the working dir twice (once for the package's name, once when it uploads), so
a folder created between the two passes makes the job ask for a package that was never uploaded
("Failed to download runtime_env file package").  The folders bench and its tests create while they run
must therefore be invisible to the hash: not only their files, the folders themselves.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Created at run time by trials, the results store, MLflow, the caches and the tests.
RUNTIME_FOLDERS = ("runs/x@shapes#0", "results", "mlruns/0", "mlartifacts/1", ".bench-cache/anchors", "build",
                   ".pytest_cache/v", "reports/new_run", "datasets/shapes/images", "bench/__pycache__")


@pytest.fixture
def mini_project(tmp_path: Path) -> Path:
    """The ignore files and a few tracked files, with none of the runtime folders present.  ``datasets/`` is
    there, as after the first pull (it holds per-folder pins that travel, so the folder itself cannot be
    ignored)."""
    for name in (".gitignore", ".rayignore", "pyproject.toml", "datasets.dvc"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "datasets").mkdir()
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "__init__.py").write_text("")
    return tmp_path


def package_uri(folder: Path) -> str:
    from ray._private import ray_constants
    from ray._private.runtime_env.packaging import get_uri_for_directory

    logging.getLogger("ray").setLevel(logging.WARNING)  # one INFO line per ignore file otherwise
    return get_uri_for_directory(str(folder), include_gitignore=True,
                                 excludes=list(ray_constants.get_runtime_env_default_excludes()))


@pytest.mark.parametrize("folder", RUNTIME_FOLDERS)
def test_runtime_folders_do_not_change_the_package(mini_project: Path, folder: str) -> None:
    before = package_uri(mini_project)
    (mini_project / folder).mkdir(parents=True)
    (mini_project / folder / "file.bin").write_bytes(b"written while the job is packaged")
    assert package_uri(mini_project) == before, f"creating {folder}/ changes the job package's hash"


def test_a_source_change_does_change_the_package(mini_project: Path) -> None:
    before = package_uri(mini_project)
    (mini_project / "bench" / "new_module.py").write_text("x = 1\n")
    assert package_uri(mini_project) != before
