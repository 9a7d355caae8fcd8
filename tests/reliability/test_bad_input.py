"""Bad input, case by case: every error names the file or record and says the fix.

One table: each row writes a small broken input under ``tmp_path`` and runs the real code path
(a format adapter, a torch dataset as training reads it, ``bench eval``, transfer, the results
store, the config loader, the pin check).  Then ``bench data check`` on a folder with several
problems reports them all, and a trial on bad data fails with the reason while another succeeds.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from bench.cli.main import app
from tests.datasets.test_masks import write_masks
from tests.datasets.test_voc import voc_xml, write_voc

CLASSES = ["circle", "square"]
SIDE = 16  # px: every synthetic image is SIDE x SIDE


def png(path: Path, side: int = SIDE, mode: str = "RGB", value: int = 0) -> Path:
    """A small image (noise in RGB, a constant ``value`` in L) at ``path``; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(path.name))
    if mode == "RGB":
        Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(path)
    else:
        Image.fromarray(np.full((side, side), value, np.uint8), mode="L").save(path)
    return path


def truncate(path: Path) -> Path:
    """Cut the file to half its bytes, as an interrupted copy leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def coco_doc(n: int = 3) -> dict[str, Any]:
    """A valid COCO dict: ``n`` images ``img{k}.png`` of SIDE px, one box each, categories 1..2."""
    images = [{"id": k + 1, "file_name": f"img{k}.png", "width": SIDE, "height": SIDE} for k in range(n)]
    anns = [{"id": k + 1, "image_id": k + 1, "category_id": 1 + k % 2, "bbox": [2, 3, 8, 6], "area": 48, "iscrowd": 0}
            for k in range(n)]
    return {"images": images, "annotations": anns,
            "categories": [{"id": k + 1, "name": c} for k, c in enumerate(CLASSES)]}


def coco_tree(root: Path, edit: Callable[[dict[str, Any]], None] = lambda d: None, split: str = "train") -> Path:
    """``root/annotations/<split>.json`` (the ``coco`` format's default layout) and its images; ``edit``
    breaks the dict before it is written."""
    doc = coco_doc()
    for im in doc["images"]:
        png(root / im["file_name"])
    edit(doc)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / f"{split}.json").write_text(json.dumps(doc))
    return root


def error_of(fn: Callable[[], Any], exc: type[BaseException] = Exception) -> str:
    """The message ``fn`` raises (it must raise ``exc``)."""
    with pytest.raises(exc) as info:
        fn()
    return str(info.value)


def cli_error(*args: str) -> str:
    """``bench ARGS`` output; the command must fail with exit code 2 (bad input) and no traceback."""
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    return res.output


# -- the cases: each returns the error text of the real code path -----------------------------------------


def coco_error(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], str]:
    """A COCO split broken by ``edit``, read by the ``coco`` adapter (as training and `bench data check` do)."""
    def case(tmp: Path) -> str:
        from bench.datasets.formats import DatasetFormatError, load_coco

        root = coco_tree(tmp / "coco", edit)
        return error_of(lambda: load_coco(root, "train", CLASSES), DatasetFormatError)
    return case


def detection_item_error(tmp: Path, breaker: Callable[[Path], Any], ext: str = ".png") -> str:
    """Item 1 of the detection dataset training builds, after ``breaker`` damaged its image file."""
    from bench.datasets.formats import DatasetFormatError, load_coco
    from bench.engine.data import DetectionDataset

    def with_ext(d: dict[str, Any]) -> None:
        for im in d["images"]:
            im["file_name"] = im["file_name"].replace(".png", ext)

    root = coco_tree(tmp / "coco", with_ext)
    if ext != ".png":
        for im in coco_doc()["images"]:
            Image.open(root / im["file_name"]).save(root / im["file_name"].replace(".png", ext), quality=95)
    split = load_coco(root, "train", CLASSES)
    breaker(root / f"img1{ext}")
    return error_of(lambda: DetectionDataset(split.gt, split.image_root)[1], DatasetFormatError)


def classification_item_error(tmp: Path, breaker: Callable[[Path], Any]) -> str:
    """Item 0 of an image-folder split as training reads it, after ``breaker`` damaged that file."""
    from bench.datasets.formats import DatasetFormatError, load_imagefolder
    from bench.engine.data import ClassificationDataset

    for cls in CLASSES:
        png(tmp / "folder" / "train" / cls / "a.png")
    split = load_imagefolder(tmp / "folder", "train", CLASSES)
    breaker(split.paths[0])
    ds = ClassificationDataset(split.paths, split.labels, SIDE, ())
    return error_of(lambda: ds[0], DatasetFormatError)


def voc_error(objects: list[tuple[str, tuple[float, ...], int]]) -> Callable[[Path], str]:
    """The VOC tree of tests/datasets/test_voc.py with image 000003's objects replaced."""
    def case(tmp: Path) -> str:
        from bench.datasets.formats import DatasetFormatError, load_voc

        root = write_voc(tmp / "VOC")
        (root / "Annotations/000003.xml").write_text(voc_xml("000003.jpg", objects))
        return error_of(lambda: load_voc(root, "train", CLASSES), DatasetFormatError)
    return case


def masks_item_error(tmp: Path, bad: tuple[str, int, int] | None = None, small_mask: bool = False) -> str:
    """Pair 0 of a masks training split (tests/datasets/test_masks.py), a bad label or a too small label map."""
    from bench.datasets.formats import DatasetFormatError, load_masks
    from bench.engine.data import SegmentationDataset

    write_masks(tmp / "m", {"train": 2}, bad)
    if small_mask:
        png(tmp / "m/masks/train/img0.png", side=SIDE, mode="L")  # the image is 32 px
    split = load_masks(tmp / "m", "train", ["disc"])
    ds = SegmentationDataset(split.images, split.masks, 32, (), num_classes=2)
    return error_of(lambda: ds[0], DatasetFormatError)


def eval_detection_nan(tmp: Path) -> str:
    gt = tmp / "gt.json"
    gt.write_text(json.dumps(coco_doc()))
    preds = [{"image_id": 1, "category_id": 1, "bbox": [2, 3, 8, 6], "score": 0.9},
             {"image_id": 2, "category_id": 2, "bbox": [2, 3, 8, 6], "score": float("nan")}]
    (tmp / "dets.json").write_text(json.dumps(preds))  # json writes NaN, as numpy-based exporters do
    return cli_error("eval", "detection", "--gt", str(gt), "--pred", str(tmp / "dets.json"), "--out",
                     str(tmp / "m.json"))


def eval_classification_nan(tmp: Path) -> str:
    (tmp / "labels.csv").write_text("id,label\na,0\nb,1\n")
    (tmp / "scores.csv").write_text("id,score_0,score_1\na,0.9,0.1\nb,nan,0.5\n")
    return cli_error("eval", "classification", "--gt", str(tmp / "labels.csv"), "--pred", str(tmp / "scores.csv"),
                     "--out", str(tmp / "m.json"))


def yaml_typo(tmp: Path) -> str:
    from bench.config.catalog import Catalog
    from bench.config.loader import ConfigError
    from tests.conftest import ROOT

    path = tmp / "mine.yaml"
    path.write_text("root: x\nclasses: [a]\nviews:\n  detection: {format: coco, path: ., annotatons: a.json}\n")
    return error_of(lambda: Catalog(ROOT / "configs").dataset(str(path)), ConfigError)


def yaml_typo_in_include(tmp: Path) -> str:
    """A typo in the file a model YAML includes is reported in that file, not in the including one."""
    from bench.config.catalog import Catalog
    from bench.config.loader import ConfigError

    models = tmp / "configs" / "models"
    models.mkdir(parents=True)
    (models / "base.yaml").write_text("train: {lr: 0.01}\nprofiles: {cpu: {train: {epohcs: 3}}}\n")
    (models / "mine.yaml").write_text("include: base.yaml\nmodel: unet\n")
    return error_of(lambda: Catalog(tmp / "configs").model("mine"), ConfigError)


def md5_mismatch(tmp: Path) -> str:
    """A pinned folder edited after `dvc add`: the pin check names the dataset, the pin and the fix."""
    from bench.datasets.versioning import DataVersionError, dir_md5, read_pin, verify

    data = tmp / "datasets" / "tiny"
    png(data / "a.png")
    (tmp / "datasets.dvc").write_text(yaml.safe_dump({"outs": [{"path": "datasets/tiny", "md5": dir_md5(data)}]}))
    png(data / "a.png", side=SIDE + 1)
    return error_of(lambda: verify(tmp, read_pin(tmp / "datasets.dvc", "datasets/tiny", tmp), "tiny"),
                    DataVersionError)


def transfer_from_another_model(tmp: Path) -> str:
    """A resnet18 checkpoint (as the trainer writes it, with its config) given to a simple_cnn trial."""
    import torch

    from bench.config.schema import TransferConfig
    from bench.engine.transfer import TransferError, apply_transfer
    from bench.models import build_model

    ckpt = tmp / "runs" / "best.pt"
    ckpt.parent.mkdir()
    torch.save({"model": build_model("resnet18", 3, 32, {}).state_dict(), "epoch": 1,
                "config": {"model": "resnet18", "builder": "resnet18"}}, ckpt)
    model = build_model("simple_cnn", 3, 32, {})
    cfg = TransferConfig(mode="frozen", weights=str(ckpt))
    return error_of(lambda: apply_transfer(model, cfg, tmp, "simple_cnn"), TransferError)


def newer_store(tmp: Path) -> str:
    from bench.results.store import ResultsStore, StoreVersionError

    path = tmp / "results.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    return error_of(lambda: ResultsStore(path), StoreVersionError)


def _set(d: dict[str, Any], section: str, index: int, **values: Any) -> None:
    d[section][index].update(values)


def resume_from_another_model(tmp: Path) -> str:
    """A trial's checkpoint folder holding another model's ``last.pt`` (a reused --checkpoint-dir)."""
    from bench.engine.checkpoint import LAST, CheckpointDir, CheckpointError, check_resumable

    ckpt = CheckpointDir(str(tmp / "ckpt"))
    ckpt.makedirs()
    ckpt.save({"model": {}, "epoch": 2, "config": {"model": "resnet18"}, "loop": {}}, is_best=False)
    with pytest.raises(CheckpointError) as err:
        check_resumable(ckpt.load(LAST), ckpt.path(LAST), "simple_cnn", "simple_cnn@shapes#0")
    return str(err.value)


CASES: list[tuple[str, Callable[[Path], str], list[str]]] = [
    ("missing-image", lambda t: detection_item_error(t, Path.unlink),
     [r"coco/img1\.png: image file missing; restore it"]),
    ("truncated-png", lambda t: classification_item_error(t, truncate),
     [r"train/circle/a\.png: cannot decode the image .*truncated or corrupt: re-export it"]),
    ("truncated-jpeg", lambda t: detection_item_error(t, truncate, ".jpg"),
     [r"coco/img1\.jpg: cannot decode the image .*truncated or corrupt: re-export it"]),
    ("zero-byte-file", lambda t: classification_item_error(t, lambda p: p.write_bytes(b"")),
     [r"train/circle/a\.png: empty file \(0 bytes\); re-export the image"]),
    ("zero-width-record", coco_error(lambda d: _set(d, "images", 1, width=0)),
     [r"train\.json: image id=2 \(img1\.png\): width is 0; set `width` and `height`"]),
    ("coco-box-outside", coco_error(lambda d: _set(d, "annotations", 1, bbox=[10, 3, 12, 6])),
     [r"train\.json: annotation id=2 \(image id=2\): bbox \[10, 3, 12, 6\] lies outside the 16x16 image img1\.png; "
      r"fix the box"]),
    ("coco-negative-size", coco_error(lambda d: _set(d, "annotations", 0, bbox=[10, 3, -4, 6])),
     [r"train\.json: annotation id=1 \(image id=1\): bbox \[10, 3, -4, 6\] has a negative width.*fix the box"]),
    ("voc-box-outside", voc_error([("circle", (10, 10, 60, 30), 0)]),
     [r"Annotations/000003\.xml: object #0 \(circle\) box .* lies outside the 48x40 image; fix <bndbox>"]),
    ("voc-negative-size", voc_error([("circle", (30, 9, 10, 20), 0)]),
     [r"Annotations/000003\.xml: object #0 \(circle\): xmax < xmin .*fix the box"]),
    ("coco-unknown-category", coco_error(lambda d: _set(d, "annotations", 2, category_id=9)),
     [r"train\.json: annotation id=3 \(image id=3\): unknown category_id 9 .*add the category"]),
    ("voc-unknown-class", voc_error([("triangle", (10, 10, 20, 20), 0)]),
     [r"Annotations/000003\.xml: object #0 has class 'triangle'.*add it to `classes:`"]),
    ("mask-unknown-class", lambda t: masks_item_error(t, bad=("train", 0, 7)),
     [r"masks/train/img0\.png: label values \[7\] are not classes.*add the missing class names"]),
    ("no-annotations", coco_error(lambda d: d.update(annotations=[])),
     [r"train\.json: no annotations; a detection split needs ground-truth boxes"]),
    ("no-images", coco_error(lambda d: d.update(images=[], annotations=[])),
     [r"train\.json: no images; the split's `images` list is empty"]),
    ("mask-wrong-size", lambda t: masks_item_error(t, small_mask=True),
     [r"masks/train/img0\.png: label map is 16x16 but its image .*images/train/img0\.png is 32x32; .*re-export"]),
    ("duplicate-image-id", coco_error(lambda d: _set(d, "images", 2, id=1)),
     [r"train\.json: image id=1 \(img2\.png\): duplicate image id \(also img0\.png\).*renumber"]),
    ("nan-detection-prediction", eval_detection_nan,
     [r"dets\.json: prediction #1 \(image_id=2\): score is NaN; every prediction needs a finite score"]),
    ("nan-classification-score", eval_classification_nan,
     [r"scores\.csv line 3: id 'b': scores contain NaN or inf; every score must be a finite number"]),
    ("yaml-typo", yaml_typo,
     [r"mine\.yaml: unknown key 'views\.detection\.annotatons'; did you mean 'annotations'\? valid keys: annotations"]),
    ("yaml-typo-in-include", yaml_typo_in_include,
     [r"models/base\.yaml: unknown key 'profiles\.cpu\.train\.epohcs'; did you mean 'epochs'"]),
    ("md5-mismatch", md5_mismatch,
     [r"datasets/tiny: dataset 'tiny' does not match datasets\.dvc: pinned md5", r"bench data pull tiny --force"]),
    ("transfer-from-another-model", transfer_from_another_model,
     [r"runs/best\.pt \(written by model 'resnet18'\) is a checkpoint of another model than this trial's model "
      r"'simple_cnn'; give a checkpoint written by simple_cnn"]),
    ("resume-from-another-model", resume_from_another_model,
     [r"ckpt/last\.pt: this checkpoint was written by model 'resnet18', not 'simple_cnn'.*delete it"]),
    ("newer-results-store", newer_store,
     [r"results\.db: results store schema version 99 was written by a newer bench .*upgrade bench"]),
]


@pytest.mark.parametrize(("build", "patterns"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_names_the_file_and_the_fix(tmp_path: Path, build: Callable[[Path], str], patterns: list[str]
                                              ) -> None:
    message = build(tmp_path)
    for pattern in patterns:
        assert re.search(pattern, message), f"{pattern!r} not in {message!r}"


def test_an_unversioned_store_is_stamped_and_still_read(tmp_path: Path) -> None:
    """A store written before the schema version was kept (user_version 0) opens as before and is stamped."""
    from bench.results.store import SCHEMA_VERSION, ResultsStore
    from tests.results.helpers import record

    old = ResultsStore(tmp_path / "r.db")
    old.start_run("r1", "all", "cpu", "sha", "code")
    old.add("r1", record(key="k1"))
    old.db.execute("PRAGMA user_version = 0")
    old.close()
    again = ResultsStore(tmp_path / "r.db")
    assert again.version == SCHEMA_VERSION and again.cached("k1") is not None


def broken_coco_yaml(tmp: Path) -> Path:
    """A COCO dataset YAML (not versioned) whose train split has five problems and whose val split has one."""
    def edit(d: dict[str, Any]) -> None:
        d["annotations"][0]["category_id"] = 9  # unknown category
        d["annotations"][1]["bbox"] = [12, 3, 10, 6]  # outside the image
        d["images"].append({"id": 2, "file_name": "img9.png", "width": SIDE, "height": SIDE})  # duplicate id

    root = coco_tree(tmp / "data", lambda d: d.update(annotations=[]), split="val")  # a split without annotations
    coco_tree(root, split="test")
    coco_tree(root, edit)
    (root / "img2.png").unlink()  # missing image (in every split: each lists it)
    truncate(root / "img1.png")  # undecodable image
    path = tmp / "broken.yaml"
    path.write_text(yaml.safe_dump({"root": str(root), "dvc_file": None, "classes": CLASSES,
                                    "views": {"detection": {"format": "coco", "path": "."}}}))
    return path


def test_data_check_reports_every_problem(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["data", "check", str(broken_coco_yaml(tmp_path))])
    assert res.exit_code == 1, res.output
    lines = res.output.splitlines()
    problems = lines[:-2]  # then one summary line for the dataset and the total
    for pattern in ("annotation id=1 (image id=1): unknown category_id 9", "bbox [12, 3, 10, 6] lies outside",
                    "image id=2 (img9.png): duplicate image id", "img2.png: image file missing",
                    "img1.png: cannot decode the image", "val.json: no annotations"):
        assert any(pattern in line for line in problems), (pattern, res.output)
    assert len(problems) >= 6
    assert lines[-1] == f"{len(problems)} problems in 1 dataset"
    assert "Traceback" not in res.output


def test_data_check_passes_on_the_shipped_data(project: Path) -> None:
    """No arguments: every catalog dataset; one that was never pulled (mnist here) is a note, not a problem."""
    res = CliRunner().invoke(app, ["data", "check"])
    assert res.exit_code == 0, res.output
    assert "shapes: " in res.output and "0 problems in 3 datasets" in res.output
    if not (project / "datasets" / "mnist").is_dir():
        assert "mnist: not checked (" in res.output and "run `bench data pull mnist`" in res.output
        named = CliRunner().invoke(app, ["data", "check", "mnist"])
        assert named.exit_code == 1 and "not present: run `bench data pull mnist`" in named.output


def test_help_of_data_stays_torch_free() -> None:
    from tests.conftest import heavy_imports_after

    code = ("from bench.cli.main import app\nfor a in (['--help'], ['data', '--help'], ['data', 'check', '--help']):\n"
            "    try:\n        app(a)\n    except SystemExit:\n        pass")
    assert heavy_imports_after(code, ("torch", "ray", "mlflow")) == []


def test_a_trial_on_bad_data_fails_with_the_reason_and_another_succeeds(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Two trials of the threshold baseline (no training; quick): one on a masks folder whose label map has the
    wrong size fails with that message, the other, on good data, is ok."""
    from bench.config.catalog import Catalog, resolve_trial
    from bench.orchestration.trial import RunContext, run_trial
    from tests.datasets.test_masks import masks_project

    results = {}
    for kind in ("bad", "good"):
        (tmp_path / kind).mkdir()
        proj, path = masks_project(tmp_path / kind, monkeypatch)
        if kind == "bad":
            png(proj / "datasets/mine/masks/test/img2.png", side=SIDE, mode="L")
        cat = Catalog(proj / "configs")
        cfg = resolve_trial(cat.model("threshold_otsu"), cat.dataset(path), cat.profile("smoke"), 0).config
        results[kind] = run_trial(cfg, RunContext(str(proj), "t", "sha"), lambda e: None)
    bad, good = results["bad"], results["good"]
    assert bad.status == "failed" and good.status == "ok", good.traceback
    assert "DatasetFormatError" in bad.error and "masks/test/img2.png: label map is 16x16" in bad.error
    assert "re-export it at that size" in bad.error
