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
    data is not on disk.  COCO views read the annotation file's first image record."""
    from PIL import Image

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
    if view.format == "coco":
        ann = base / "annotations" / f"{split}.json"
        if not ann.is_file():
            return None
        images = json.loads(ann.read_text()).get("images") or []
        if images and "width" in images[0] and "height" in images[0]:
            return int(max(images[0]["width"], images[0]["height"]))
        first = base / images[0]["file_name"] if images else None
    elif view.format == "masks":
        first = _first_image(base / "images" / split)
    else:
        first = _first_image(base / split)
    if first is None or not first.is_file():
        return None
    with Image.open(first) as img:
        return int(max(img.size))
