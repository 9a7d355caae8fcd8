"""Format adapters: image folders, COCO instances, image + label-map pairs.

Each adapter validates what it reads and names the offending file and record in its errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.datasets import register_format

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")


class DatasetFormatError(ValueError):
    """Files on disk do not follow the declared format."""


@dataclass(frozen=True)
class ClassificationSplit:
    """``paths[i]`` has class index ``labels[i]``."""

    paths: list[Path]
    labels: list[int]


@dataclass(frozen=True)
class DetectionSplit:
    """A COCO instances split: ``gt`` is the COCO dict; ``image_root`` prefixes ``file_name``."""

    gt: dict[str, Any]
    image_root: Path


@dataclass(frozen=True)
class SegmentationSplit:
    """``images[i]`` pairs with the label map ``masks[i]`` (same file name)."""

    images: list[Path]
    masks: list[Path]


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)


@register_format("imagefolder", task=("classification", "verification"), layout="<path>/<split>/<class>/*.png")
def load_imagefolder(view_root: Path, split: str, classes: list[str]) -> ClassificationSplit:
    """Class folders; folder names must equal the dataset's ``classes``."""
    base = view_root / split
    if not base.is_dir():
        raise DatasetFormatError(f"{base}: split folder missing (expected <class>/ subfolders)")
    found = sorted(p.name for p in base.iterdir() if p.is_dir())
    if sorted(classes) != found:
        raise DatasetFormatError(f"{base}: class folders {found} differ from the config's classes {classes}")
    paths, labels = [], []
    for idx, cls in enumerate(classes):
        imgs = _images_in(base / cls)
        paths += imgs
        labels += [idx] * len(imgs)
    if not paths:
        raise DatasetFormatError(f"{base}: no images")
    return ClassificationSplit(paths, labels)


REQUIRED_ANN_KEYS = ("id", "image_id", "category_id", "bbox", "area", "iscrowd")


def check_coco(gt: dict[str, Any], source: Path) -> None:
    """Structural checks on a COCO instances dict; errors name the file and the record."""
    for key in ("images", "annotations", "categories"):
        if key not in gt:
            raise DatasetFormatError(f"{source}: missing top-level key {key!r}")
    image_ids = {img["id"] for img in gt["images"]}
    cat_ids = {c["id"] for c in gt["categories"]}
    for i, ann in enumerate(gt["annotations"]):
        missing = [k for k in REQUIRED_ANN_KEYS if k not in ann]
        if missing:
            raise DatasetFormatError(f"{source}: annotation #{i} (id={ann.get('id')}) lacks {missing}")
        if ann["image_id"] not in image_ids:
            raise DatasetFormatError(f"{source}: annotation id={ann['id']} has unknown image_id {ann['image_id']}")
        if ann["category_id"] not in cat_ids:
            raise DatasetFormatError(
                f"{source}: annotation id={ann['id']} has unknown category_id {ann['category_id']}"
            )
        if ann["bbox"][2] < 0 or ann["bbox"][3] < 0:
            raise DatasetFormatError(f"{source}: annotation id={ann['id']} has a negative width or height")


@register_format("coco", task=("detection", "instance_segmentation"),
                 layout="<path>/annotations/<split>.json (file_name relative to <path>)")
def load_coco(view_root: Path, split: str, classes: list[str]) -> DetectionSplit:
    """COCO instances JSON; category names must equal the dataset's ``classes`` in id order."""
    path = view_root / "annotations" / f"{split}.json"
    try:
        gt = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetFormatError(f"{path}: cannot read COCO annotations ({exc})") from None
    check_coco(gt, path)
    names = [c["name"] for c in sorted(gt["categories"], key=lambda c: c["id"])]
    if names != list(classes):
        raise DatasetFormatError(f"{path}: categories {names} differ from the config's classes {classes}")
    return DetectionSplit(gt, view_root)


@register_format(
    "masks", task="semantic_segmentation", layout="<path>/images/<split>/X.png + <path>/masks/<split>/X.png"
)
def load_masks(view_root: Path, split: str, classes: list[str]) -> SegmentationSplit:
    """Images paired with single-channel label maps of the same file stem (0 = background)."""
    img_dir, mask_dir = view_root / "images" / split, view_root / "masks" / split
    images = _images_in(img_dir) if img_dir.is_dir() else []
    if not images:
        raise DatasetFormatError(f"{img_dir}: no images")
    masks = []
    for img in images:
        mask = mask_dir / (img.stem + ".png")
        if not mask.is_file():
            raise DatasetFormatError(f"{mask}: label map missing for image {img}")
        masks.append(mask)
    return SegmentationSplit(images, masks)
