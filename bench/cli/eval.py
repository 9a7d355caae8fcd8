"""``bench eval``: compute metrics from prediction files on disk and write them as JSON.

Every command prints a table and writes ``--out``; bad input exits with code 2 and a one-line
message naming the bad record or file (no traceback).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from bench.metrics import MetricInputError

app = typer.Typer(
    help="Evaluate predictions against ground truth (detection, segmentation, classification) "
    "and write the metrics as JSON.\n\n"
    "Example: bench eval detection --gt instances_val.json --pred results.json --out metrics.json",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",  # reflow paragraphs; indented blocks stay verbatim
)


class InputFailure(Exception):
    """A user-facing input problem (reported in one line, exit code 2)."""


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn input problems into ``error: ...`` on stderr and exit code 2, without a traceback."""
    try:
        yield
    except (MetricInputError, InputFailure, OSError, json.JSONDecodeError, ValueError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        typer.echo(f"error: {msg}", err=True)
        raise typer.Exit(code=2) from None


def _load_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputFailure(f"{what} file not found: {path}") from None
    except json.JSONDecodeError as e:
        raise InputFailure(f"{what} file {path} is not valid JSON: {e}") from None


def _with_file(err: MetricInputError, gt: Path, pred: Path) -> InputFailure:
    """The metric engine's message (``prediction #3 (image_id=7): score is NaN``) with the file it is about
    and the fix: the engine sees records, not files."""
    msg = str(err)
    if msg.startswith("prediction"):
        return InputFailure(f"{pred}: {msg}; every prediction needs a finite score and box (fix or drop that "
                            "record, e.g. a NaN from a diverged model)")
    if msg.startswith(("ground truth", "ground-truth", "category")):
        return InputFailure(f"{gt}: {msg}; fix that ground-truth record")
    return InputFailure(msg)


def _write(result: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def _print_table(title: str, headline: dict[str, Any], columns: list[str],
                 rows: dict[str, dict[str, Any]], out: Path) -> None:
    """Headline numbers, then one row per class with ``columns``."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    top = Table(title=title, show_header=True)
    top.add_column("metric")
    top.add_column("value", justify="right")
    for k, v in headline.items():
        top.add_row(k, _fmt(v))
    console.print(top)
    if rows:
        per = Table(title="per class", show_header=True)
        per.add_column("class")
        for c in columns:
            per.add_column(c, justify="right")
        for name, r in rows.items():
            per.add_row(str(name), *(_fmt(r.get(c)) for c in columns))
        console.print(per)
    console.print(f"wrote {out}")


def _run(fn: Callable[[], None]) -> None:
    with _user_errors():
        fn()


@app.command(no_args_is_help=True)
def detection(
    gt: Annotated[Path, typer.Option("--gt", help="COCO ground-truth JSON.")],
    pred: Annotated[Path, typer.Option("--pred", help="COCO results JSON (list).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the metrics JSON.")],
    iou_type: Annotated[str, typer.Option("--iou-type", help="bbox or segm.")] = "bbox",
    voc_iou: Annotated[float, typer.Option("--voc-iou", help="IoU threshold (strict >) for VOC AP.")] = 0.5,
    voc_legacy_coords: Annotated[
        bool, typer.Option("--voc-legacy-coords", help="VOC devkit +1 pixel convention for box sizes.")
    ] = False,
) -> None:
    """COCO mAP/AR (pycocotools-exact) and VOC 11-point / all-point mAP.

    GT is a COCO dataset JSON (images, annotations, categories); predictions are a COCO results
    list of {image_id, category_id, bbox, score} with bbox = x, y, width, height, plus an RLE
    "segmentation" for --iou-type segm.  null marks an undefined number (no GT in that range).

    Example:

        bench eval detection --gt instances_val2017.json --pred detections.json --out metrics.json

        bench eval detection --gt gt.json --pred segm.json --iou-type segm --voc-iou 0.7 --out m.json
    """

    def go() -> None:
        from bench.metrics.detection import COCO_STAT_KEYS, evaluate_coco

        if iou_type not in ("bbox", "segm"):
            raise InputFailure(f"--iou-type must be bbox or segm, got {iou_type!r}")
        try:
            res = evaluate_coco(_load_json(gt, "ground truth"), _load_json(pred, "prediction"),
                                iou_type=iou_type, voc_iou=voc_iou, voc_legacy_coords=voc_legacy_coords)
        except MetricInputError as e:
            raise _with_file(e, gt, pred) from None
        _write(res, out)
        head = {k: res[k] for k in (*COCO_STAT_KEYS, "mAP11", "mAPall")}
        _print_table(f"detection ({iou_type})", head, ["num_gt", "num_pred", "AP", "AP50", "AP11", "APall"],
                     res["per_class"], out)

    _run(go)


def _read_label_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im)
    if arr.ndim != 2:
        raise InputFailure(f"{path}: expected a single-channel label PNG, got shape {arr.shape}")
    return arr.astype(np.int64)


@app.command(no_args_is_help=True)
def segmentation(
    gt: Annotated[Path, typer.Option("--gt", help="Directory of ground-truth label PNGs.")],
    pred: Annotated[Path, typer.Option("--pred", help="Directory of predicted label PNGs, same file names.")],
    num_classes: Annotated[int, typer.Option("--num-classes", help="Number of classes K (labels 0..K-1).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the metrics JSON.")],
    ignore_index: Annotated[int, typer.Option("--ignore-index", help="GT label value to skip.")] = 255,
    reduction: Annotated[str, typer.Option("--reduction", help="dataset or per_image.")] = "dataset",
) -> None:
    """Dice, Jaccard (IoU), sensitivity, specificity, precision, F1 and pixel accuracy.

    PNGs are paired by file name; every GT file needs a prediction of the same size and every
    prediction needs a GT file.  Headline numbers are macro means over classes; *_fg excludes
    class 0.

    Example:

        bench eval segmentation --gt data/val/masks --pred runs/unet/pred --num-classes 21 --out m.json
    """

    def go() -> None:
        from bench.evaluators.segmentation import SegmentationEvaluator

        for d, what in ((gt, "--gt"), (pred, "--pred")):
            if not d.is_dir():
                raise InputFailure(f"{what} {d} is not a directory")
        gt_files = sorted(p.name for p in gt.glob("*.png"))
        pred_files = sorted(p.name for p in pred.glob("*.png"))
        if not gt_files:
            raise InputFailure(f"no .png files in {gt}")
        missing = sorted(set(gt_files) - set(pred_files))
        if missing:
            raise InputFailure(f"missing prediction {pred / missing[0]} for ground truth {gt / missing[0]}"
                               + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        extra = sorted(set(pred_files) - set(gt_files))
        if extra:
            raise InputFailure(f"prediction {pred / extra[0]} has no ground truth in {gt}")
        ev = SegmentationEvaluator(num_classes, ignore_index)
        for name in gt_files:
            t, p = _read_label_png(gt / name), _read_label_png(pred / name)
            if t.shape != p.shape:
                raise InputFailure(
                    f"{name}: prediction size {p.shape[::-1]} != ground truth size {t.shape[::-1]} (w, h)"
                )
            try:
                ev.update(p[None], t[None])
            except MetricInputError as e:
                raise InputFailure(f"{name}: {str(e).removeprefix('image #0: ')}") from None
        res = ev.compute(reduction)
        res["num_images"] = len(gt_files)
        _write(res, out)
        head = {k: v for k, v in res.items() if k not in ("per_class", "spec")}
        cols = ["dice", "jaccard", "sensitivity", "specificity", "precision", "f1"]
        _print_table("semantic segmentation", head, cols, res["per_class"], out)

    _run(go)


def _read_csv(path: Path, what: str) -> tuple[list[str], list[list[str]]]:
    if not path.is_file():
        raise InputFailure(f"{what} file not found: {path}")
    with path.open(newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows:
        raise InputFailure(f"{path}: empty CSV")
    return [h.strip() for h in rows[0]], rows[1:]


def _blame_sample(msg: str, ids: list[str], gt: Path, pred: Path, line_of: dict[str, int]) -> InputFailure:
    """``sample #i: ...`` of the metric engine as the file, line and id it came from, with the fix."""
    if not msg.startswith("sample #"):
        return InputFailure(msg)
    sample_id = ids[int(msg.split("#")[1].split(":")[0])]
    what = msg.split(":", 1)[1].strip()
    if "NaN" in what:
        return InputFailure(f"{pred} line {line_of[sample_id]}: id {sample_id!r}: {what}; every score must be a "
                            "finite number (fix or drop that row)")
    return InputFailure(f"{gt}: id {sample_id!r}: {what}; labels are class indices 0..C-1")


@app.command(no_args_is_help=True)
def classification(
    gt: Annotated[Path, typer.Option("--gt", help="LABELS.csv: header 'id,label'.")],
    pred: Annotated[
        Path, typer.Option("--pred", help="SCORES.csv with header 'id,score_0,...,score_{C-1}'.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Where to write the metrics JSON.")],
) -> None:
    """Top-1/top-5 accuracy, per-class and macro/micro precision, recall, F1, confusion matrix.

    LABELS.csv: header "id,label", one row per sample, label = class index 0..C-1.

    SCORES.csv: header "id,score_0,...,score_{C-1}", one row per sample (logits or probabilities).

    Rows pair by id; every id appears once in each file.  top5 is null when C < 5.

    Example (3 classes):

        $ cat labels.csv
        id,label
        img1,2
        img2,0
        $ cat scores.csv
        id,score_0,score_1,score_2
        img1,0.1,0.2,0.7
        img2,0.8,0.1,0.1
        $ bench eval classification --gt labels.csv --pred scores.csv --out metrics.json
    """

    def go() -> None:
        from bench.evaluators.classification import ClassificationEvaluator

        lh, lrows = _read_csv(gt, "labels")
        if lh != ["id", "label"]:
            raise InputFailure(f"{gt}: header must be 'id,label', got {','.join(lh)!r}")
        sh, srows = _read_csv(pred, "scores")
        c = len(sh) - 1
        if c < 1 or sh != ["id", *(f"score_{i}" for i in range(c))]:
            raise InputFailure(f"{pred}: header must be 'id,score_0,...,score_{{C-1}}', got {','.join(sh)!r}")
        labels: dict[str, int] = {}
        for i, r in enumerate(lrows, start=2):
            if len(r) != 2:
                raise InputFailure(f"{gt} line {i}: expected 2 fields, got {len(r)}")
            if r[0] in labels:
                raise InputFailure(f"{gt} line {i}: duplicate id {r[0]!r}")
            try:
                labels[r[0]] = int(r[1])
            except ValueError:
                raise InputFailure(f"{gt} line {i} (id={r[0]!r}): label {r[1]!r} is not an integer") from None
        scores: dict[str, list[float]] = {}
        for i, r in enumerate(srows, start=2):
            if len(r) != c + 1:
                raise InputFailure(f"{pred} line {i}: expected {c + 1} fields, got {len(r)}")
            if r[0] in scores:
                raise InputFailure(f"{pred} line {i}: duplicate id {r[0]!r}")
            if r[0] not in labels:
                raise InputFailure(f"{pred} line {i}: id {r[0]!r} has no label in {gt}")
            try:
                scores[r[0]] = [float(v) for v in r[1:]]
            except ValueError:
                raise InputFailure(f"{pred} line {i} (id={r[0]!r}): non-numeric score") from None
        missing = [k for k in labels if k not in scores]
        if missing:
            raise InputFailure(f"id {missing[0]!r} from {gt} has no scores in {pred}")
        ids = list(labels)
        s = np.array([scores[k] for k in ids], dtype=np.float64).reshape(len(ids), c)
        y = np.array([labels[k] for k in ids], dtype=np.int64)
        ev = ClassificationEvaluator(c)
        try:
            ev.update(s, y)
        except MetricInputError as e:
            raise _blame_sample(str(e), ids, gt, pred, line_of={k: i for i, k in enumerate(scores, start=2)}) from None
        res = ev.compute()
        _write(res, out)
        head = {k: v for k, v in res.items() if k not in ("per_class", "confusion_matrix", "spec")}
        _print_table("classification", head, ["precision", "recall", "f1", "support"], res["per_class"], out)

    _run(go)
