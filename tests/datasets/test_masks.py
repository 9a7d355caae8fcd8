"""User segmentation data through a dataset YAML (format `masks`, the template in configs/datasets/templates/):
a binary folder of images and label maps trains and tests without code changes, and a label value that is
not a class is an error naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.conftest import ROOT, copy_project


def write_masks(root: Path, splits: dict[str, int], bad: tuple[str, int, int] | None = None) -> None:
    """``splits[name]`` pairs per split: a bright disc (label 1) on a dark ground, 32 px; 255 on a border strip.
    ``bad = (split, k, value)`` writes ``value`` into one pixel of that label map."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    for split, n in splits.items():
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        for k in range(n):
            cy, cx, r = rng.integers(10, 22), rng.integers(10, 22), rng.integers(4, 8)
            label = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r).astype(np.uint8)
            image = (40 + 170 * label[..., None] + rng.integers(0, 30, (32, 32, 3))).astype(np.uint8)
            label[:, :2] = 255  # an unlabelled strip
            if bad is not None and bad[:2] == (split, k):
                label[0, 5] = bad[2]
            Image.fromarray(image).save(root / "images" / split / f"img{k}.png")
            Image.fromarray(label, mode="L").save(root / "masks" / split / f"img{k}.png")


def masks_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: tuple[str, int, int] | None = None
                  ) -> tuple[Path, str]:
    proj = copy_project(ROOT, tmp_path / "p", with_data=False)
    write_masks(proj / "datasets" / "mine", {"train": 6, "val": 2, "test": 3}, bad)
    data = yaml.safe_load((ROOT / "configs/datasets/templates/masks.yaml").read_text())
    data.update(root="datasets/mine", classes=["disc"])
    data["views"]["semantic_segmentation"]["image_size"] = 32
    (proj / "my_masks.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.chdir(proj)
    return proj, "my_masks.yaml"


def test_a_binary_masks_folder_trains_and_tests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `bench run unet --dataset my_masks.yaml --profile smoke` does, without Ray: the plan and the trial."""
    from bench.config.catalog import Catalog
    from bench.orchestration.driver import plan_run
    from bench.orchestration.trial import RunContext, run_trial

    proj, path = masks_project(tmp_path, monkeypatch)
    plan = plan_run(proj, Catalog(proj / "configs"), "unet", path, "smoke", 0, None)
    (trial,) = plan.trials
    assert trial.config.trial_id == "unet@my_masks#0" and trial.config.train.image_size == 32
    assert trial.dataset_version.startswith("unpinned-md5:")
    result = run_trial(trial.config, RunContext(str(proj), "masks", "sha"), lambda e: None)
    assert result.status == "ok", result.traceback
    assert result.test_images == 3 and result.dataset == "my_masks"
    assert {"dice", "jaccard", "sensitivity", "specificity"} <= set(result.metrics)


def test_a_label_that_is_not_a_class_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.config.catalog import Catalog, resolve_trial
    from bench.tasks import task_impl

    proj, path = masks_project(tmp_path, monkeypatch, bad=("train", 4, 7))
    cat = Catalog(proj / "configs")
    cfg = resolve_trial(cat.model("unet"), cat.dataset(path), cat.profile("smoke"), 0).config
    train = task_impl(cfg.task)(cfg, proj / cfg.dataset.root).dataset("train", train=True)
    for k in range(4):
        train[k]  # noqa: B018 - the good files load
    with pytest.raises(ValueError, match=r"masks/train/img4.png: label values \[7\] are not classes: the dataset's "
                                         r"`classes` list 1 names, so a label map holds 0 \(background\) to 1, or 255"):
        train[4]
