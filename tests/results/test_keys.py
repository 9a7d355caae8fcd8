"""Trial keys: every input that decides a number changes the key; nothing else does."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.config.catalog import Catalog, effective_trial
from bench.results.keys import code_version, trial_key
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def cfg():  # noqa: ANN201 - TrialConfig
    cat = Catalog(ROOT / "configs")
    return effective_trial(cat.model("resnet18"), cat.dataset("shapes"), cat.profile("smoke"), seed=0)


def test_key_depends_on_each_input(cfg) -> None:  # noqa: ANN001
    base = trial_key(cfg, "md5:aa", "spec/1", "code1")
    assert base == trial_key(cfg, "md5:aa", "spec/1", "code1")  # deterministic
    changed = [
        trial_key(cfg, "md5:bb", "spec/1", "code1"),  # dataset
        trial_key(cfg, "md5:aa", "spec/2", "code1"),  # metric spec
        trial_key(cfg, "md5:aa", "spec/1", "code2"),  # code
        trial_key(cfg.model_copy(update={"seed": 1}), "md5:aa", "spec/1", "code1"),  # seed
        trial_key(cfg.model_copy(update={"profile": "cpu"}), "md5:aa", "spec/1", "code1"),  # profile
        trial_key(cfg.model_copy(update={"train": cfg.train.model_copy(update={"lr": 0.5})}), "md5:aa", "spec/1",
                  "code1"),  # config
    ]
    assert base not in changed and len(set(changed)) == len(changed)


def test_code_version_hashes_sources_not_location_or_docs(tmp_path: Path) -> None:
    a = tmp_path / "a" / "bench"
    a.mkdir(parents=True)
    (a / "x.py").write_text("x = 1\n")
    (a / "README.md").write_text("docs")
    b = tmp_path / "b" / "bench"
    b.mkdir(parents=True)
    (b / "x.py").write_text("x = 1\n")
    (b / "README.md").write_text("other docs")  # not a source: no rerun for a docs change
    (b / "__pycache__").mkdir()
    (b / "__pycache__" / "x.cpython-311.py").write_text("junk")
    assert code_version(a) == code_version(b)
    (b / "x.py").write_text("x = 2\n")
    code_version.cache_clear()
    assert code_version(a) != code_version(b)


def test_code_version_of_the_package_is_stable() -> None:
    code_version.cache_clear()
    assert code_version() == code_version() and len(code_version()) == 16
