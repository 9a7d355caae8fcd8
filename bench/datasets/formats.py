"""Format adapters: image folders, COCO instances, Pascal VOC XML, image + label-map pairs.

Each adapter validates what it reads and names the offending file and record in its errors, in the
form ``FILE[: record]: problem; fix``.  Detection formats (``coco``, ``voc``) both return a
:class:`DetectionSplit` holding a COCO dict, so the detection engine and the metric engine see one
representation.

Every adapter takes ``problems``: None (training) raises :class:`DatasetFormatError` on the first
problem; a list (``bench data check``) collects every problem, skips the bad record and goes on, so
one pass reports them all.  The rules live here once, for both callers.  Decoding image files is
:func:`open_image`'s job (training decodes lazily, ``bench.datasets.check`` decodes every file).
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.datasets import register_format

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")
#: How far (px) a box may stick out of its image: exporters round box edges, and a box a pixel over
#: the border is the same object; further out, the box or the image size is wrong.
BOX_TOLERANCE = 1.0
IGNORE_LABEL = 255  # a label-map value no loss or metric scores (bench.engine.data.IGNORE_INDEX is this)

Problems = list[str] | None


class DatasetFormatError(ValueError):
    """Files on disk do not follow the declared format."""


def report(problems: Problems, message: str) -> None:
    """Raise ``message`` (``problems`` None: training stops at the first problem) or collect it."""
    if problems is None:
        raise DatasetFormatError(message)
    problems.append(message)


@contextmanager
def record_errors(problems: Problems) -> Iterator[None]:
    """A :class:`DatasetFormatError` raised inside ends the current record: raised again without a
    collector, collected with one (the caller's loop then goes on with the next record)."""
    try:
        yield
    except DatasetFormatError as exc:
        if problems is None:
            raise
        problems.append(str(exc))


def _image_error(path: Path, exc: Exception) -> DatasetFormatError:
    """The error for an image PIL cannot read: missing, empty or undecodable, with the fix.

    PIL's own messages ("image file is truncated") do not name the file, and a worker's traceback
    does not say which of 70 000 images it was.
    """
    if isinstance(exc, FileNotFoundError):
        return DatasetFormatError(f"{path}: image file missing; restore it (`bench data pull NAME --force` for "
                                  "pinned data) or remove its record from the split")
    try:
        empty = path.stat().st_size == 0
    except OSError:
        empty = False
    if empty:
        return DatasetFormatError(f"{path}: empty file (0 bytes); re-export the image or remove it from the split")
    return DatasetFormatError(f"{path}: cannot decode the image ({exc}); the file is truncated or corrupt: "
                              "re-export it (or restore it with `bench data pull NAME --force` for pinned data)")


def open_image(path: Path) -> Image.Image:
    """The image at ``path``, fully decoded (``load()``), or a :class:`DatasetFormatError` naming the file.

    The one place image files are decoded (training, proposals and ``bench data check``), so a
    truncated, empty or missing file always fails the same way.
    """
    from PIL import Image

    try:
        img = Image.open(path)
        img.load()  # decode now: a truncated file fails here, naming the path, not mid-transform
    except (OSError, SyntaxError, ValueError) as exc:  # UnidentifiedImageError is an OSError
        raise _image_error(path, exc) from None
    if 0 in img.size:
        raise DatasetFormatError(f"{path}: image of size {img.size[0]}x{img.size[1]}; re-export the image")
    return img


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the image header only (no decode), errors as :func:`open_image`'s."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, SyntaxError, ValueError) as exc:
        raise _image_error(path, exc) from None


def mask_size_problem(image: Path, image_wh: tuple[int, int], mask: Path, mask_wh: tuple[int, int]) -> str | None:
    """The problem when a label map's size differs from its image's (None when they agree)."""
    if image_wh == mask_wh:
        return None
    return (f"{mask}: label map is {mask_wh[0]}x{mask_wh[1]} but its image {image} is {image_wh[0]}x{image_wh[1]}; "
            "a label map must be its image's size: re-export it at that size")


def label_mode_problem(path: Path, mode: str) -> str | None:
    """The problem when a label map is not single-channel (class indices need one value per pixel)."""
    if mode in ("L", "P", "I", "I;16"):
        return None
    return (f"{path}: label map must be single-channel, got mode {mode}; save it as an 8-bit greyscale or palette "
            "PNG of class indices")


def bad_label_values(labels: np.ndarray, num_classes: int) -> list[int]:
    """The distinct values of a label map (any shape) that are neither a class (0 .. ``num_classes - 1``)
    nor ``IGNORE_LABEL``, at most 10, sorted."""
    import numpy as np

    values = np.unique(labels)
    return [int(v) for v in values[((values >= num_classes) & (values != IGNORE_LABEL)) | (values < 0)][:10]]


def bad_labels_message(path: Path, values: list[int], num_classes: int) -> str:
    """The error for label-map ``values`` that are neither a class (0 .. ``num_classes - 1``) nor 255."""
    return (f"{path}: label values {values} are not classes: the dataset's `classes` list {num_classes - 1} "
            f"names, so a label map holds 0 (background) to {num_classes - 1}, or {IGNORE_LABEL} for pixels "
            "to ignore; add the missing class names to the dataset YAML or remap those values")


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
def load_imagefolder(view_root: Path, split: str, classes: list[str], problems: Problems = None) -> ClassificationSplit:
    """Class folders; folder names must equal the dataset's ``classes``."""
    base = view_root / split
    if not base.is_dir():
        report(problems, f"{base}: split folder missing; an imagefolder view needs <path>/<split>/<class>/ "
                         "subfolders (or map the split in the dataset YAML's `splits:`)")
        return ClassificationSplit([], [])
    found = sorted(p.name for p in base.iterdir() if p.is_dir())
    if sorted(classes) != found:
        report(problems, f"{base}: class folders {found} differ from the config's classes {classes}; rename the "
                         "folders or set `classes:` in the dataset YAML to the folder names")
    paths, labels = [], []
    for idx, cls in enumerate(classes):
        imgs = _images_in(base / cls) if (base / cls).is_dir() else []
        paths += imgs
        labels += [idx] * len(imgs)
    if not paths:
        report(problems, f"{base}: no images; put the split's images in <class>/ subfolders ({', '.join(IMAGE_EXTS)})")
    return ClassificationSplit(paths, labels)


REQUIRED_ANN_KEYS = ("id", "image_id", "category_id", "bbox", "area", "iscrowd")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _check_coco_images(images: list[Any], source: Path, problems: Problems) -> dict[Any, dict[str, Any]]:
    """Image records by id; duplicate ids, missing keys and zero or negative sizes are problems."""
    by_id: dict[Any, dict[str, Any]] = {}
    for i, img in enumerate(images):
        if not isinstance(img, dict) or "id" not in img or "file_name" not in img:
            report(problems, f"{source}: image #{i} lacks `id` or `file_name`; every image record needs both")
            continue
        where = f"{source}: image id={img['id']} ({img['file_name']})"
        if img["id"] in by_id:
            report(problems, f"{where}: duplicate image id (also {by_id[img['id']]['file_name']}); image ids must be "
                             "unique: renumber one of them and its annotations")
            continue
        by_id[img["id"]] = img
        for key in ("width", "height"):
            if key in img and not (_is_number(img[key]) and img[key] > 0):
                report(problems, f"{where}: {key} is {img[key]!r}; set `width` and `height` to the image's size "
                                 "in pixels (a zero-size image has nothing to detect)")
    return by_id


def _coco_annotation_problem(
    ann: Any, i: int, images: dict[Any, dict[str, Any]], cat_ids: set[Any], seen: set[Any]
) -> str | None:
    """The first problem of annotation #``i`` (without the file name), or None."""
    if not isinstance(ann, dict):
        return f"annotation #{i}: expected a dict, got {type(ann).__name__}"
    missing = [k for k in REQUIRED_ANN_KEYS if k not in ann]
    if missing:
        return f"annotation #{i} (id={ann.get('id')}) lacks {missing}; COCO annotations need {list(REQUIRED_ANN_KEYS)}"
    where = f"annotation id={ann['id']} (image id={ann['image_id']})"
    if ann["id"] in seen:
        return f"{where}: duplicate annotation id; annotation ids must be unique: renumber it"
    seen.add(ann["id"])
    if ann["image_id"] not in images:
        return f"{where}: image_id {ann['image_id']} is not in `images`; add the image record or remove the annotation"
    if ann["category_id"] not in cat_ids:
        return (f"{where}: unknown category_id {ann['category_id']} (`categories` has ids {sorted(cat_ids)}); "
                "add the category or correct the annotation's category_id")
    box = ann["bbox"]
    if not (isinstance(box, list | tuple) and len(box) == 4 and all(map(_is_number, box))):
        return f"{where}: bbox {box!r} is not 4 finite numbers; write it as [x, y, width, height]"
    if box[2] < 0 or box[3] < 0:
        return (f"{where}: bbox {list(box)} has a negative width or height; COCO boxes are [x, y, width, height] "
                "with width, height >= 0: fix the box")
    return _outside_problem(where, box, images[ann["image_id"]])


def _outside_problem(where: str, box: list[float], image: dict[str, Any]) -> str | None:
    """The problem when ``box`` ``[x, y, w, h]`` lies more than ``BOX_TOLERANCE`` px outside its image."""
    w, h = image.get("width"), image.get("height")
    if not (_is_number(w) and _is_number(h) and w > 0 and h > 0):
        return None  # no size in the record (or a bad one, reported with the image)
    t = BOX_TOLERANCE
    if box[0] < -t or box[1] < -t or box[0] + box[2] > w + t or box[1] + box[3] > h + t:
        return (f"{where}: bbox {list(box)} lies outside the {w}x{h} image {image.get('file_name')}; fix the box "
                "(pixels of this image, [x, y, width, height]) or the image record's width/height")
    return None


def check_coco(gt: dict[str, Any], source: Path, problems: Problems = None) -> None:
    """Checks on a COCO instances dict; problems name the file and the record, and say the fix.

    Images: unique ids, positive ``width``/``height`` when given, at least one.  Annotations: the
    required keys, unique ids, a known image and category, ``bbox`` of 4 finite numbers with no
    negative size, inside its image (``BOX_TOLERANCE``), at least one in the split.
    """
    for key in ("images", "annotations", "categories"):
        if not isinstance(gt.get(key), list):
            report(problems, f"{source}: missing top-level key {key!r} (a list); a COCO instances file has "
                             "`images`, `annotations` and `categories`")
            return
    images = _check_coco_images(gt["images"], source, problems)
    cat_ids = {c.get("id") for c in gt["categories"] if isinstance(c, dict)}
    if not gt["images"]:
        report(problems, f"{source}: no images; the split's `images` list is empty: point the view at the right "
                         "file (`annotations:` in the dataset YAML) or export the split again")
    if not gt["annotations"]:
        report(problems, f"{source}: no annotations; a detection split needs ground-truth boxes under "
                         "`annotations`: export them, or map this split to another one in `splits:`")
    seen: set[Any] = set()
    for i, ann in enumerate(gt["annotations"]):
        problem = _coco_annotation_problem(ann, i, images, cat_ids, seen)
        if problem:
            report(problems, f"{source}: {problem}")


COCO_ANNOTATIONS = "annotations/{split}.json"  # the default layout (shapes'); a view may set its own


def split_path(template: str, split: str) -> str:
    """A view's path template with ``{split}`` replaced by the split's name (``train2017``)."""
    return template.replace("{split}", split)


@register_format("coco", task=("detection", "instance_segmentation"),
                 layout="<path>/annotations/<split>.json (file_name relative to <path>)")
def load_coco(
    view_root: Path, split: str, classes: list[str], annotations: str = COCO_ANNOTATIONS, images: str = ".",
    problems: Problems = None,
) -> DetectionSplit:
    """COCO instances JSON; category names must equal the dataset's ``classes`` in id order.

    ``annotations`` (the JSON) and ``images`` (the folder ``file_name`` is relative to) are paths
    relative to ``view_root`` in which ``{split}`` stands for the split's name, so COCO's own layout
    (``annotations/instances_{split}.json`` with images in ``{split}/``) reads as it is.  The records
    are checked by :func:`check_coco`; of the image files only the first is looked up here (a wrong
    folder fails at once), the others when they are read.
    """
    path = view_root / split_path(annotations, split)
    image_root = view_root / split_path(images, split)
    empty = DetectionSplit({"images": [], "annotations": [], "categories": []}, image_root)
    try:
        gt = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        report(problems, f"{path}: cannot read COCO annotations ({exc}); point the view's `annotations:` at the "
                         "split's instances JSON")
        return empty
    if not isinstance(gt, dict) or not all(isinstance(gt.get(k), list) for k in ("images", "annotations",
                                                                                   "categories")):
        check_coco(gt if isinstance(gt, dict) else {}, path, problems)
        return empty
    check_coco(gt, path, problems)
    names = [c.get("name") for c in sorted(gt["categories"], key=lambda c: c.get("id", 0))]
    if names != list(classes):
        report(problems, f"{path}: categories {names} differ from the config's classes {classes}; list the category "
                         "names in id order under `classes:` in the dataset YAML")
    if gt["images"] and not (image_root / gt["images"][0].get("file_name", "")).is_file():
        # Checked once, on the first image: a wrong folder fails here, not mid-epoch in a worker.
        first = gt["images"][0]
        report(problems,
               f"{path}: image id={first.get('id')} file_name {first.get('file_name')!r} is not at "
               f"{image_root / first.get('file_name', '')}; "
               "set the view's `images:` to the folder file_name is relative to (e.g. `images: \"{split}\"`)")
    return DetectionSplit(gt, image_root)


@register_format(
    "masks", task="semantic_segmentation", layout="<path>/images/<split>/X.png + <path>/masks/<split>/X.png"
)
def load_masks(view_root: Path, split: str, classes: list[str], problems: Problems = None) -> SegmentationSplit:
    """Images paired with single-channel label maps of the same file stem (0 = background).

    An image without its label map is a problem (collected: the pair is left out).  That a label map
    is its image's size and holds only class values is checked when both are decoded (training:
    ``bench.engine.data.SegmentationDataset``; ``bench data check``), with :func:`mask_size_problem`
    and :func:`bad_labels_message`.
    """
    img_dir, mask_dir = view_root / "images" / split, view_root / "masks" / split
    images = _images_in(img_dir) if img_dir.is_dir() else []
    if not images:
        report(problems, f"{img_dir}: no images; a masks view needs <path>/images/<split>/X.png with label maps "
                         "<path>/masks/<split>/X.png")
    pairs = []
    for img in images:
        mask = mask_dir / (img.stem + ".png")
        if not mask.is_file():
            report(problems, f"{mask}: label map missing for image {img}; add it (same file stem, .png) or remove "
                             "the image")
            continue
        pairs.append((img, mask))
    return SegmentationSplit([i for i, _ in pairs], [m for _, m in pairs])


# --------------------------------------------------------------------------------------------
# Pascal VOC
# --------------------------------------------------------------------------------------------

VOC_LAYOUT = "<path>/Annotations/<id>.xml + <path>/JPEGImages/<id>.jpg + <path>/ImageSets/Main/<split>.txt"


@dataclass(frozen=True)
class VocObject:
    """One ``<object>`` of a VOC XML: class name, ``box`` as the devkit writes it (1-based inclusive
    pixel indices ``xmin, ymin, xmax, ymax``) and the ``difficult`` flag."""

    name: str
    box: tuple[float, float, float, float]
    difficult: bool
    index: int = 0  # its position among the file's <object>s, named in errors


@dataclass(frozen=True)
class VocRecord:
    """One VOC annotation file: ``filename`` (may be empty), image ``width``/``height`` from ``<size>``
    (0 when absent) and its objects in file order."""

    filename: str
    width: int
    height: int
    objects: list[VocObject]


def read_split_list(path: Path) -> list[str]:
    """Image ids of ``ImageSets/Main/<split>.txt``, one per line, in file order (duplicates refused)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DatasetFormatError(
            f"{path}: cannot read the split list ({exc.strerror}); a VOC folder lists each split's image ids in "
            "ImageSets/Main/<split>.txt, and the dataset YAML's `splits:` maps train/val/test to those names"
        ) from None
    ids: list[str] = []
    seen: set[str] = set()
    for n, line in enumerate(lines, 1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) > 1:
            raise DatasetFormatError(
                f"{path}:{n}: expected one image id per line, got {line.strip()!r} (the per-class lists "
                "<class>_<split>.txt hold `id ±1`; name the plain list <split>.txt in `splits:`)"
            )
        if tokens[0] in seen:
            raise DatasetFormatError(f"{path}:{n}: image id {tokens[0]!r} is listed twice")
        seen.add(tokens[0])
        ids.append(tokens[0])
    if not ids:
        raise DatasetFormatError(f"{path}: the split list names no images")
    return ids


def _text(elem: ET.Element, tag: str, where: str) -> str:
    found = elem.findtext(tag)
    if found is None or not found.strip():
        raise DatasetFormatError(f"{where}: <{tag}> missing or empty")
    return found.strip()


def _number(elem: ET.Element, tag: str, where: str) -> float:
    raw = _text(elem, tag, where)
    try:
        return float(raw)
    except ValueError:
        raise DatasetFormatError(f"{where}: <{tag}> is {raw!r}, not a number") from None


def _flag(elem: ET.Element, tag: str, where: str) -> bool:
    """An optional 0/1 flag (absent = 0), as the devkit writes ``difficult`` and ``truncated``."""
    raw = (elem.findtext(tag) or "0").strip() or "0"
    if raw not in ("0", "1"):
        raise DatasetFormatError(f"{where}: <{tag}> must be 0 or 1, got {raw!r}")
    return raw == "1"


def parse_voc_xml(path: Path, classes: list[str] | None, problems: Problems = None) -> VocRecord:
    """Read one VOC annotation file; errors name the file, the object (``object #i``) and the fix.

    ``classes`` None accepts any class name (to read the image size only).  A bad object is a
    problem (collected: the object is left out); an unreadable file raises either way."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise DatasetFormatError(f"{path}: malformed XML ({exc}); fix or re-export the annotation file") from None
    except OSError as exc:
        raise DatasetFormatError(f"{path}: cannot read the annotation file ({exc.strerror})") from None
    if root.tag != "annotation":
        raise DatasetFormatError(f"{path}: root element is <{root.tag}>, expected <annotation> (a VOC XML)")
    size = root.find("size")
    width = int(_number(size, "width", f"{path}: <size>")) if size is not None and size.findtext("width") else 0
    height = int(_number(size, "height", f"{path}: <size>")) if size is not None and size.findtext("height") else 0
    objects = []
    for i, obj in enumerate(root.findall("object")):
        with record_errors(problems):
            objects.append(_voc_object(obj, i, f"{path}: object #{i}", classes))
    return VocRecord((root.findtext("filename") or "").strip(), width, height, objects)


def _voc_object(obj: ET.Element, index: int, where: str, classes: list[str] | None) -> VocObject:
    """One ``<object>``: its class must be one of ``classes`` (None: any) and its box not inverted."""
    name = _text(obj, "name", where)
    if classes is not None and name not in classes:
        raise DatasetFormatError(
            f"{where} has class {name!r}, which is not in the dataset's classes {classes}; add it to "
            "`classes:` in the dataset YAML (or correct the name in the XML)"
        )
    bnd = obj.find("bndbox")
    if bnd is None:
        raise DatasetFormatError(f"{where} ({name}): <bndbox> missing; every object needs a box")
    box = tuple(_number(bnd, k, f"{where} ({name}) <bndbox>") for k in ("xmin", "ymin", "xmax", "ymax"))
    if box[2] < box[0] or box[3] < box[1]:
        raise DatasetFormatError(f"{where} ({name}): xmax < xmin or ymax < ymin in <bndbox> {box} (a negative "
                                 "size); fix the box: VOC boxes are xmin, ymin, xmax, ymax")
    return VocObject(name, box, _flag(obj, "difficult", f"{where} ({name})"), index)  # type: ignore[arg-type]


def voc_box_to_coco(box: tuple[float, float, float, float], width: int, height: int) -> list[float]:
    """VOC ``xmin, ymin, xmax, ymax`` (1-based, inclusive pixel indices) -> COCO ``[x, y, w, h]``.

    Pixel ``i`` (1-based) covers ``[i - 1, i]`` in continuous image coordinates, so the box is
    ``[xmin - 1, xmax]``: ``x = xmin - 1``, ``w = xmax - xmin + 1`` (Detectron2's VOC reader does the
    same).  The metric engine's ``voc_legacy_coords`` (the devkit's ``+ 1`` on widths) is for raw
    devkit coordinates; on converted boxes the default continuous IoU already equals the devkit's.
    The box is clipped to the image, so an exporter that writes 0-based indices loses at most its
    border pixel rather than producing a box outside the image.
    """
    x0, y0 = max(box[0] - 1.0, 0.0), max(box[1] - 1.0, 0.0)
    x1, y1 = min(box[2], float(width)), min(box[3], float(height))
    return [x0, y0, x1 - x0, y1 - y0]


def find_voc_image(folder: Path, record: VocRecord, image_id: str, xml: Path) -> Path:
    """The image of an annotation: ``<filename>`` from the XML, else ``<id>`` with any image extension."""
    tried = [folder / record.filename] if record.filename else []
    tried += [folder / (image_id + ext) for ext in IMAGE_EXTS if folder / (image_id + ext) not in tried]
    for path in tried:
        if path.is_file():
            return path
    raise DatasetFormatError(
        f"{xml}: image of id {image_id!r} not found (tried {', '.join(str(p) for p in tried)}); put the image in "
        f"{folder} or correct <filename>"
    )


def voc_image_size(path: Path, record: VocRecord, xml: Path) -> tuple[int, int]:
    """``(width, height)``: the XML's ``<size>``, checked against the image header (PIL reads only the
    header here, not the pixels); taken from the image when the XML omits it or writes 0."""
    actual = image_size(path)
    if record.width and record.height and (record.width, record.height) != actual:
        raise DatasetFormatError(
            f"{xml}: <size> says {record.width}x{record.height} but {path} is {actual[0]}x{actual[1]}; fix <size> "
            "(boxes are in the image's pixels)"
        )
    return actual


def _voc_outside_problem(xml: Path, obj: VocObject, width: int, height: int) -> str | None:
    """The problem when a VOC box (1-based inclusive) lies more than ``BOX_TOLERANCE`` px outside its image,
    or entirely outside it; a 0-based exporter's box (``xmin`` 0) is within the tolerance."""
    t = BOX_TOLERANCE
    x0, y0, x1, y1 = obj.box
    coco = voc_box_to_coco(obj.box, width, height)
    if x0 - 1 < -t or y0 - 1 < -t or x1 > width + t or y1 > height + t or coco[2] <= 0 or coco[3] <= 0:
        return (f"{xml}: object #{obj.index} ({obj.name}) box {obj.box} lies outside the {width}x{height} image; fix "
                "<bndbox> (1-based pixel indices within <size>)")
    return None


@register_format("voc", task="detection", layout=VOC_LAYOUT)
def load_voc(view_root: Path, split: str, classes: list[str], problems: Problems = None) -> DetectionSplit:
    """A Pascal VOC folder as a COCO dict (the same :class:`DetectionSplit` as ``coco``).

    * image ids: ``1 +`` the position of ``<id>.xml`` among all of ``Annotations/`` sorted, so an image
      keeps its id in every split list that names it (VOC's ``trainval`` overlaps ``train``/``val``);
      the VOC id itself is kept in the image record as ``voc_id``;
    * categories: ``id = k + 1`` for the dataset's ``classes[k]``; an object of another class is an error;
    * boxes: :func:`voc_box_to_coco`; ``area = w * h``; ``iscrowd = 0``;
    * ``difficult``: kept as the annotation key ``difficult`` (0/1).  The metric engine ignores such
      GT in the VOC metrics (``mAP11``/``mAPall``, per-image AP): it is no miss when undetected and a
      detection matching it is neither TP nor FP.  The COCO metrics (``mAP``...) stay pycocotools-exact,
      which knows no such flag and counts it as ordinary GT.  Training skips them (see
      :class:`bench.engine.data.DetectionDataset`).
    """
    ann_dir = view_root / "Annotations"
    split_file = view_root / "ImageSets" / "Main" / f"{split}.txt"
    empty = DetectionSplit({"images": [], "annotations": [], "categories": []}, view_root)
    if not ann_dir.is_dir():
        report(problems, f"{ann_dir}: folder missing (a VOC view needs {VOC_LAYOUT})")
        return empty
    ids: list[str] = []
    with record_errors(problems):
        ids = read_split_list(split_file)
    if not ids:
        return empty
    number = {p.stem: k + 1 for k, p in enumerate(sorted(ann_dir.glob("*.xml")))}
    images, anns = [], []
    for voc_id in ids:
        with record_errors(problems):
            image, objects = _voc_image(view_root, voc_id, number, split_file, classes, problems)
            images.append(image)
            for obj in objects:
                box = voc_box_to_coco(obj.box, image["width"], image["height"])
                anns.append({"id": len(anns) + 1, "image_id": image["id"], "category_id": classes.index(obj.name) + 1,
                             "bbox": box, "area": box[2] * box[3], "iscrowd": 0, "difficult": int(obj.difficult)})
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": k + 1, "name": name} for k, name in enumerate(classes)]}
    check_coco(gt, split_file, problems)
    return DetectionSplit(gt, view_root)


def _voc_image(
    view_root: Path, voc_id: str, number: dict[str, int], split_file: Path, classes: list[str], problems: Problems
) -> tuple[dict[str, Any], list[VocObject]]:
    """The COCO image record of one listed VOC id and its objects (those outside the image are problems)."""
    xml = view_root / "Annotations" / f"{voc_id}.xml"
    if voc_id not in number:
        raise DatasetFormatError(f"{xml}: missing, but {split_file} lists image id {voc_id!r}; add the XML or "
                                 "remove the id from the list")
    record = parse_voc_xml(xml, classes, problems)
    image = find_voc_image(view_root / "JPEGImages", record, voc_id, xml)
    width, height = voc_image_size(image, record, xml)
    objects = []
    for obj in record.objects:
        problem = _voc_outside_problem(xml, obj, width, height)
        if problem:
            report(problems, problem)
            continue
        objects.append(obj)
    info = {"id": number[voc_id], "file_name": image.relative_to(view_root).as_posix(), "width": width,
            "height": height, "voc_id": voc_id}
    return info, objects
