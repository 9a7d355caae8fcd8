"""Torch datasets over the format adapters' split records, and loader construction."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Subset

from bench.datasets.formats import (
    IGNORE_LABEL,
    DatasetFormatError,
    bad_label_values,
    bad_labels_message,
    label_mode_problem,
    mask_size_problem,
    open_image,
)

# Random-init models: a fixed, dataset-agnostic scaling of [0, 1] pixels to roughly unit range.
MEAN, STD = 0.5, 0.25
IGNORE_INDEX = IGNORE_LABEL  # a label-map value that no loss or metric scores (255)


def load_rgb(path: Path, size: int | None = None) -> torch.Tensor:
    """``[3, H, W]`` float in [0, 1]; resized (bilinear) to ``size`` x ``size`` when given."""
    return rgb_tensor(open_image(path), size)


def rgb_tensor(img: Image.Image, size: int | None = None) -> torch.Tensor:
    """A decoded image as ``[3, H, W]`` float in [0, 1]; resized (bilinear) to ``size`` x ``size`` when given."""
    img = img.convert("RGB")
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255.0


def load_labels(path: Path, size: int | None = None) -> torch.Tensor:
    """``[H, W]`` int64 label map; resized with nearest neighbour (labels must not blend)."""
    return label_tensor(open_image(path), path, size)


def label_tensor(img: Image.Image, path: Path, size: int | None = None) -> torch.Tensor:
    """A decoded label map (``path`` names it in errors) as ``[H, W]`` int64; resized with nearest neighbour."""
    problem = label_mode_problem(path, img.mode)
    if problem:
        raise DatasetFormatError(problem)
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.NEAREST)
    return torch.from_numpy(np.asarray(img).astype(np.int64))


# Ranges of the random transforms, after the guide's ImageDataGenerator example
# (rotation_range=20, shear_range=0.2) and the usual CIFAR-style crop (pad 1/8 of the side).
ROTATE_DEG, SHEAR, CROP_PAD, COLOR_SHIFT = 20.0, 0.2, 0.125, 0.1


def _affine(t: torch.Tensor, angle: float, shear: float, label: bool) -> torch.Tensor:
    """Rotate/shear ``t [C, H, W]`` (or a label map ``[H, W]``) about the centre; labels use nearest."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    x = t[None] if label else t
    mode = InterpolationMode.NEAREST if label else InterpolationMode.BILINEAR
    out = TF.affine(x, angle=angle, translate=[0, 0], scale=1.0, shear=[shear, 0.0], interpolation=mode)
    return out[0] if label else out


def _random_crop(x: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Reflect-pad by ``CROP_PAD`` of the side, then crop a random window of the original size."""
    h, w = x.shape[-2:]
    p = max(1, round(CROP_PAD * min(h, w)))
    i, j = (int(v) for v in torch.randint(0, 2 * p + 1, (2,)))
    x = F.pad(x[None], (p, p, p, p), mode="reflect")[0][:, i:i + h, j:j + w]
    if y is not None:
        y = F.pad(y[None, None].float(), (p, p, p, p), mode="reflect")[0, 0][i:i + h, j:j + w].long()
    return x, y


def augment(x: torch.Tensor, y: torch.Tensor | None, ops: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Random label-preserving transforms of ``x [3, H, W]`` and, jointly, a label map ``y [H, W]``.

    ``hflip``/``vflip``: mirror with p=0.5; ``rot90``: a random multiple of 90 degrees;
    ``crop``: random crop of a reflect-padded image (pad 1/8 of the side); ``rotate``: uniform in
    +-20 degrees; ``shear``: shear factor uniform in +-0.2 (x direction); ``color_shift``: add a
    random offset in +-0.1 to each RGB channel (image only, the guide's colour shifting);
    ``channel_shuffle``: permute RGB, image only.
    """
    def both(fn: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        return fn(x), (fn(y) if y is not None else None)

    def uniform(r: float) -> float:
        return float((torch.rand(()) * 2 - 1) * r)

    for op in ops:
        if op == "hflip" and torch.rand(()) < 0.5:
            x, y = both(lambda t: t.flip(-1))
        elif op == "vflip" and torch.rand(()) < 0.5:
            x, y = both(lambda t: t.flip(-2))
        elif op == "rot90":
            k = int(torch.randint(4, ()))
            x, y = both(lambda t, k=k: t.rot90(k, dims=(-2, -1)))
        elif op == "crop":
            x, y = _random_crop(x, y)
        elif op in ("rotate", "shear"):
            angle = uniform(ROTATE_DEG) if op == "rotate" else 0.0
            shear = math.degrees(math.atan(uniform(SHEAR))) if op == "shear" else 0.0
            x = _affine(x, angle, shear, label=False)
            y = _affine(y, angle, shear, label=True) if y is not None else None
        elif op == "color_shift":
            x = (x + (torch.rand(3, 1, 1) * 2 - 1) * COLOR_SHIFT).clamp(0, 1)
        elif op == "channel_shuffle":
            x = x[torch.randperm(3)]
    return x, y


class ClassificationDataset(Dataset):
    """``(image [3, S, S] normalised, label)``; ``augment`` ops applied when training."""

    def __init__(self, paths: Sequence[Path], labels: Sequence[int], size: int, ops: Sequence[str]) -> None:
        self.paths, self.labels, self.size, self.ops = list(paths), list(labels), size, tuple(ops)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x, _ = augment(load_rgb(self.paths[i], self.size), None, self.ops)
        return (x - MEAN) / STD, self.labels[i]


class SegmentationDataset(Dataset):
    """``(image [3, S, S] normalised, labels [S, S])``; ``augment`` ops applied jointly when training.

    With ``num_classes`` (background included) every label map is checked: values ``0 .. num_classes - 1``
    or ``IGNORE_INDEX`` (255), else an error names the file, the values and the fix.
    """

    def __init__(self, images: Sequence[Path], masks: Sequence[Path], size: int, ops: Sequence[str],
                 num_classes: int | None = None, tile: int | None = None) -> None:
        self.images, self.masks, self.size, self.ops = list(images), list(masks), size, tuple(ops)
        self.num_classes = num_classes
        self.tile = tile  # training on large images: a random tile x tile crop of each (after the ops)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = open_image(self.images[i]), open_image(self.masks[i])
        # Both are resized to the input size below, so a label map of another size would be stretched
        # onto its image without a word: refuse it here, naming both files.
        problem = mask_size_problem(self.images[i], image.size, self.masks[i], mask.size)
        if problem:
            raise DatasetFormatError(problem)
        labels = label_tensor(mask, self.masks[i], self.size)
        if self.num_classes is not None:
            check_labels(labels, self.num_classes, self.masks[i])
        x, y = augment(rgb_tensor(image, self.size), labels, self.ops)
        if self.tile is not None and self.tile < self.size:
            top, left = (int(v) for v in torch.randint(0, self.size - self.tile + 1, (2,)))
            x = x[:, top:top + self.tile, left:left + self.tile]
            y = y[top:top + self.tile, left:left + self.tile]  # type: ignore[index]
        return (x - MEAN) / STD, y  # type: ignore[return-value]


def window_starts(size: int, tile: int) -> list[int]:
    """Offsets of sliding windows of ``tile`` px covering ``size`` px with at least a quarter tile of overlap
    (the last window flush with the far edge)."""
    if tile >= size:
        return [0]
    step = max(1, tile - tile // 4)
    starts = list(range(0, size - tile + 1, step))
    return starts if starts[-1] == size - tile else [*starts, size - tile]



def check_labels(labels: torch.Tensor, num_classes: int, path: Path) -> None:
    """Raise naming ``path`` when ``labels`` holds a value that is neither a class (0 = background ..
    ``num_classes - 1``) nor ``IGNORE_INDEX``."""
    bad = bad_label_values(labels.numpy(), num_classes)
    if bad:
        raise DatasetFormatError(bad_labels_message(path, bad, num_classes))


class DetectionDataset(Dataset):
    """``(image [3, H, W] in [0, 1], target)`` with ``boxes [N, 4] xyxy``, ``labels [N]`` in 1..K,
    ``image_id`` and, with ``masks``, ``masks [N, H, W] uint8`` (0/1) decoded from each annotation's
    COCO ``segmentation`` (RLE or polygons).

    Crowd annotations are not training targets (they are handled by the evaluator), nor are VOC
    ``difficult`` ones: py-faster-rcnn (``use_diff=False``) and mmdetection train without them, as the
    papers this zoo reproduces did, and the VOC metrics ignore them.  Category ids map to contiguous
    labels by sorted id.  Detectors resize internally, so images keep their size.
    ``ops``: box- and mask-aware transforms (``bench.engine.detection_augment``), training only.  With
    ``mosaic`` among them, item ``i`` is combined with 3 items drawn with torch's generator (so it follows the
    trial seed and each DataLoader worker's seed; from ``pool`` when set, as ``subsample`` does) first, then
    the other ops apply in order.
    With ``proposals`` (image id -> ``[P, 4]`` float32 xyxy, for proposal-based models) the target
    also holds ``proposals [P, 4]`` in image pixels, added before ``ops``, which map them as boxes.
    """

    def __init__(
        self, gt: dict[str, Any], image_root: Path, masks: bool = False, ops: Sequence[str] = (),
        proposals: Callable[[int], np.ndarray] | None = None,
    ) -> None:
        self.images = self.image_order(gt)
        self.root = image_root
        self.masks, self.ops = masks, tuple(ops)
        self.proposals = proposals
        #: The items mosaic draws its 3 partners from (None: all); ``subsample`` narrows it to its subset.
        self.pool: list[int] | None = None
        self.cat_to_label = {c["id"]: k + 1 for k, c in enumerate(sorted(gt["categories"], key=lambda c: c["id"]))}
        self.anns: dict[int, list[dict[str, Any]]] = {im["id"]: [] for im in self.images}
        for ann in gt["annotations"]:
            if not ann.get("iscrowd", 0) and not ann.get("difficult", 0):
                self.anns[ann["image_id"]].append(ann)

    def __len__(self) -> int:
        return len(self.images)

    @staticmethod
    def image_order(gt: dict[str, Any]) -> list[dict[str, Any]]:
        """The COCO image records in dataset order (by id): position ``i`` is item ``i``."""
        return sorted(gt["images"], key=lambda im: im["id"])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image, target = self.load(i)
        if not self.ops:
            return image, target
        from bench.engine.detection_augment import augment_detection, mosaic

        if "mosaic" in self.ops:
            pool = self.pool if self.pool is not None else range(len(self))
            others = [pool[k] for k in torch.randint(0, len(pool), (3,)).tolist()]
            image, target = mosaic([(image, target), *(self.load(j) for j in others)])
        return augment_detection(image, target, [op for op in self.ops if op != "mosaic"])

    def load(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Item ``i`` as stored (before ``ops``)."""
        info = self.images[i]
        anns = self.anns[info["id"]]
        xywh = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        boxes = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)
        labels = torch.tensor([self.cat_to_label[a["category_id"]] for a in anns], dtype=torch.int64)
        target = {"boxes": boxes, "labels": labels, "image_id": torch.tensor(info["id"])}
        image = load_rgb(self.root / info["file_name"])
        if self.masks:
            target["masks"] = decode_masks(anns, image.shape[1], image.shape[2], info)
        if self.proposals is not None:
            target["proposals"] = torch.from_numpy(self.proposals(info["id"]))
        return image, target


def decode_masks(anns: Sequence[dict[str, Any]], height: int, width: int, image: dict[str, Any]) -> torch.Tensor:
    """``[N, H, W] uint8`` (0/1) from the annotations' COCO ``segmentation`` (polygons or RLE).

    ``image``: the COCO image record, named in errors.  An RLE must be the image's size.
    """
    from faster_coco_eval.core import mask as mask_utils

    out = torch.zeros((len(anns), height, width), dtype=torch.uint8)
    for k, ann in enumerate(anns):
        segm = ann.get("segmentation")
        if not segm:
            raise ValueError(f"image {image.get('file_name')} (id={image['id']}): annotation id={ann.get('id')} "
                             "has no 'segmentation'; instance segmentation needs a mask per object")
        if isinstance(segm, dict) and list(segm.get("size", [])) != [height, width]:
            raise ValueError(f"image {image.get('file_name')} (id={image['id']}): annotation id={ann.get('id')} has "
                             f"an RLE of size {segm.get('size')}, but the image is [{height}, {width}]")
        rle = mask_utils.segmToRle(segm, width, height)
        out[k] = torch.from_numpy(np.ascontiguousarray(mask_utils.decode(rle)))
    return out


def subsample(ds: Dataset, limit: int | None, seed: int) -> Dataset:
    """A fixed random subset of ``limit`` items (the same for every model with the same seed)."""
    n = len(ds)  # type: ignore[arg-type]
    if limit is None or limit >= n:
        return ds
    idx = sorted(np.random.default_rng(seed).choice(n, size=limit, replace=False).tolist())
    if isinstance(ds, DetectionDataset):  # mosaic's partners come from the subset too, not the whole split
        ds.pool = idx
    return Subset(ds, idx)


def list_collate(batch: list[Any]) -> tuple[list[Any], list[Any]]:
    """Detection batches stay lists: images may differ in size and targets in length."""
    return [b[0] for b in batch], [b[1] for b in batch]


def make_loader(
    ds: Dataset, batch_size: int, *, shuffle: bool, seed: int, num_workers: int,
    collate: Callable[[list[Any]], Any] | None = None,
) -> DataLoader:
    """A seeded loader; ``drop_last`` on training keeps BatchNorm away from size-1 batches."""
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(
        ds, batch_size=batch_size, shuffle=shuffle, generator=gen, num_workers=num_workers,
        collate_fn=collate, drop_last=shuffle and len(ds) > batch_size,  # type: ignore[arg-type]
    )
