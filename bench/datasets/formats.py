"""Format adapters: image folders, COCO instances, Pascal VOC XML, image + label-map pairs.

Each adapter validates what it reads and names the offending file and record in its errors.
Detection formats (``coco``, ``voc``) both return a :class:`DetectionSplit` holding a COCO dict,
so the detection engine and the metric engine see one representation.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
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


COCO_ANNOTATIONS = "annotations/{split}.json"  # the default layout (shapes'); a view may set its own


def split_path(template: str, split: str) -> str:
    """A view's path template with ``{split}`` replaced by the split's name (``train2017``)."""
    return template.replace("{split}", split)


@register_format("coco", task=("detection", "instance_segmentation"),
                 layout="<path>/annotations/<split>.json (file_name relative to <path>)")
def load_coco(
    view_root: Path, split: str, classes: list[str], annotations: str = COCO_ANNOTATIONS, images: str = "."
) -> DetectionSplit:
    """COCO instances JSON; category names must equal the dataset's ``classes`` in id order.

    ``annotations`` (the JSON) and ``images`` (the folder ``file_name`` is relative to) are paths
    relative to ``view_root`` in which ``{split}`` stands for the split's name, so COCO's own layout
    (``annotations/instances_{split}.json`` with images in ``{split}/``) reads as it is.
    """
    path = view_root / split_path(annotations, split)
    try:
        gt = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetFormatError(f"{path}: cannot read COCO annotations ({exc})") from None
    check_coco(gt, path)
    names = [c["name"] for c in sorted(gt["categories"], key=lambda c: c["id"])]
    if names != list(classes):
        raise DatasetFormatError(f"{path}: categories {names} differ from the config's classes {classes}")
    image_root = view_root / split_path(images, split)
    if gt["images"] and not (image_root / gt["images"][0]["file_name"]).is_file():
        # Checked once, on the first image: a wrong folder fails here, not mid-epoch in a worker.
        first = gt["images"][0]
        raise DatasetFormatError(
            f"{path}: image id={first['id']} file_name {first['file_name']!r} is not at "
            f"{image_root / first['file_name']}; "
            "set the view's `images:` to the folder file_name is relative to (e.g. `images: \"{split}\"`)"
        )
    return DetectionSplit(gt, image_root)


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


def parse_voc_xml(path: Path, classes: list[str] | None) -> VocRecord:
    """Read one VOC annotation file; errors name the file, the object (``object #i``) and the fix.

    ``classes`` None accepts any class name (to read the image size only)."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise DatasetFormatError(f"{path}: malformed XML ({exc})") from None
    except OSError as exc:
        raise DatasetFormatError(f"{path}: cannot read the annotation file ({exc.strerror})") from None
    if root.tag != "annotation":
        raise DatasetFormatError(f"{path}: root element is <{root.tag}>, expected <annotation> (a VOC XML)")
    size = root.find("size")
    width = int(_number(size, "width", f"{path}: <size>")) if size is not None and size.findtext("width") else 0
    height = int(_number(size, "height", f"{path}: <size>")) if size is not None and size.findtext("height") else 0
    objects = []
    for i, obj in enumerate(root.findall("object")):
        where = f"{path}: object #{i}"
        name = _text(obj, "name", where)
        if classes is not None and name not in classes:
            raise DatasetFormatError(
                f"{where} has class {name!r}, which is not in the dataset's classes {classes}; add it to "
                "`classes:` in the dataset YAML (or correct the name in the XML)"
            )
        bnd = obj.find("bndbox")
        if bnd is None:
            raise DatasetFormatError(f"{where} ({name}): <bndbox> missing")
        box = tuple(_number(bnd, k, f"{where} ({name}) <bndbox>") for k in ("xmin", "ymin", "xmax", "ymax"))
        if box[2] < box[0] or box[3] < box[1]:
            raise DatasetFormatError(f"{where} ({name}): xmax < xmin or ymax < ymin in <bndbox> {box}")
        objects.append(VocObject(name, box, _flag(obj, "difficult", f"{where} ({name})")))  # type: ignore[arg-type]
    return VocRecord((root.findtext("filename") or "").strip(), width, height, objects)


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
        f"{xml}: image of id {image_id!r} not found (tried {', '.join(str(p) for p in tried)})"
    )


def voc_image_size(path: Path, record: VocRecord, xml: Path) -> tuple[int, int]:
    """``(width, height)``: the XML's ``<size>``, checked against the image header (PIL reads only the
    header here, not the pixels); taken from the image when the XML omits it or writes 0."""
    from PIL import Image

    with Image.open(path) as img:
        actual = img.size
    if record.width and record.height and (record.width, record.height) != actual:
        raise DatasetFormatError(
            f"{xml}: <size> says {record.width}x{record.height} but {path} is {actual[0]}x{actual[1]}; fix <size> "
            "(boxes are in the image's pixels)"
        )
    return actual


@register_format("voc", task="detection", layout=VOC_LAYOUT)
def load_voc(view_root: Path, split: str, classes: list[str]) -> DetectionSplit:
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
    ann_dir, img_dir = view_root / "Annotations", view_root / "JPEGImages"
    split_file = view_root / "ImageSets" / "Main" / f"{split}.txt"
    if not ann_dir.is_dir():
        raise DatasetFormatError(f"{ann_dir}: folder missing (a VOC view needs {VOC_LAYOUT})")
    ids = read_split_list(split_file)
    number = {p.stem: k + 1 for k, p in enumerate(sorted(ann_dir.glob("*.xml")))}
    images, anns = [], []
    for voc_id in ids:
        xml = ann_dir / f"{voc_id}.xml"
        if voc_id not in number:
            raise DatasetFormatError(f"{xml}: missing, but {split_file} lists image id {voc_id!r}")
        record = parse_voc_xml(xml, classes)
        image = find_voc_image(img_dir, record, voc_id, xml)
        width, height = voc_image_size(image, record, xml)
        image_id = number[voc_id]
        images.append({"id": image_id, "file_name": image.relative_to(view_root).as_posix(), "width": width,
                       "height": height, "voc_id": voc_id})
        for obj in record.objects:
            box = voc_box_to_coco(obj.box, width, height)
            if box[2] <= 0 or box[3] <= 0:
                raise DatasetFormatError(f"{xml}: object {obj.name} box {obj.box} lies outside the {width}x{height} "
                                         "image")
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": classes.index(obj.name) + 1,
                         "bbox": box, "area": box[2] * box[3], "iscrowd": 0, "difficult": int(obj.difficult)})
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": k + 1, "name": name} for k, name in enumerate(classes)]}
    check_coco(gt, split_file)
    return DetectionSplit(gt, view_root)
