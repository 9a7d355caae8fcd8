"""User data through a dataset YAML: the Pascal VOC reader and a COCO-format folder in COCO's own layout.

Every tree here is written by the test (small generated images with known boxes), so the expected
COCO boxes, labels and ``difficult`` flags are known exactly.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from bench.config.catalog import Catalog, resolve_trial
from bench.config.loader import ConfigError
from bench.datasets.formats import DatasetFormatError, load_coco, load_voc, voc_box_to_coco
from tests.conftest import ROOT, copy_project

CLASSES = ["circle", "square"]
W, H = 48, 40  # not square, so a width/height mix-up shows
# VOC id -> objects (class, (xmin, ymin, xmax, ymax) 1-based inclusive, difficult)
OBJECTS: dict[str, list[tuple[str, tuple[int, int, int, int], int]]] = {
    "000001": [("circle", (5, 6, 20, 18), 0), ("square", (25, 10, 44, 35), 0)],
    "000002": [("square", (3, 3, 15, 15), 0), ("circle", (30, 20, 40, 30), 1)],
    "000003": [("circle", (10, 10, 30, 30), 0)],
    "000004": [("square", (1, 1, W, H), 0)],  # the whole image
    "000005": [("circle", (4, 4, 16, 16), 0), ("square", (20, 10, 40, 30), 1), ("square", (30, 32, 46, 40), 0)],
    "000006": [("square", (8, 8, 24, 24), 0)],
}
SPLITS = {"train": ["000001", "000002", "000003", "000004"], "val": ["000005"], "test": ["000006"],
          "trainval": ["000001", "000002", "000003", "000004", "000005"]}


def voc_xml(filename: str, objects: list[tuple[str, tuple[float, ...], int]], size: tuple[int, int] = (W, H)) -> str:
    """A VOC annotation as the devkit writes it."""
    objs = "".join(
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>{diff}</difficult>"
        f"<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for name, b, diff in objects
    )
    return (f"<annotation><folder>VOC</folder><filename>{filename}</filename><size><width>{size[0]}</width>"
            f"<height>{size[1]}</height><depth>3</depth></size><segmented>0</segmented>{objs}</annotation>")


def draw(objects: list[tuple[str, tuple[int, int, int, int], int]], seed: int) -> Image.Image:
    """A noisy background with each object's box filled in a flat colour."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 80, (H, W, 3), dtype=np.uint8)
    for k, (_, (x0, y0, x1, y1), _) in enumerate(objects):
        img[y0 - 1:y1, x0 - 1:x1] = (200, 60 + 60 * k, 30)
    return Image.fromarray(img)


def write_voc(root: Path, objects: dict = OBJECTS, splits: dict = SPLITS) -> Path:
    """A VOC tree: Annotations/, JPEGImages/ and ImageSets/Main/ under ``root``."""
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for k, (voc_id, objs) in enumerate(objects.items()):
        draw(objs, k).save(root / "JPEGImages" / f"{voc_id}.jpg", quality=95)
        (root / "Annotations" / f"{voc_id}.xml").write_text(voc_xml(f"{voc_id}.jpg", objs))
    for split, ids in splits.items():
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


@pytest.fixture
def voc(tmp_path: Path) -> Path:
    return write_voc(tmp_path / "VOC")


def test_reader_boxes_labels_difficult(voc: Path) -> None:
    split = load_voc(voc, "train", CLASSES)
    gt = split.gt
    assert split.image_root == voc
    assert [c["name"] for c in gt["categories"]] == CLASSES and [c["id"] for c in gt["categories"]] == [1, 2]
    assert [im["voc_id"] for im in gt["images"]] == SPLITS["train"]
    assert all((im["width"], im["height"]) == (W, H) for im in gt["images"])
    assert all((voc / im["file_name"]).is_file() for im in gt["images"])
    by_image = {im["id"]: im["voc_id"] for im in gt["images"]}
    got = [(by_image[a["image_id"]], a["category_id"], a["bbox"], a["difficult"]) for a in gt["annotations"]]
    assert got == [
        ("000001", 1, [4.0, 5.0, 16.0, 13.0], 0),  # xmin 5 -> x 4; xmax 20 -> w = 20 - 5 + 1
        ("000001", 2, [24.0, 9.0, 20.0, 26.0], 0),
        ("000002", 2, [2.0, 2.0, 13.0, 13.0], 0),
        ("000002", 1, [29.0, 19.0, 11.0, 11.0], 1),
        ("000003", 1, [9.0, 9.0, 21.0, 21.0], 0),
        ("000004", 2, [0.0, 0.0, float(W), float(H)], 0),  # (1, 1, W, H) covers the image exactly
    ]
    assert all(a["area"] == a["bbox"][2] * a["bbox"][3] and a["iscrowd"] == 0 for a in gt["annotations"])
    # An image keeps its id in every list that names it (trainval overlaps train and val).
    ids = {im["voc_id"]: im["id"] for im in load_voc(voc, "trainval", CLASSES).gt["images"]}
    assert {v: ids[v] for v in SPLITS["train"]} == {v: k for k, v in by_image.items()}
    assert ids["000005"] == load_voc(voc, "val", CLASSES).gt["images"][0]["id"]


def test_converted_boxes_give_the_devkit_iou() -> None:
    """The devkit's IoU on raw boxes (``+ 1`` on widths) equals the continuous IoU on converted boxes,
    so the metric's default (``voc_legacy_coords=False``) is the right one for VOC-read data."""
    from bench.metrics.detection import box_iou, xywh_to_xyxy

    raw = np.array([[5, 6, 20, 18], [30, 20, 40, 30], [1, 1, 48, 40]], dtype=float)
    dets = np.array([[8, 6, 22, 19], [31, 18, 41, 33], [3, 2, 40, 40]], dtype=float)
    conv = lambda boxes: xywh_to_xyxy(np.array([voc_box_to_coco(tuple(b), W, H) for b in boxes]))  # noqa: E731
    np.testing.assert_allclose(box_iou(conv(dets), conv(raw)), box_iou(dets, raw, legacy_coords=True))
    assert not np.allclose(box_iou(dets, raw), box_iou(dets, raw, legacy_coords=True))  # the +1 matters here


def test_shapes_written_as_voc_reads_back_identically(tmp_path: Path) -> None:
    """shapes' COCO boxes (0-based pixel indices, ``w = last - first + 1``) written as VOC XML the way the
    devkit would (1-based inclusive) read back to the same COCO boxes: one convention for both formats."""
    from bench.datasets.shapes import CLASSES as SHAPES
    from bench.datasets.shapes import ShapesSpec, generate

    src = generate(tmp_path / "shapes", ShapesSpec(scenes=(5, 1, 1), singles=(3, 3, 3)))
    coco = load_coco(src, "train", list(SHAPES)).gt
    voc = tmp_path / "VOC"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True)
    ids = []
    for im in coco["images"]:
        voc_id = Path(im["file_name"]).stem
        shutil.copy(src / im["file_name"], voc / "JPEGImages" / f"{voc_id}.png")
        objs = [(SHAPES[a["category_id"] - 1], (a["bbox"][0] + 1, a["bbox"][1] + 1, a["bbox"][0] + a["bbox"][2],
                                                a["bbox"][1] + a["bbox"][3]), 0)
                for a in coco["annotations"] if a["image_id"] == im["id"]]
        (voc / "Annotations" / f"{voc_id}.xml").write_text(voc_xml(f"{voc_id}.png", objs, (64, 64)))
        ids.append(voc_id)
    (voc / "ImageSets" / "Main" / "train.txt").write_text("\n".join(ids))
    back = load_voc(voc, "train", list(SHAPES)).gt
    assert [(a["category_id"], a["bbox"]) for a in back["annotations"]] == \
        [(a["category_id"], [float(v) for v in a["bbox"]]) for a in coco["annotations"]]


def test_difficult_is_ignored_by_the_voc_metrics(voc: Path) -> None:
    """A difficult GT left undetected is no miss, and a detection on it is no false positive (000005:
    a circle, a difficult square and a normal square).  Without the flag the same detections score
    lower; pycocotools' numbers know no such flag and count it (documented in load_voc)."""
    from bench.evaluators.detection import DetectionEvaluator

    gt = load_voc(voc, "val", CLASSES).gt
    img = gt["images"][0]["id"]
    circle = {"image_id": img, "category_id": 1, "bbox": [3.0, 3.0, 13.0, 13.0], "score": 0.6}
    square = {"image_id": img, "category_id": 2, "bbox": [29.0, 31.0, 17.0, 9.0], "score": 0.5}
    on_difficult = {"image_id": img, "category_id": 2, "bbox": [19.0, 9.0, 21.0, 21.0], "score": 0.9}
    plain = {**gt, "annotations": [{**a, "difficult": 0} for a in gt["annotations"]]}

    def scores(truth: dict, preds: list[dict]) -> dict:
        ev = DetectionEvaluator(truth)
        ev.update(preds)
        return ev.compute()

    missed, detected = scores(gt, [circle, square]), scores(gt, [circle, square, on_difficult])
    assert missed["mAP11"] == missed["mAPall"] == 1.0  # the undetected difficult square is no miss
    # Ranked first, the detection on it would halve the square's AP if it counted as a false positive.
    assert detected["mAP11"] == detected["mAPall"] == 1.0
    assert scores(plain, [circle, square])["mAPall"] == 0.75  # control: as ordinary GT it is a miss
    assert scores(plain, [circle, square, on_difficult])["mAPall"] == 1.0  # ... and this a TP
    assert 0.7 < missed["mAP_50"] < 0.8  # COCO numbers: the square class at recall 1/2
    # The per-image AP behind the untrained-baseline sign test ignores it too.
    ev = DetectionEvaluator(gt)
    ev.update([circle, square, on_difficult])
    assert ev.per_image_ap(0.5).tolist() == [1.0]


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda r: (r / "Annotations/000002.xml").write_text(
            voc_xml("000002.jpg", [("square", (3, 3, 15, 15), 0), ("triangle", (1, 1, 9, 9), 0)])),
         r"Annotations/000002.xml: object #1 has class 'triangle'.*add it to `classes:`"),
        (lambda r: (r / "Annotations/000003.xml").write_text("<annotation><object><name>circle</name>"),
         r"Annotations/000003.xml: malformed XML"),
        (lambda r: (r / "JPEGImages/000004.jpg").unlink(),
         r"Annotations/000004.xml: image of id '000004' not found \(tried .*JPEGImages/000004.jpg"),
        (lambda r: (r / "ImageSets/Main/train.txt").unlink(),
         r"ImageSets/Main/train.txt: cannot read the split list"),
        (lambda r: (r / "Annotations/000001.xml").unlink(),
         r"Annotations/000001.xml: missing, but .*train.txt lists image id '000001'"),
        (lambda r: (r / "Annotations/000001.xml").write_text(voc_xml("000001.jpg", OBJECTS["000001"], (W, W))),
         r"Annotations/000001.xml: <size> says 48x48 but .*000001.jpg is 48x40"),
        (lambda r: (r / "Annotations/000003.xml").write_text(voc_xml("000003.jpg", [("circle", (30, 9, 10, 20), 0)])),
         r"Annotations/000003.xml: object #0 \(circle\): xmax < xmin"),
        (lambda r: (r / "Annotations/000003.xml").write_text(voc_xml("000003.jpg", [("circle", (1, 1, "a", 9), 0)])),
         r"Annotations/000003.xml: object #0 \(circle\) <bndbox>: <xmax> is 'a', not a number"),
        (lambda r: (r / "ImageSets/Main/train.txt").write_text("000001  1\n000002 -1\n"),
         r"train.txt:1: expected one image id per line"),
        (lambda r: (r / "ImageSets/Main/train.txt").write_text("000001\n000001\n"),
         r"train.txt:2: image id '000001' is listed twice"),
    ],
    ids=["unknown-class", "malformed-xml", "missing-image", "missing-split-list", "missing-xml", "size-mismatch",
         "inverted-box", "non-numeric", "per-class-list", "duplicate-id"],
)
def test_errors_name_the_file_and_record(voc: Path, break_it, message: str) -> None:  # noqa: ANN001
    break_it(voc)
    with pytest.raises(DatasetFormatError, match=message):
        load_voc(voc, "train", CLASSES)


def test_image_from_the_id_when_filename_is_stale_and_size_from_the_image(voc: Path) -> None:
    """Exporters write stale <filename>s and <size> 0: the image is found by id and measured."""
    (voc / "JPEGImages/000003.jpg").rename(voc / "JPEGImages/000003.png")
    (voc / "Annotations/000003.xml").write_text(voc_xml("renamed.jpg", OBJECTS["000003"], (0, 0)))
    im = load_voc(voc, "train", CLASSES).gt["images"][2]
    assert (im["file_name"], im["width"], im["height"]) == ("JPEGImages/000003.png", W, H)


# --------------------------------------------------------------------------------------------
# Through a dataset YAML, as a user runs it: `bench run MODEL --dataset my.yaml`
# --------------------------------------------------------------------------------------------


def user_yaml(template: str, path: Path, **changes: object) -> Path:
    """The template of configs/datasets/templates/, copied and edited as its comments say."""
    data = yaml.safe_load((ROOT / "configs/datasets/templates" / template).read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data))
    return path


def test_templates_are_valid_and_outside_the_catalog() -> None:
    """The templates validate, and `bench list`/`bench data` (the catalog's datasets) do not see them:
    their `root` is a placeholder that exists nowhere."""
    cat = Catalog(ROOT / "configs")
    assert not {"voc", "coco"} & set(cat.dataset_files)
    voc, coco = (cat.dataset(str(ROOT / "configs/datasets/templates" / f)) for f in ("voc.yaml", "coco.yaml"))
    assert voc.views["detection"].format == "voc" and len(voc.classes) == 20
    assert coco.views["detection"].format == "coco" and len(coco.classes) == 80
    assert cat.dataset("shapes").views["detection"].format == "coco"  # shapes' detection view is its COCO view


def test_layout_keys_only_for_coco(tmp_path: Path) -> None:
    bad = user_yaml("voc.yaml", tmp_path / "bad.yaml", views={"detection": {"format": "voc", "path": ".",
                                                                            "images": "JPEGImages"}})
    with pytest.raises(ConfigError, match="images only apply to format coco"):
        Catalog(ROOT / "configs").dataset(str(bad))


def voc_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A project checkout with a VOC tree at datasets/myvoc (not DVC-versioned) and its YAML, entered as
    a user would (`root` is relative to the project root, which bench finds from the working directory)."""
    proj = copy_project(ROOT, tmp_path / "p", with_data=False)
    write_voc(proj / "datasets" / "myvoc")
    user_yaml("voc.yaml", proj / "my_voc.yaml", root="datasets/myvoc", classes=CLASSES)
    monkeypatch.chdir(proj)
    return proj, Path("my_voc.yaml")


def test_detection_task_over_a_voc_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The YAML resolves (native size measured from <size>), and the detection task yields the
    targets the XMLs say: xyxy boxes, labels 1..K, difficult objects left out of training."""
    import torch

    from bench.engine.detection import DetectionTask

    proj, path = voc_project(tmp_path, monkeypatch)
    cat = Catalog(proj / "configs")
    ds = cat.dataset(str(path))
    cfg = resolve_trial(cat.model("faster_rcnn"), ds, cat.profile("smoke"), 0).config
    assert (ds.name, cfg.native_image_size, cfg.train.image_size) == ("my_voc", W, W)
    task = DetectionTask(cfg, proj / ds.root)
    train = task.dataset("train", train=False)  # the training split unaugmented: the targets as read
    assert len(train) == 4
    image, target = train[1]  # 000002: a square and a difficult circle
    assert image.shape == (3, H, W) and float(image.min()) >= 0 and float(image.max()) <= 1
    assert torch.equal(target["boxes"], torch.tensor([[2.0, 2.0, 15.0, 15.0]]))
    assert target["labels"].tolist() == [2]
    image, target = train[0]
    assert torch.equal(target["boxes"], torch.tensor([[4.0, 5.0, 20.0, 18.0], [24.0, 9.0, 44.0, 35.0]]))
    assert target["labels"].tolist() == [1, 2]
    # The evaluator keeps the difficult GT (flagged), so the metrics can ignore it.
    val_gt = task.evaluator("val").gt
    assert [a["difficult"] for a in val_gt["annotations"]] == [0, 1, 0]
    assert task.label_to_cat == {1: 1, 2: 2}


@pytest.mark.slow  # a real smoke training run: 13 s alone, 26 s on two busy cores (measured)
def test_bench_run_plan_and_trial_on_a_voc_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `bench run faster_rcnn --dataset my_voc.yaml --profile smoke` does, without Ray: the plan
    (an unpinned dataset is keyed by its folder's md5) and the trial, trained and tested."""
    from bench.orchestration.driver import plan_run
    from bench.orchestration.trial import RunContext, run_trial

    proj, path = voc_project(tmp_path, monkeypatch)
    plan = plan_run(proj, Catalog(proj / "configs"), "faster_rcnn", str(path), "smoke", 0, None)
    (trial,) = plan.trials
    assert trial.config.trial_id == "faster_rcnn@my_voc#0"
    assert trial.dataset_version.startswith("unpinned-md5:")
    again = plan_run(proj, Catalog(proj / "configs"), "faster_rcnn", str(path), "smoke", 0, None)
    assert again.trials[0].key == trial.key  # stable while the files are
    (proj / "datasets/myvoc/ImageSets/Main/test.txt").write_text("000006\n000005\n")
    changed = plan_run(proj, Catalog(proj / "configs"), "faster_rcnn", str(path), "smoke", 0, None)
    assert changed.trials[0].dataset_version != trial.dataset_version  # an edit is a new dataset version
    result = run_trial(changed.trials[0].config, RunContext(str(proj), "voc", "sha"), lambda e: None)
    assert result.status == "ok", result.traceback
    assert result.test_images == 2 and result.dataset == "my_voc"
    assert {"mAP", "mAP_50", "mAP11", "mAPall"} <= set(result.metrics)


def test_coco_folder_in_cocos_own_layout(tmp_path: Path) -> None:
    """A COCO-format folder laid out as COCO 2017 (annotations/instances_<split>.json, images in <split>/,
    category ids with gaps), read through the COCO template's view keys."""
    import torch

    from bench.engine.detection import DetectionTask

    proj = copy_project(ROOT, tmp_path / "p", with_data=False)
    root = proj / "datasets" / "mycoco"
    (root / "annotations").mkdir(parents=True)
    cats = [{"id": 3, "name": "circle"}, {"id": 7, "name": "square"}]
    for split, ids in (("train2017", ["000001", "000002", "000003"]), ("val2017", ["000005", "000006"])):
        (root / split).mkdir()
        images, anns = [], []
        for k, voc_id in enumerate(ids):
            draw(OBJECTS[voc_id], k).save(root / split / f"{voc_id}.jpg")
            images.append({"id": 100 + k, "file_name": f"{voc_id}.jpg", "width": W, "height": H})
            for name, b, _ in OBJECTS[voc_id]:
                box = voc_box_to_coco(b, W, H)
                anns.append({"id": len(anns) + 1, "image_id": 100 + k, "category_id": 3 if name == "circle" else 7,
                             "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
        doc = {"images": images, "annotations": anns, "categories": cats}
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    path = user_yaml("coco.yaml", proj / "my_coco.yaml", root=str(root), classes=CLASSES)  # an absolute root
    cat = Catalog(proj / "configs")
    ds = cat.dataset(str(path))
    cfg = resolve_trial(cat.model("faster_rcnn"), ds, cat.profile("smoke"), 0).config
    assert cfg.native_image_size == W
    task = DetectionTask(cfg, root)
    image, target = task.dataset("train", train=False)[0]  # unaugmented
    assert image.shape == (3, H, W)
    assert torch.equal(target["boxes"], torch.tensor([[4.0, 5.0, 20.0, 18.0], [24.0, 9.0, 44.0, 35.0]]))
    assert target["labels"].tolist() == [1, 2]  # category ids 3, 7 -> labels 1, 2
    assert task.label_to_cat == {1: 3, 2: 7}
    assert len(task.evaluator("test").gt["images"]) == 2
    # Without the `images:` key the first file_name is looked up beside annotations/: the error says so.
    with pytest.raises(DatasetFormatError, match=r"000001.jpg.*set the view's `images:`"):
        load_coco(root, "train2017", CLASSES, annotations="annotations/instances_{split}.json")


def test_cli_on_an_unversioned_voc_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`bench data` names an unversioned dataset rather than failing on it; `bench config` resolves it."""
    from typer.testing import CliRunner

    from bench.cli.main import app

    voc_project(tmp_path, monkeypatch)
    res = CliRunner().invoke(app, ["data", "status", "my_voc.yaml"])
    assert res.exit_code == 2 and "dataset 'my_voc.yaml' is not versioned" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(app, ["config", "faster_rcnn", "--dataset", "my_voc.yaml", "--profile", "smoke"])
    assert res.exit_code == 0, res.output
    assert "format: voc" in res.output and f"{W} px native (measured from the first training image" in res.output
