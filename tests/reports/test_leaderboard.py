"""Leaderboard tables, Markdown and static HTML from typed records: aggregation, order, status, Pareto."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from bench.reports.leaderboard import (
    ReportEntry,
    ReportMeta,
    build_row,
    build_tables,
    headers,
    pareto_front,
    seed_stat,
    sort_rows,
    to_html,
    to_markdown,
    write_report,
)
from bench.results.record import Baseline, Efficiency, Interval, Timings, TrainingEnd
from tests.reports.records import detection_per_class, history, record

META = ReportMeta("Leaderboard: test", "synthetic records")


def entries(*recs: object, run: str = "run-1", cached: bool = False) -> list[ReportEntry]:
    return [ReportEntry(r, run, cached) for r in recs]  # type: ignore[arg-type]


def md_rows(md: str) -> dict[str, list[str]]:
    """Model -> its cells, from every Markdown table row (the last table wins for a model in two)."""
    out = {}
    for line in md.splitlines():
        if line.startswith("| ") and not line.startswith("| model |"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            out[cells[0]] = cells
    return out


def majority(p_value: float) -> Baseline:
    return Baseline(name="majority class", metric="top1", score=0.34, test="binomial, one-sided", p_value=p_value,
                    significant=p_value < 0.05, alpha=0.05)


# ---- aggregation over seeds ----------------------------------------------------------------------------


def test_seeds_give_their_mean_and_the_t_interval_of_the_mean() -> None:
    recs = [record("resnet18", metrics={"top1": v, "top5": 1.0}, seed=s) for s, v in enumerate((0.80, 0.84, 0.90))]
    row = build_tables(entries(*recs))[0].rows[0]
    top1 = row.metrics["top1"]
    # By hand: mean 0.846667; s = sqrt(((-.046667)^2 + (-.006667)^2 + .053333^2) / 2) = 0.050332;
    # t_{0.975, 2} = 4.302653; half-width = 4.302653 * 0.050332 / sqrt(3) = 0.125031.
    assert top1.method == "t" and top1.n == 3 and row.seeds == 3
    assert top1.mean == pytest.approx(0.846667, abs=1e-6)
    assert (top1.high - top1.low) / 2 == pytest.approx(0.125031, abs=1e-5)
    assert top1.low == pytest.approx(0.846667 - 0.125031, abs=1e-5)
    assert row.metrics["top5"].text() == "1.0000 ± 0.0000"  # no spread across seeds
    cells = md_rows(to_markdown(build_tables(entries(*recs)), META))["resnet18"]
    assert cells[1] == "0.8467 ± 0.1250" and cells[4] == "3"  # model, top1, top5, macro_f1, seeds
    assert "t-interval" in to_markdown([], META)  # the legend says what ± is


def test_config_variants_of_one_model_are_separate_rows_not_seeds() -> None:
    """Two losses on unet (``--set train.loss.name=dice``) are two experiments: two rows named by what differs;
    seeds of one config (seed, resources apart) stay one row."""
    def seg(seed: int, loss: str, jac: float, cpus: float = 1.0) -> object:
        config = {"model": "unet", "seed": seed, "resources": {"num_cpus": cpus},
                  "train": {"lr": 0.003, "loss": {"name": loss, "params": {}}}}
        return record("unet", "semantic_segmentation", {"jaccard": jac}, seed=seed, config=config)

    recs = [seg(0, "ce", 0.70), seg(1, "ce", 0.72, cpus=2.0), seg(0, "dice", 0.60)]
    rows = {r.model: r for r in build_tables(entries(*recs))[0].rows}
    assert set(rows) == {'unet [train.loss.name="ce"]', 'unet [train.loss.name="dice"]'}
    assert rows['unet [train.loss.name="ce"]'].seeds == 2 and rows['unet [train.loss.name="dice"]'].seeds == 1
    assert build_tables(entries(*recs[:2]))[0].rows[0].model == "unet"  # one config: the plain name


def test_one_seed_shows_its_bootstrap_interval_or_none() -> None:
    with_ci = record("a", metrics={"top1": 0.9, "top5": 0.99}, ci={"top1": Interval(low=0.85, high=0.95)})
    stat = build_row(entries(with_ci)).metrics
    assert stat["top1"].method == "bootstrap" and stat["top1"].text() == "0.9000 [0.8500, 0.9500]"
    assert stat["top5"].text() == "0.9900"  # no ci recorded for it
    assert seed_stat([0.5]).text() == "0.5000"


def test_failed_seeds_are_left_out_of_the_mean_and_counted() -> None:
    recs = [record("a", metrics={"top1": 0.8}, seed=0), record("a", metrics={"top1": 0.9}, seed=1),
            record("a", seed=2, status="failed", error="RuntimeError: out of memory")]
    row = build_row(entries(*recs))
    assert row.status == "ok" and row.metrics["top1"].mean == pytest.approx(0.85) and row.metrics["top1"].n == 2
    assert md_rows(to_markdown(build_tables(entries(*recs)), META))["a"][4] == "2 (+1 failed)"


def test_failed_and_cached_rows() -> None:
    fresh = entries(record("fresh", metrics={"top1": 0.5}), record("broken", status="failed",
                                                                      error="RuntimeError: out of | memory\nat x"))
    reused = entries(record("reused", metrics={"top1": 0.7}), run="run-0", cached=True)
    half = [*entries(record("half", metrics={"top1": 0.6}, seed=0)),
            *entries(record("half", metrics={"top1": 0.6}, seed=1), cached=True)]
    table = build_tables([*fresh, *reused, *half])[0]
    assert [(r.model, r.status) for r in table.rows] == [
        ("reused", "cached"), ("half", "ok (1 of 2 cached)"), ("fresh", "ok"),
        ("broken", "failed: RuntimeError: out of | memory at x"),  # one line; failed last
    ]
    rows = md_rows(to_markdown([table], META))
    assert rows["broken"][-3] == r"failed: RuntimeError: out of \| memory at x"  # the pipe cannot split the row
    assert rows["reused"][-1] == "run-0" and rows["fresh"][-1] == "run-1"
    assert rows["broken"][1] == "—" and rows["broken"][4] == "0"


# ---- order -----------------------------------------------------------------------------------------------


def test_rows_sorted_by_the_primary_metric_higher_or_lower_is_better() -> None:
    recs = [record("mid", metrics={"top1": 0.5}), record("best", metrics={"top1": 0.9}),
            record("none", metrics={"top5": 0.9}), record("worst", metrics={"top1": 0.1})]
    table = build_tables(entries(*recs))[0]
    assert table.primary == "top1" and table.higher_is_better
    assert [r.model for r in table.rows] == ["best", "mid", "worst", "none"]  # no primary: after the scored
    rows = [build_row(entries(r)) for r in recs]
    assert [r.model for r in sort_rows(rows, "top1", higher_is_better=False)] == ["worst", "mid", "best", "none"]


def test_tables_per_task_dataset_and_profile() -> None:
    recs = [record("a", metrics={"top1": 0.5}), record("a", metrics={"top1": 0.6}, profile="gpu"),
            record("a", metrics={"top1": 0.7}, dataset="mnist"),
            record("faster_rcnn", "detection", {"mAP": 0.4, "mAP_50": 0.6})]
    keys = [(t.task, t.dataset, t.profile) for t in build_tables(entries(*recs))]
    assert keys == [("classification", "mnist", "cpu"), ("classification", "shapes", "cpu"),
                    ("classification", "shapes", "gpu"), ("detection", "shapes", "cpu")]
    md = to_markdown(build_tables(entries(*recs)), META)
    assert "## detection on shapes, profile cpu (sorted by mAP, higher is better)" in md
    assert "| model | mAP | mAP_50 | mAP_75 | mAP11 | mAPall | seeds |" in md


def test_siamese_rows_join_the_classification_table() -> None:
    recs = [record("resnet18", metrics={"top1": 0.8, "top5": 1.0, "macro_f1": 0.79}),
            record("siamese_triplet", "verification",
                   {"top1": 0.9, "macro_f1": 0.88, "roc_auc": 0.97, "eer": 0.05, "accuracy": 0.93})]
    by_task = {t.task: t for t in build_tables(entries(*recs))}
    cls, ver = by_task["classification"], by_task["verification"]
    assert [r.model for r in cls.rows] == ["siamese_triplet", "resnet18"]  # sorted by top-1
    assert cls.columns == ("top1", "top5", "macro_f1", "roc_auc")
    assert [r.model for r in ver.rows] == ["siamese_triplet"] and ver.columns[0] == "roc_auc"
    md = to_markdown([cls], META)
    assert "| siamese_triplet | 0.9000 | — | 0.8800 | 0.9700 | 1 |" in md
    assert "| resnet18 | 0.8000 | 1.0000 | 0.7900 | — | 1 |" in md


# ---- the other columns -----------------------------------------------------------------------------------


def test_training_baseline_test_size_and_efficiency_cells() -> None:
    cut = TrainingEnd(epochs_planned=30, epochs_done=1.5, stopped_by="time_limit")
    full = TrainingEnd(epochs_planned=30, epochs_done=30.0, stopped_by="schedule")
    eff = Efficiency(params=11_180_000, flops=1.82e9, latency_ms=2.5, throughput_ips=800.0, peak_memory_mb=300.0)
    recs = [record("resnet18", metrics={"top1": 0.36}, history=history(2), test_images=300, baseline=majority(0.3),
                   training=cut, efficiency=eff, timings=Timings(train_s=61.23)),
            record("simple_cnn", metrics={"top1": 0.9}, history=history(1, acc=False), test_images=300,
                   baseline=majority(1e-9), training=full, num_params=1000),
            record("vgg11", status="failed", error="RuntimeError: out of memory")]
    md = to_markdown(build_tables(entries(*recs)), META)
    rows = md_rows(md)
    assert rows["resnet18"][4:] == ["1", "1.5/30 ep, time limit", "61.2", "0.5200", "300", "11.18M", "1.82G", "2.50",
                                    "800", "300", "ok", "≈ baseline", "run-1"]
    # no accuracy: the loss; no efficiency record: the params the trial counted, "—" for the rest
    assert rows["simple_cnn"][4:] == ["1", "30/30 ep", "—", "loss 1", "300", "1.00k", "—", "—", "—", "—", "ok", "",
                                      "run-1"]
    assert "Baseline: majority class: top1 = 0.3400 (binomial, one-sided)" in md
    assert "Test images scored: 300." in md
    assert ("| seeds | training | train s | train acc | test n | params | FLOPs | latency ms | img/s | peak MB "
            "| status | notes | run |") in md


def test_training_and_baseline_over_seeds() -> None:
    recs = [record("a", metrics={"top1": 0.5}, seed=s, baseline=majority(p),
                   training=TrainingEnd(epochs_planned=10, epochs_done=d, stopped_by=by), test_images=n)
            for s, (p, d, by, n) in enumerate([(0.3, 4.0, "time_limit", 100), (0.01, 10.0, "schedule", 300)])]
    row = build_row(entries(*recs))
    assert row.training == "7/10 ep, time limit in 1/2" and row.notes == "≈ baseline in 1/2 seeds"
    assert row.test_images == "100–300"


def test_detection_and_instance_segmentation_tables() -> None:
    """Mask R-CNN-like rows get their own table (mask mAP first) and rank on detection by their boxes; a row
    cut by its time limit below the task's target mAP_50 is marked budget-limited, one above it is not."""
    box = {"mAP": 0.30, "mAP_50": 0.55, "mAP_75": 0.28, "mAP11": 0.52, "mAPall": 0.54}
    cut = TrainingEnd(epochs_planned=10, epochs_done=3.2, stopped_by="time_limit")
    recs = [record("faster_rcnn", "detection", box, training=cut, timings=Timings(train_s=299.5), latency_ms=12.0),
            record("hog_detector", "detection", {**box, "mAP": 0.05, "mAP_50": 0.12}, training=cut),
            record("mask_rcnn", "instance_segmentation", {**box, "mAP": 0.35, "mask_mAP": 0.33, "mask_mAP_50": 0.6,
                                                          "mask_mAP_75": 0.3},
                   training=TrainingEnd(epochs_planned=10, epochs_done=10.0, stopped_by="schedule"))]
    det, inst = build_tables(entries(*recs))
    assert (det.task, inst.task) == ("detection", "instance_segmentation")
    assert det.columns == ("mAP", "mAP_50", "mAP_75", "mAP11", "mAPall", "mask_mAP")
    assert [r.model for r in det.rows] == ["mask_rcnn", "faster_rcnn", "hog_detector"]
    assert inst.columns == ("mask_mAP", "mask_mAP_50", "mask_mAP_75", "mAP", "mAP_50", "mAP_75")
    assert [r.model for r in inst.rows] == ["mask_rcnn"]
    rows = {r.model: r for r in det.rows}
    assert rows["hog_detector"].notes == "budget-limited (mAP_50 0.1200 < 0.25, time limit)"
    assert rows["faster_rcnn"].notes == "" and rows["mask_rcnn"].notes == ""
    md = to_markdown([det], META)
    cells = dict(zip(headers(det), md_rows(md)["faster_rcnn"], strict=True))
    assert cells["training"] == "3.2/10 ep, time limit" and cells["train s"] == "299.5"
    assert cells["params"] == "1.50M" and cells["latency ms"] == "12.00" and cells["mAP11"] == "0.5200"


# ---- Pareto front ----------------------------------------------------------------------------------------


def test_pareto_front() -> None:
    #          0 cheap/bad  1 dominated  2 mid      3 best/slow  4 = 2 (duplicate)  5 slower, no better than 3
    points = [(1.0, 0.50), (2.0, 0.40), (3.0, 0.80), (10.0, 0.90), (3.0, 0.80), (20.0, 0.90)]
    assert pareto_front(points) == [0, 2, 3]
    # lower is better (an error rate): 1 is now the best score, 0 the cheapest
    assert pareto_front(points, higher_is_better=False) == [0, 1]
    assert pareto_front([(2.0, 0.1), (1.0, 0.2)], higher_is_better=False) == [1, 0]
    assert pareto_front([]) == []
    # brute force on random points: a point is on the front iff nothing dominates it
    import random

    rnd = random.Random(0)
    pts = [(rnd.randint(1, 20) * 1.0, rnd.randint(1, 20) / 20) for _ in range(200)]

    def dominated(i: int) -> bool:
        return any(j != i and pts[j][0] <= pts[i][0] and pts[j][1] >= pts[i][1] and pts[j] != pts[i]
                   for j in range(len(pts)))

    expected = {pts[i] for i in range(len(pts)) if not dominated(i)}
    front = pareto_front(pts)
    assert {pts[i] for i in front} == expected and len(front) == len(expected)  # one index per distinct point


# ---- HTML (static; the browser test clicks it) ----------------------------------------------------------


def test_html_is_self_contained_with_raw_numbers_pareto_and_drill_down_data() -> None:
    recs = [record("resnet18", metrics={"top1": 0.8}, seed=0, latency_ms=2.0, history=history(3),
                   extras={"confusion_matrix": [[5, 1], [2, 4]]}, per_class={"a": {}, "b": {}}),
            record("resnet18", metrics={"top1": 0.9}, seed=1, latency_ms=2.2, history=history(3)),
            record("vgg</script><b>", metrics={"top1": 0.7}, latency_ms=9.0),
            record("faster_rcnn", "detection", {"mAP": 0.4}, latency_ms=30.0, per_class=detection_per_class(3)),
            record("broken", status="failed", error="boom </script>")]
    page = to_html(build_tables(entries(*recs)), META)
    body = page.split("<body>")[1]
    assert "http" not in body and "<link" not in body and " src=" not in body  # nothing loaded from elsewhere
    assert page.count("</script>") == 2  # the data and the code; the names above cannot close either
    assert "data-v='0.85' data-lo=" in page and "0.8500 ± 0.6353" in page  # mean, t-interval of 2 seeds
    assert "vgg&lt;/script&gt;&lt;b&gt;" in page
    assert page.count("<svg class='pareto'") == 2  # one per table
    assert page.count("no Pareto plot") == 0 and "class='pt front'" in page
    data = json.loads(re.search(r"<script type='application/json' id='bench-data'>(.*?)</script>", page, re.S)[1])
    by_model = {d["model"]: d for d in data.values()}
    assert by_model["resnet18"]["cm"] == {"m": [[5, 1], [2, 4]], "n": ["a", "b"]}
    assert by_model["resnet18"]["history"]["l"] == [1.0, 0.5, 0.3333]
    assert by_model["resnet18"]["seeds"] == 2
    pr = by_model["faster_rcnn"]["pr"]
    assert len(pr["r"]) == 101 and [c[0] for c in pr["c"]] == ["class0", "class1", "class2"]
    assert by_model["broken"]["error"] == "boom </script>"


def test_pareto_plot_needs_latency() -> None:
    page = to_html(build_tables(entries(record("a", metrics={"top1": 0.8}))), META)
    assert "no Pareto plot" in page and "<svg class='pareto'" not in page


def test_write_report(tmp_path: Path) -> None:
    paths = write_report(entries(record("a", metrics={"top1": 0.8})), tmp_path / "out", "Title", "here")
    assert [p.name for p in paths] == ["leaderboard.md", "leaderboard.html"]
    assert paths[0].read_text().startswith("# Title\n\nSource: here.")
    assert "<title>Title</title>" in paths[1].read_text()


def test_report_command_reads_run_records(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bench.cli.main import app
    from bench.results.record import write_results

    write_results(tmp_path / "all-1.json", [record("a", metrics={"top1": 0.8}), record("b", metrics={"top1": 0.9})])
    res = CliRunner().invoke(app, ["report", "--results", str(tmp_path / "all-1.json"), "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    rows = md_rows((tmp_path / "leaderboard.md").read_text())
    assert list(rows) == ["b", "a"] and rows["a"][-1] == "all-1"


def test_interval_math_matches_scipy() -> None:
    from scipy import stats

    vals = [0.71, 0.74, 0.69, 0.75, 0.73]
    s = seed_stat(vals)
    lo, hi = stats.t.interval(0.95, len(vals) - 1, loc=sum(vals) / 5, scale=stats.sem(vals))
    assert math.isclose(s.low, lo) and math.isclose(s.high, hi)
