"""``bench data check``: every problem of a dataset in one pass, without training.

The annotation rules are the format adapters' own (``bench.datasets.formats``, called with a
``problems`` list so they collect instead of raising); this module adds what training only meets
lazily, file by file: every image (and label map) exists, is non-empty and decodes fully, a COCO
image record's size is its file's, and a label map is its image's size and holds only class values.
Torch-free (PIL, NumPy), like the adapters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.datasets import DATASETS
from bench.datasets.formats import (
    ClassificationSplit,
    DatasetFormatError,
    DetectionSplit,
    SegmentationSplit,
    bad_label_values,
    bad_labels_message,
    label_mode_problem,
    mask_size_problem,
    open_image,
)

if TYPE_CHECKING:
    from PIL import Image

    from bench.config.schema import DatasetConfig


@dataclass
class DatasetCheck:
    """What checking one dataset found: ``problems`` (one line each), ``notes`` (not problems, e.g. data
    not pulled) and how many files were decoded."""

    name: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: int = 0


@dataclass
class Files:
    """Decodes each file once per dataset and collects its problems: views and splits share image files
    (shapes' COCO and masks views, VOC's trainval and train), and one broken file is one problem."""

    problems: list[str]
    sizes: dict[Path, tuple[int, int] | None] = field(default_factory=dict)  # None: did not decode
    masks: int = 0  # label maps decoded (not cached: their values are checked against each view's classes)

    @property
    def decoded(self) -> int:
        return len(self.sizes) + self.masks

    def size(self, path: Path) -> tuple[int, int] | None:
        """``(width, height)`` of the decoded image, or None with its problem collected (once)."""
        if path not in self.sizes:
            img = self.decode(path)
            self.sizes[path] = None if img is None else img.size
        return self.sizes[path]

    def decode(self, path: Path) -> Image.Image | None:
        """The decoded image, or None with its problem collected."""
        try:
            return open_image(path)
        except DatasetFormatError as exc:
            self.problems.append(str(exc))
            return None


def check_classification(split: ClassificationSplit, files: Files) -> None:
    """Decode every image of an image-folder split."""
    for path in split.paths:
        files.size(path)


def check_detection(split: DetectionSplit, source: str, files: Files) -> None:
    """Decode every image a COCO dict lists; its record's ``width``/``height`` must be the file's."""
    for im in split.gt["images"]:
        if not isinstance(im, dict) or "file_name" not in im:
            continue  # reported by check_coco
        path = split.image_root / im["file_name"]
        size, want = files.size(path), (im.get("width"), im.get("height"))
        if size is not None and None not in want and tuple(size) != want:
            files.problems.append(
                f"{source}: image id={im.get('id')} ({im['file_name']}): the record says {want[0]}x{want[1]} but "
                f"{path} is {size[0]}x{size[1]}; set the record's width and height to the file's (boxes are in its "
                "pixels)")


def check_segmentation(split: SegmentationSplit, num_classes: int, files: Files) -> None:
    """Decode every image and label map: same size, single channel, values ``0 .. num_classes - 1`` or 255."""
    for image_path, mask_path in zip(split.images, split.masks, strict=True):
        size, mask = files.size(image_path), files.decode(mask_path)
        files.masks += 1
        if size is None or mask is None:
            continue
        problem = mask_size_problem(image_path, size, mask_path, mask.size) or label_mode_problem(mask_path, mask.mode)
        if problem:
            files.problems.append(problem)
            continue
        bad = bad_label_values(np.asarray(mask), num_classes)
        if bad:
            files.problems.append(bad_labels_message(mask_path, bad, num_classes))


def _views(ds: DatasetConfig) -> dict[tuple[str, str, tuple[tuple[str, str], ...]], str]:
    """The dataset's distinct views (format, path, layout options) -> a task that reads it; shapes' detection
    and instance-segmentation views are one COCO folder, checked once."""
    out: dict[tuple[str, str, tuple[tuple[str, str], ...]], str] = {}
    for task, view in ds.views.items():
        out.setdefault((view.format, view.path, tuple(sorted(view.adapter_options().items()))), task)
    return out


def check_split(ds: DatasetConfig, root: Path, key: tuple[str, str, tuple[tuple[str, str], ...]], split: str,
                files: Files) -> None:
    """One split of one view: the adapter's rules (collected), then its files."""
    fmt, path, options = key
    adapter = DATASETS.get(fmt).obj
    record: Any = adapter(root / path, split, list(ds.classes), problems=files.problems, **dict(options))
    if isinstance(record, ClassificationSplit):
        check_classification(record, files)
    elif isinstance(record, DetectionSplit):
        check_detection(record, f"{root / path} ({fmt} split {split!r})", files)
    else:
        check_segmentation(record, len(ds.classes) + 1, files)  # label 0 is the background


def dataset_root(ds: DatasetConfig, project: Path) -> Path:
    """The dataset's folder: ``root`` as given when absolute, else under the project."""
    root = Path(ds.root)
    return root if root.is_absolute() else project / root


def check_dataset(project: Path, ds: DatasetConfig, name: str, *, required: bool) -> DatasetCheck:
    """Every problem of dataset ``ds`` (``name``: how the user named it, used in fixes).

    A pinned dataset that was never pulled is a note ("not present"), or a problem when ``required``
    (named on the command line).  A pinned dataset on disk is also checked against its pin.
    """
    out = DatasetCheck(name)
    root = dataset_root(ds, project)
    if not root.is_dir():
        if ds.dvc_file:
            (out.problems if required else out.notes).append(
                f"{root}: not present: run `bench data pull {name}`")
        else:
            out.problems.append(f"{root}: dataset folder missing; set `root:` in {ds.source or name} to the folder")
        return out
    if ds.dvc_file:
        _check_pin(project, ds, name, out.problems)
    files = Files(out.problems)
    for key in _views(ds):
        for split in dict.fromkeys(ds.splits.values()):
            check_split(ds, root, key, split, files)
    out.files = files.decoded
    return out


def _check_pin(project: Path, ds: DatasetConfig, name: str, problems: list[str]) -> None:
    """The files against the version ``datasets.dvc`` pins (a stat walk when nothing changed)."""
    from bench.datasets.versioning import DataVersionError, read_pin, verify

    try:
        verify(project, read_pin(project / str(ds.dvc_file), ds.root, project), name)
    except DataVersionError as exc:
        problems.append(str(exc))
