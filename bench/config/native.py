"""A dataset's native image size, measured from its first training image when its YAML omits it."""

from __future__ import annotations

import json
from pathlib import Path

from bench.config.schema import DatasetConfig

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _first_image(folder: Path) -> Path | None:
    """The first image file under ``folder`` in sorted order (recursively), or None."""
    if not folder.is_dir():
        return None
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            return path
    return None


def probe_image_size(dataset: DatasetConfig, task: str, project: Path | None = None) -> int | None:
    """The larger side (px) of the first training image of ``dataset``'s ``task`` view, or None when the
    data is not on disk.  COCO views read the annotation file's first image record, VOC views the first
    listed image's XML <size>."""
    from bench.paths import project_root

    root = Path(dataset.root)
    if not root.is_absolute():
        try:
            root = (project or project_root()) / root
        except FileNotFoundError:
            return None
    view = dataset.views[task]  # type: ignore[index]
    split = dataset.splits.get("train", "train")
    base = root / view.path
    if view.format == "voc":
        return _voc_size(base, split)
    if view.format == "coco":
        from bench.datasets.formats import COCO_ANNOTATIONS, split_path

        ann = base / split_path(view.annotations or COCO_ANNOTATIONS, split)
        if not ann.is_file():
            return None
        images = json.loads(ann.read_text()).get("images") or []
        if images and "width" in images[0] and "height" in images[0]:
            return int(max(images[0]["width"], images[0]["height"]))
        first = base / split_path(view.images or ".", split) / images[0]["file_name"] if images else None
    elif view.format == "masks":
        first = _first_image(base / "images" / split)
    else:
        first = _first_image(base / split)
    if first is None or not first.is_file():
        return None
    from bench.datasets.formats import image_size

    return int(max(image_size(first)))


def _voc_size(base: Path, split: str) -> int | None:
    """The larger side of a VOC view's first listed image: its XML ``<size>``, else the image itself."""
    from bench.datasets.formats import (
        find_voc_image,
        parse_voc_xml,
        read_split_list,
        voc_image_size,
    )

    listing = base / "ImageSets" / "Main" / f"{split}.txt"
    if not listing.is_file():
        return None  # not on disk: the caller says which key to add; a malformed file raises below
    first = read_split_list(listing)[0]
    xml = base / "Annotations" / f"{first}.xml"
    record = parse_voc_xml(xml, None)
    if record.width and record.height:
        return max(record.width, record.height)
    return max(voc_image_size(find_voc_image(base / "JPEGImages", record, first, xml), record, xml))
