"""The shapes generator: deterministic, and its three views agree with each other."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from bench.datasets.formats import load_coco, load_imagefolder, load_masks
from bench.datasets.shapes import CLASSES, ShapesSpec, generate

SMALL = ShapesSpec(scenes=(6, 3, 3), singles=(6, 3, 3), crowded=2)  # the crowded split: test_shapes_crowded.py


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("shapes") / "shapes", SMALL)


def test_deterministic(tiny: Path, tmp_path: Path) -> None:
    again = generate(tmp_path / "again", SMALL)
    for rel in ("images/train/train_00003.png", "masks/val/val_00001.png", "annotations/test.json"):
        assert (tiny / rel).read_bytes() == (again / rel).read_bytes()


def test_views_are_consistent(tiny: Path) -> None:
    split = load_coco(tiny, "train", list(CLASSES))
    masks = load_masks(tiny, "train", list(CLASSES))
    assert len(split.gt["images"]) == len(masks.images) == SMALL.scenes[0]
    for info, label_path in zip(split.gt["images"], masks.masks, strict=True):
        label = np.asarray(Image.open(label_path))
        anns = [a for a in split.gt["annotations"] if a["image_id"] == info["id"]]
        assert 1 <= len(anns) <= SMALL.max_objects
        union = np.zeros_like(label)
        for a in anns:
            m = mask_utils.decode(a["segmentation"]).astype(bool)
            assert a["area"] == m.sum() > 0
            ys, xs = np.nonzero(m)
            assert a["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert (label[m] == a["category_id"]).all()  # semantic map agrees with instance masks
            union |= m
        assert ((label > 0) == union).all()


def test_classification_view(tiny: Path) -> None:
    rec = load_imagefolder(tiny / "classification", "val", list(CLASSES))
    assert len(rec.paths) == SMALL.singles[1]
    assert sorted(set(rec.labels)) == [0, 1, 2]
    assert Image.open(rec.paths[0]).size == (SMALL.single_size, SMALL.single_size)


def test_refuses_to_overwrite(tiny: Path) -> None:
    with pytest.raises(FileExistsError, match="not empty"):
        generate(tiny, SMALL)


def test_coco_bad_input_names_record(tmp_path: Path, tiny: Path) -> None:
    gt = json.loads((tiny / "annotations" / "train.json").read_text())
    del gt["annotations"][1]["area"]
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "train.json").write_text(json.dumps(gt))
    with pytest.raises(ValueError, match=r"train.json: annotation #1 \(id=2\) lacks \['area'\]"):
        load_coco(tmp_path, "train", list(CLASSES))


def test_missing_label_map_names_file(tmp_path: Path, tiny: Path) -> None:
    import shutil

    shutil.copytree(tiny / "images", tmp_path / "images")
    shutil.copytree(tiny / "masks", tmp_path / "masks")
    (tmp_path / "masks" / "val" / "val_00002.png").unlink()
    with pytest.raises(ValueError, match=r"val_00002.png: label map missing"):
        load_masks(tmp_path, "val", list(CLASSES))
