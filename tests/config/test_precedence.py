"""One precedence, and nothing silently ignored: every value a YAML writes takes effect somewhere.

The walk resolves every model under every profile and dataset (and every suite) and checks that each
key written in ``configs/`` wins in at least one trial; a planted override that no profile uses makes
it fail, and makes ``bench run`` refuse to start.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from bench.cli.main import app
from bench.config.catalog import Catalog, config_yaml, parse_overrides, resolve_trial, unused_settings
from bench.config.loader import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CAT = Catalog(ROOT / "configs")


def resolve(model: str, profile: str, dataset: str = "shapes", **kw: object):  # noqa: ANN201 - ResolvedTrial
    return resolve_trial(CAT.model(model), CAT.dataset(dataset), CAT.profile(profile), 0, **kw)  # type: ignore[arg-type]


def test_every_written_value_takes_effect_somewhere() -> None:
    assert unused_settings(CAT) == []


def planted_catalog(tmp_path: Path, model: str, extra: str) -> Catalog:
    """A copy of ``configs/`` with ``extra`` YAML appended to ``models/<model>.yaml``."""
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    f = tmp_path / "configs" / "models" / f"{model}.yaml"
    f.write_text(f.read_text() + extra)
    return Catalog(tmp_path / "configs")


def test_walk_fails_on_an_override_no_profile_uses(tmp_path: Path) -> None:
    # The pattern of the old bug: the gpu section sets the lr itself, so the paper's lr in `reference`
    # never runs anywhere.
    cat = planted_catalog(tmp_path, "vgg16", "")
    text = (tmp_path / "configs/models/vgg16.yaml").read_text().replace(
        "train: {batch_size: 64}", "train: {batch_size: 64, lr: 0.01}")
    (tmp_path / "configs/models/vgg16.yaml").write_text(text)
    problems = unused_settings(cat)
    # The lr, and the batch it is scaled from, are dead: both are named with their file.
    assert [p.split(" is ")[0].split("configs/")[-1] for p in problems] == [
        "models/vgg16.yaml: reference.batch_size", "models/vgg16.yaml: reference.lr"], problems


def test_walk_fails_on_a_dataset_section_for_a_dataset_the_model_never_uses(tmp_path: Path) -> None:
    cat = planted_catalog(tmp_path, "resnet18", "    datasets:\n      cifar10:\n        train: {lr: 0.5}\n")
    problems = unused_settings(cat, ["resnet18"], own_file_only=True)
    assert any("resnet18.yaml: profiles.cpu.datasets.cifar10.train.lr" in p for p in problems), problems


def test_bench_run_refuses_a_planted_override_before_starting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    planted_catalog(tmp_path, "resnet18", "    datasets:\n      cifar10:\n        train: {lr: 0.5}\n")
    monkeypatch.setenv("BENCH_CONFIGS", str(tmp_path / "configs"))
    res = CliRunner().invoke(app, ["run", "resnet18", "--profile", "smoke"])
    assert res.exit_code == 2
    assert "resnet18.yaml: profiles.cpu.datasets.cifar10.train.lr is overridden or unused" in res.output


def test_layers_win_in_the_documented_order() -> None:
    # 2: the profile file; 5: the model's profile section (its include); 8: the command line.
    cpu = resolve("efficientnet_b0", "cpu")
    assert cpu.config.train.amp is False and cpu.sources["train.amp"] == "configs/profiles/cpu.yaml: train.amp"
    assert cpu.config.train.weight_decay == 0.05
    base = "configs/models/base/classification.yaml"
    assert cpu.sources["train.weight_decay"] == f"{base}: profiles.cpu.train.weight_decay"
    assert cpu.config.train.lr == 0.003  # the model file beats its include within the same section
    assert cpu.sources["train.lr"] == "configs/models/efficientnet_b0.yaml: profiles.cpu.train.lr"
    cli = resolve("efficientnet_b0", "cpu", overrides=parse_overrides(["train.weight_decay=0.2"]))
    assert cli.config.train.weight_decay == 0.2 and cli.sources["train.weight_decay"].startswith("command line")
    # 6: per dataset beats the model's profile section.
    assert resolve("resnet18", "cpu").config.train.augment == ("hflip", "vflip")
    assert resolve("resnet18", "cpu", dataset="mnist").config.train.augment == ()
    # 7: the suite's own budget beats the model files.
    suite = CAT.suite("all")
    r = resolve("resnet18", "cpu", suite=suite)
    assert "configs/suites/all.yaml" in r.sources["train.time_limit_s"]


def test_reference_recipe_runs_only_under_reference_profiles_with_linear_scaling() -> None:
    gpu = resolve("efficientnet_b0", "gpu")
    assert gpu.config.recipe == "reference"
    assert gpu.config.train.weight_decay == 1e-5
    assert gpu.sources["train.weight_decay"] == "configs/models/efficientnet_b0.yaml: reference.weight_decay"
    assert gpu.config.train.optimizer == "rmsprop"
    assert gpu.config.train.lr == pytest.approx(0.256 * 128 / 4096)
    assert "linear scaling" in gpu.sources["train.lr"]
    vgg = resolve("vgg16", "gpu").config.train
    assert (vgg.batch_size, vgg.lr) == (64, pytest.approx(0.01 * 64 / 256))
    cpu = resolve("efficientnet_b0", "cpu").config
    assert cpu.recipe == "shared" and cpu.train.optimizer == "adamw"


def test_bench_config_shows_the_weight_decay_that_runs_and_its_file() -> None:
    res = CliRunner().invoke(app, ["config", "efficientnet_b0", "--profile", "gpu"])
    assert res.exit_code == 0, res.output
    assert "weight_decay: 1.0e-05  # configs/models/efficientnet_b0.yaml: reference.weight_decay" in res.output
    assert "lr: 0.008  # configs/models/efficientnet_b0.yaml: reference.lr (0.256 x 128/4096" in res.output


def test_annotated_yaml_is_the_resolved_config() -> None:
    import yaml

    r = resolve("unet", "cpu")
    assert yaml.safe_load(config_yaml(r)) == r.config.model_dump(mode="json")


def test_set_rejects_unknown_keys_and_bad_sections() -> None:
    with pytest.raises(ConfigError, match="did you mean 'time_limit_s'"):
        parse_overrides(["train.time_limit=5"])
    with pytest.raises(ConfigError, match="SECTION one of train, params"):
        parse_overrides(["optim.lr=5"])


VIEW = "{format: coco, path: .}"  # a COCO view that does not state its image size


def write_coco_folder(root: Path, side: int, n: int = 3) -> Path:
    """A COCO detection folder of ``n`` ``side``-px images per split, each with one square box."""
    (root / "annotations").mkdir(parents=True)
    for split in ("train", "val", "test"):
        (root / split).mkdir()
        images, anns = [], []
        for i in range(n):
            name = f"{split}/{i}.png"
            Image.new("RGB", (side, side), (30 * i, 90, 160)).save(root / name)
            images.append({"id": i + 1, "file_name": name, "width": side, "height": side})
            anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [20, 30, 40, 40], "area": 1600,
                         "iscrowd": 0})
        gt = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "box"}]}
        (root / "annotations" / f"{split}.json").write_text(json.dumps(gt))
    return root


def test_a_256px_coco_folder_trains_at_256px_not_the_shapes_size(tmp_path: Path) -> None:
    data = write_coco_folder(tmp_path / "boxes", 256)
    yaml_file = tmp_path / "boxes.yaml"
    # No image_size in the view: it is measured from the data.
    yaml_file.write_text(f"root: {data}\ndvc_file: null\nclasses: [box]\nviews:\n  detection: {VIEW}\n")
    for profile in ("cpu", "smoke", "gpu"):
        res = CliRunner().invoke(app, ["config", "faster_rcnn", "--dataset", str(yaml_file), "--profile", profile])
        assert res.exit_code == 0, res.output
        assert "  image_size: 256  # 256 px native (measured from the first training image of boxes)" in res.output
        assert "native_image_size: 256" in res.output
    cfg = resolve_trial(CAT.model("faster_rcnn"), CAT.dataset(str(yaml_file)), CAT.profile("cpu"), 0).config
    from bench.engine.detection import DetectionTask

    task = DetectionTask(cfg, data)
    image, _ = task.dataset("train", train=True)[0]
    assert tuple(image.shape) == (3, 256, 256)
    assert task.build_model().transform.min_size == (256,)  # the detector does not resize it down


def test_a_dataset_without_size_or_data_says_which_key_to_add(tmp_path: Path) -> None:
    f = tmp_path / "gone.yaml"
    f.write_text(f"root: {tmp_path / 'missing'}\ndvc_file: null\nclasses: [a]\nviews:\n  detection: {VIEW}\n")
    with pytest.raises(ConfigError, match=r"add `views.detection.image_size: <px>`"):
        resolve_trial(CAT.model("faster_rcnn"), CAT.dataset(str(f)), CAT.profile("cpu"), 0)
