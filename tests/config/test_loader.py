"""Config validation: unknown keys and wrong types name the file, the key and the choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.config.catalog import Catalog, effective_trial
from bench.config.loader import ConfigError, load
from bench.config.schema import ModelConfig, ProfileConfig
from bench.tasks import TASKS

ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_unknown_key_names_file_key_and_valid_keys(tmp_path: Path) -> None:
    f = write(tmp_path / "m.yaml", "name: unet\ntrain:\n  epoch: 3\n")
    with pytest.raises(ConfigError) as err:
        load(f, ModelConfig)
    msg = str(err.value)
    assert str(f) in msg
    assert "unknown key 'train.epoch'" in msg
    assert "did you mean 'epochs'" in msg
    assert "valid keys:" in msg and "batch_size" in msg


def test_unknown_top_level_key(tmp_path: Path) -> None:
    f = write(tmp_path / "p.yaml", "name: x\ntrian: {}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'trian'; did you mean 'train'\? valid keys: "):
        load(f, ProfileConfig)


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    f = write(tmp_path / "m.yaml", "name: unet\ntrain:\n  epochs: ten\n")
    with pytest.raises(ConfigError) as err:
        load(f, ModelConfig)
    assert f"{f}: key 'train.epochs'" in str(err.value)
    assert "'ten'" in str(err.value)


def test_wrong_literal_lists_choices(tmp_path: Path) -> None:
    f = write(tmp_path / "m.yaml", "name: unet\ntrain:\n  optimizer: adam\n")
    with pytest.raises(ConfigError, match="'sgd', 'adamw' or 'rmsprop'"):
        load(f, ModelConfig)


def test_one_level_include_merges(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", "name: unet\ntrain:\n  epochs: 3\n  lr: 0.5\n")
    f = write(tmp_path / "m.yaml", "include: base.yaml\ntrain:\n  lr: 0.1\n")
    cfg = load(f, ModelConfig)
    assert cfg.train.epochs == 3 and cfg.train.lr == 0.1


def test_nested_include_is_rejected(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "name: x\n")
    write(tmp_path / "b.yaml", "include: a.yaml\n")
    f = write(tmp_path / "c.yaml", "include: b.yaml\n")
    with pytest.raises(ConfigError, match="one level only"):
        load(f, ModelConfig)


def test_every_shipped_config_validates() -> None:
    cat = Catalog(ROOT / "configs")
    for name in cat.model_files:
        model = cat.model(name)
        for prof in cat.profile_files:
            for data in model.datasets:
                trial = effective_trial(model, cat.dataset(data), cat.profile(prof), seed=0)
                assert trial.task in TASKS.names()
    for name in cat.suite_files:
        assert cat.suite(name).models


def test_merge_order_profile_then_model_profile() -> None:
    cat = Catalog(ROOT / "configs")
    smoke = effective_trial(cat.model("unet"), cat.dataset("shapes"), cat.profile("smoke"), seed=3)
    assert smoke.train.epochs == 1  # from the profile
    assert smoke.params["base_channels"] == 8  # the model's own smoke override
    assert smoke.trial_id == "unet@shapes#3"
    assert len(smoke.config_hash()) == 16


def test_unknown_target_suggests() -> None:
    cat = Catalog(ROOT / "configs")
    with pytest.raises(ConfigError, match="did you mean 'resnet18'"):
        cat.resolve_target("resnet19")


def test_target_kinds() -> None:
    cat = Catalog(ROOT / "configs")
    assert [m.name for m in cat.resolve_target("unet")[0]] == ["unet"]
    # A task names every model of that task and of the tasks that also rank on it (instance segmentation).
    from bench.models import MODELS
    from bench.tasks import TASKS

    def ranks_on(config: str) -> tuple[str, ...]:  # a config's builder's task and the tasks it also ranks on
        task = MODELS.get(cat.model(config).builder).meta.task
        return (task, *TASKS.get(task).meta.also_ranks_on)

    ranks_on_detection = {n for n in cat.model_files if "detection" in ranks_on(n)}
    assert {m.name for m in cat.resolve_target("detection")[0]} == ranks_on_detection >= {"faster_rcnn", "hog_detector"}
    assert {m.name for m in cat.resolve_target("all")[0]} >= {"resnet18", "faster_rcnn_fpn", "unet"}


def test_per_dataset_profile_overrides_apply_last() -> None:
    cat = Catalog(ROOT / "configs")
    model = cat.model("resnet18")
    assert model.datasets == ["shapes", "mnist"]
    shapes = effective_trial(model, cat.dataset("shapes"), cat.profile("cpu"), seed=0)
    mnist = effective_trial(model, cat.dataset("mnist"), cat.profile("cpu"), seed=0)
    assert shapes.train.augment == ("hflip", "vflip") and mnist.train.augment == ()
    assert shapes.train.image_size == mnist.train.image_size == 48  # the model's cpu setting
    assert shapes.config_hash() != mnist.config_hash()


def test_task_targets_include_models_ranked_on_the_task() -> None:
    cat = Catalog(ROOT / "configs")
    cls_models = {m.name for m in cat.resolve_target("classification")[0]}
    ver_models = {m.name for m in cat.resolve_target("verification")[0]}
    assert {"siamese_contrastive", "siamese_triplet"} <= ver_models <= cls_models
    assert "resnet18" in cls_models and "resnet18" not in ver_models
