"""``shapes``: the embedded procedural dataset.

Small RGB scenes on a textured, noisy background with 1-4 shapes (circle, square, triangle) of
varied size, colour and overlap.  One generation writes three views of the same data:

* ``images/<split>/*.png`` + ``annotations/<split>.json``: COCO instances (boxes, RLE instance
  masks of the *visible* pixels, ``area`` = visible pixel count, ``iscrowd`` = 0);
* ``masks/<split>/*.png``: semantic label maps (0 = background, k = class k);
* ``classification/<split>/<class>/*.png``: single-object images in class folders.

Besides train/val/test, an extra scene split, ``crowded``, holds many small shapes in clusters, so that
several object centres share a cell of a 7x7 grid (a cell is ~9 px at 64 px): the crowded-scene test
of YOLO v1, which predicts one object per cell (``bench.metrics.crowding``,
``benchmarks/yolo_crowding.py``).  No task trains or selects on it: the dataset configs map bench's
train/val/test to the three ordinary splits only.  It is drawn from its own RNG stream after the
others, so adding it left every file of those splits byte-identical.

The same generator, parametrised (``SPECS``), writes ``shapes_small``: a binary foreground/background
view with 1-3 small shapes (4-10 px) per 64 px scene, the class-imbalance case (foreground ~2% of the
pixels): masks only (``binary``: every shape is label 1), no COCO or classification view.

Each dataset is versioned with DVC (its own output of ``datasets.dvc``); regenerate only on purpose, with
``bench data generate NAME``, then re-pin it (``bench data generate --help``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES: tuple[str, ...] = ("circle", "square", "triangle")


@dataclass(frozen=True)
class ShapesSpec:
    """Generation parameters (recorded in ``meta.json``).  The defaults are ``shapes``; changing one of
    them changes the pinned data."""

    name: str = "shapes"
    image_size: int = 64
    scenes: tuple[int, int, int] = (500, 100, 100)  # train, val, test
    # Single-object images are smaller and more numerous: a CNN from random init needs a few
    # thousand examples to learn shape rather than colour (600 at 64 px gave ~50% top-1).
    singles: tuple[int, int, int] = (3000, 300, 300)
    single_size: int = 32
    single_min: int = 10
    single_max: int = 28
    min_size: int = 12
    max_size: int = 30
    min_objects: int = 1
    max_objects: int = 4
    # Binary view: every shape is label 1 (``BINARY_CLASSES``) in the semantic masks, and only the masks
    # view is written (the COCO annotations and the class folders need the shape classes).
    binary: bool = False
    noise_sigma: float = 8.0
    min_visible: float = 0.6  # an occluded shape keeps at least this fraction of its pixels
    seed: int = 20261125
    # The extra ``crowded`` split: 7-12 shapes of 12-18 px per scene (the small end of the training
    # range, whose visible extents have p5 14 px, median 22 px: a detector trained on train should find
    # them when alone), their centres drawn around 2-3 cluster centres with a 3 px spread.  A shape that
    # finds no room under ``min_visible`` is left out.  Measured on a 7x7 grid, 200 scenes (objects
    # alone in their cell / sharing it with one other / with two or more): 8-16 px at 4 px spread gave
    # 1116 / 546 / 125 (but visible extents median 12 px, below the training range); 12-18 px at 4 px,
    # 1270 / 450 / 52; these settings, the ones pinned: 1017 / 540 / 96 (8.3 objects per scene).
    # Uniform centres (as in train/val/test) share a cell for only 9% / 0.3% of the objects.
    crowded: int = 200
    crowded_objects: tuple[int, int] = (7, 12)
    crowded_min_size: int = 12
    crowded_max_size: int = 18
    crowded_clusters: tuple[int, int] = (2, 3)
    crowded_spread: float = 3.0  # px: standard deviation of an object centre around its cluster centre
    # Its RNG is ``default_rng([seed, crowded_stream])``, independent of the train/val/test stream.
    crowded_stream: int = 1


#: The one class of a ``binary`` dataset's masks (label 1; 0 is background).
BINARY_CLASSES: tuple[str, ...] = ("foreground",)

SPLITS = ("train", "val", "test")
#: Scene splits written besides ``SPLITS`` (COCO + semantic masks, no classification view).
EXTRA_SPLITS = ("crowded",)


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Textured background: colour gradient + oriented stripes, ``[H, W, 3]`` float32 in [0, 255]."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    c0, c1 = rng.uniform(30, 225, 3), rng.uniform(30, 225, 3)
    angle = rng.uniform(0, math.pi)
    t = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
    img = c0 * (1 - t) + c1 * t
    freq, phase = rng.uniform(3, 10), rng.uniform(0, 2 * math.pi)
    theta = rng.uniform(0, math.pi)
    stripes = np.sin(2 * math.pi * freq * (np.cos(theta) * xx + np.sin(theta) * yy) + phase)
    return (img + rng.uniform(5, 20) * stripes[..., None]).astype(np.float32)


def shape_mask(
    rng: np.random.Generator, cls: str, size: int, extent: int, centre: tuple[float, float] | None = None
) -> np.ndarray:
    """Binary mask ``[H, W] bool`` of one shape whose bounding extent is about ``extent`` px.

    ``centre``: ``(x, y)`` px, moved inside the image by at least the radius; None draws it uniformly.
    """
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    r = extent / 2
    if centre is None:
        cx = rng.uniform(r, size - r)
        cy = rng.uniform(r, size - r)
    else:
        cx, cy = (min(max(c, r), size - r) for c in centre)
    if cls == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
    else:
        n = 4 if cls == "square" else 3
        # A square's corners are at radius r*sqrt(2) of its side/2; scale so extents compare.
        rad = r * (math.sqrt(2) if n == 4 else 1.15)
        rot = rng.uniform(0, 2 * math.pi / n)
        pts = [
            (cx + rad * math.cos(rot + 2 * math.pi * k / n), cy + rad * math.sin(rot + 2 * math.pi * k / n))
            for k in range(n)
        ]
        draw.polygon(pts, fill=1)
    return np.asarray(canvas, dtype=bool)


def contrasting_colour(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """A colour that differs from the mean of ``under`` ``[N, 3]`` by at least 80 in some channel."""
    mean = under.mean(axis=0) if len(under) else np.full(3, 128.0)
    for _ in range(100):
        col = rng.uniform(0, 255, 3)
        if np.abs(col - mean).max() >= 80:
            return col
    return 255.0 - mean


def render_scene(
    rng: np.random.Generator,
    spec: ShapesSpec,
    n_objects: int,
    sizes: tuple[int, int] | None = None,
    centres: Callable[[], tuple[float, float]] | None = None,
) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """One scene: ``image [H, W, 3] uint8`` and ``[(class_index, visible_mask [H, W] bool), ...]``.

    ``sizes``: extent range in px (default ``spec.min_size, spec.max_size``); ``centres``: draws each
    shape's centre (default: uniform).  A shape that cannot be placed in 30 tries is left out.
    """
    size = spec.image_size
    lo, hi = sizes or (spec.min_size, spec.max_size)
    img = background(rng, size)
    placed: list[tuple[int, np.ndarray]] = []
    for _ in range(n_objects):
        for _attempt in range(30):
            cls = int(rng.integers(len(CLASSES)))
            extent = int(rng.integers(lo, hi + 1))
            mask = shape_mask(rng, CLASSES[cls], size, extent, centres() if centres else None)
            # Occlusion is allowed, but every earlier shape must stay recognisable.
            if all((m & ~mask).sum() >= spec.min_visible * m.sum() for _, m in placed):
                break
        else:
            continue
        img[mask] = contrasting_colour(rng, img[mask])
        placed = [(c, m & ~mask) for c, m in placed] + [(cls, mask)]
    img += rng.normal(0, spec.noise_sigma, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), placed


def crowded_scene(rng: np.random.Generator, spec: ShapesSpec) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """One scene of the ``crowded`` split (same outputs as :func:`render_scene`): many small shapes whose
    centres cluster, so that several fall in one grid cell."""
    n_objects = int(rng.integers(spec.crowded_objects[0], spec.crowded_objects[1] + 1))
    k = int(rng.integers(spec.crowded_clusters[0], spec.crowded_clusters[1] + 1))
    margin = spec.crowded_max_size / 2
    clusters = rng.uniform(margin, spec.image_size - margin, (k, 2))

    def centre() -> tuple[float, float]:
        x, y = clusters[rng.integers(k)] + rng.normal(0.0, spec.crowded_spread, 2)
        return float(x), float(y)

    return render_scene(rng, spec, n_objects, (spec.crowded_min_size, spec.crowded_max_size), centre)


def coco_annotation(ann_id: int, image_id: int, cls: int, mask: np.ndarray) -> dict:
    """COCO annotation for a visible mask: bbox ``[x, y, w, h]``, RLE segmentation, area = pixels."""
    from pycocotools import mask as mask_utils

    ys, xs = np.nonzero(mask)
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    x0, y0 = int(xs.min()), int(ys.min())
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": cls + 1,
        "bbox": [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1],
        "area": int(mask.sum()),
        "iscrowd": 0,
        "segmentation": rle,
    }


def write_scenes(
    root: Path, split: str, count: int, spec: ShapesSpec, rng: np.random.Generator, crowded: bool = False
) -> None:
    """Scenes of one split: images, semantic masks and (unless ``spec.binary``) the COCO annotation file.

    ``crowded``: :func:`crowded_scene` instead of ``spec.min_objects`` to ``spec.max_objects`` uniformly
    placed shapes.  ``spec.binary``: every shape is label 1 in the masks.
    """
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "masks" / split).mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(count):
        if crowded:
            img, objects = crowded_scene(rng, spec)
        else:
            img, objects = render_scene(rng, spec, int(rng.integers(spec.min_objects, spec.max_objects + 1)))
        name = f"{split}_{i:05d}.png"
        Image.fromarray(img).save(root / "images" / split / name)
        label = np.zeros(img.shape[:2], np.uint8)
        for cls, m in objects:
            label[m] = 1 if spec.binary else cls + 1
        Image.fromarray(label).save(root / "masks" / split / name)
        if spec.binary:
            continue
        image_id = i + 1
        images.append({"id": image_id, "file_name": f"images/{split}/{name}", "width": img.shape[1],
                       "height": img.shape[0]})
        for cls, m in objects:
            anns.append(coco_annotation(len(anns) + 1, image_id, cls, m))
    if spec.binary:
        return
    coco = {
        "info": {"description": f"shapes {split}", "version": "1"},
        "images": images,
        "annotations": anns,
        "categories": [{"id": k + 1, "name": n, "supercategory": "shape"} for k, n in enumerate(CLASSES)],
    }
    (root / "annotations").mkdir(exist_ok=True)
    (root / "annotations" / f"{split}.json").write_text(json.dumps(coco, separators=(",", ":")))


def write_singles(root: Path, split: str, count: int, spec: ShapesSpec, rng: np.random.Generator) -> None:
    """Single-object images of one split in ``classification/<split>/<class>/``, balanced classes."""
    for cls in CLASSES:
        (root / "classification" / split / cls).mkdir(parents=True, exist_ok=True)
    size = spec.single_size
    for i in range(count):
        cls = i % len(CLASSES)
        img = background(rng, size)
        extent = int(rng.integers(spec.single_min, spec.single_max + 1))
        mask = shape_mask(rng, CLASSES[cls], size, extent)
        img[mask] = contrasting_colour(rng, img[mask])
        img = np.clip(img + rng.normal(0, spec.noise_sigma, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / "classification" / split / CLASSES[cls] / f"{split}_{i:05d}.png")


#: Spec fields added after ``shapes`` was pinned (``name`` is meta.json's own key).
_LATER_FIELDS = ("name", "min_objects", "binary")


def recorded_spec(spec: ShapesSpec) -> dict:
    """``spec`` as ``meta.json`` records it: every field, except that fields added after ``shapes`` was pinned
    are left out while they hold their defaults, so that regenerating ``shapes`` stays byte-identical to its pin."""
    default = ShapesSpec()
    return {k: v for k, v in asdict(spec).items()
            if k != "name" and (k not in _LATER_FIELDS or v != getattr(default, k))}


def generate(root: Path, spec: ShapesSpec = ShapesSpec()) -> Path:
    """Write the whole dataset under ``root`` (which must be empty or absent)."""
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty; remove it first (regeneration is deliberate)")
    if spec.binary and (any(spec.singles) or spec.crowded):
        raise ValueError("a binary shapes dataset has the masks view only: set singles to (0, 0, 0) and crowded to 0")
    if not 1 <= spec.min_objects <= spec.max_objects:
        raise ValueError(f"need 1 <= min_objects <= max_objects, got {spec.min_objects}, {spec.max_objects}")
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    for split, n_scene, n_single in zip(SPLITS, spec.scenes, spec.singles, strict=True):
        write_scenes(root, split, n_scene, spec, rng)
        if n_single:
            write_singles(root, split, n_single, spec, rng)
    # Last and on its own stream: the ordinary splits do not depend on whether or how it is drawn.
    if spec.crowded:
        crowded_rng = np.random.default_rng([spec.seed, spec.crowded_stream])
        write_scenes(root, "crowded", spec.crowded, spec, crowded_rng, crowded=True)
    extra = list(EXTRA_SPLITS) if spec.crowded else []
    classes = BINARY_CLASSES if spec.binary else CLASSES
    meta = {"name": spec.name, "classes": list(classes), "extra_splits": extra, "spec": recorded_spec(spec)}
    (root / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return root


#: The generated datasets (``bench data generate NAME``), each pinned by its own output of ``datasets.dvc``.
SPECS: dict[str, ShapesSpec] = {
    "shapes": ShapesSpec(),
    # The class-imbalance case: 1-3 shapes of 4-10 px (extent) on shapes' backgrounds, one class
    # `foreground`; scene counts as shapes' (500/100/100).  Measured on the pinned data: foreground is
    # FG_SHARE of the pixels.  Its own seed: no scene repeats one of shapes'.
    "shapes_small": ShapesSpec(
        name="shapes_small", singles=(0, 0, 0), min_size=4, max_size=10, min_objects=1, max_objects=3,
        binary=True, crowded=0, seed=20261202,
    ),
}
