"""The ``crowded`` split of shapes: its own RNG stream, crowded scenes, and the pinned version's counts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench.datasets.formats import load_coco, load_masks
from bench.datasets.shapes import CLASSES, ShapesSpec, generate
from bench.metrics.crowding import cell_occupancy
from bench.metrics.detection import xywh_to_xyxy

SMALL = ShapesSpec(scenes=(3, 2, 2), singles=(3, 3, 3), crowded=6)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def occupancy_per_object(gt: dict) -> np.ndarray:
    """Objects per 7x7 cell of every annotation (``bench.metrics.crowding``), image by image."""
    by_image: dict[int, list[list[float]]] = {}
    for a in gt["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a["bbox"])
    sizes = {im["id"]: (im["width"], im["height"]) for im in gt["images"]}
    return np.concatenate([cell_occupancy(xywh_to_xyxy(np.array(b)), *sizes[i], 7) for i, b in by_image.items()])


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("crowded") / "shapes", SMALL)


def test_other_splits_do_not_depend_on_it(small: Path, tmp_path: Path) -> None:
    """Adding the split (or drawing more of it) leaves every other file byte-identical, and the split
    itself does not depend on how many scenes the other splits hold: it has its own RNG stream."""
    without = files(generate(tmp_path / "without", replace(SMALL, crowded=0)))
    with_it = files(small)
    crowded = {k for k in with_it if "crowded" in k}
    assert crowded and not any("crowded" in k for k in without)
    assert {k: v for k, v in with_it.items() if k not in crowded and k != "meta.json"} == {
        k: v for k, v in without.items() if k != "meta.json"
    }
    more_train = files(generate(tmp_path / "more", replace(SMALL, scenes=(5, 2, 2))))
    assert {k: more_train[k] for k in crowded} == {k: with_it[k] for k in crowded}


def test_crowded_scenes_are_small_many_and_share_cells(small: Path) -> None:
    split = load_coco(small, "crowded", list(CLASSES))
    gt = split.gt
    assert len(gt["images"]) == SMALL.crowded
    per_image = np.bincount([a["image_id"] for a in gt["annotations"]], minlength=SMALL.crowded + 1)[1:]
    lo, hi = SMALL.crowded_objects
    assert (per_image <= hi).all() and per_image.mean() >= lo  # a shape that finds no room is left out
    # Visible extents: at most the largest shape's (a rotated square's diagonal, max_size * sqrt 2, plus the
    # pixels its outline touches), at least a few pixels (an occluded shape keeps min_visible of its own).
    sides = [max(a["bbox"][2:]) for a in gt["annotations"]]
    assert min(sides) >= 4 and max(sides) <= SMALL.crowded_max_size * 2**0.5 + 2
    assert (occupancy_per_object(gt) >= 2).mean() > 0.2  # what the split is for
    assert len(load_masks(small, "crowded", list(CLASSES)).masks) == SMALL.crowded
    meta = json.loads((small / "meta.json").read_text())
    assert meta["extra_splits"] == ["crowded"] and meta["spec"]["crowded_objects"] == [7, 12]


def test_pinned_crowded_split_matches_its_documentation(project: Path) -> None:
    """The counts quoted in ShapesSpec's comment, on the DVC-pinned data."""
    gt = json.loads((project / "datasets" / "shapes" / "annotations" / "crowded.json").read_text())
    assert len(gt["images"]) == ShapesSpec().crowded == 200
    bins = np.bincount(np.minimum(occupancy_per_object(gt), 3), minlength=4)[1:]
    assert bins.tolist() == [1017, 540, 96]


def test_no_trial_reads_it() -> None:
    """The shapes dataset config maps bench's train/val/test to the three ordinary splits only."""
    from bench.config.catalog import Catalog

    ds = Catalog(Path(__file__).resolve().parents[2] / "configs").dataset("shapes")
    assert ds.splits == {"train": "train", "val": "val", "test": "test"}
