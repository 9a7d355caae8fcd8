"""Leaderboards from typed trial records: one table per (task, dataset, profile), one row per model.

The caller chooses the records (the latest per model, or those of one run) and wraps each in a
:class:`ReportEntry` naming the run it came from; nothing here reads MLflow or a database, and no
metric is computed beyond aggregating the recorded ones over a model's seeds:

* the cell of a metric is the mean over the model's ok seeds, with a 95% interval: with two or more
  seeds, the t-interval of that mean across seeds (shown ``mean ± half-width``); with one seed, that
  record's bootstrap interval over test images (``TrialResult.ci``, shown ``mean [low, high]``);
* rows are sorted by the task's primary metric (``bench.tasks``); models of a task that also ranks
  on another (Siamese models on classification) appear in both tables;
* each row also says how training ended (epochs done / scheduled), the training time, the last epoch's
  training accuracy, the test images scored, the efficiency at test time (``TrialResult.efficiency``:
  params, FLOPs, latency = inference ms per image at batch 1, throughput, peak memory), its status and
  its run(s); its notes say ``≈ baseline`` when the worker's test against the task's trivial baseline
  was not significant, and ``budget-limited`` when every seed's training ended on the time limit
  below the task's target score (``TaskSpec.target``: the budget, not the method, bounded it).

:func:`to_markdown` and :func:`to_html` (``bench.reports.page``) render the tables;
:func:`write_report` writes both.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from bench.metrics.significance import ALPHA
from bench.results.record import TrialResult
from bench.tasks import TASKS, TaskSpec

#: Confidence level of every interval on the leaderboard.
LEVEL = 0.95
MISSING = "—"


@dataclass(frozen=True)
class ReportEntry:
    """One record to show, and the run it was produced in (or reused by, when ``cached``)."""

    record: TrialResult
    run: str
    cached: bool = False


@dataclass(frozen=True)
class ReportMeta:
    """What the page is about: its title and where its records came from (one line each)."""

    title: str
    source: str


@dataclass(frozen=True)
class Stat:
    """A metric over a model's ok seeds: their mean and a 95% interval.

    ``method`` is ``"t"`` (t-interval of the mean across ``n >= 2`` seeds), ``"bootstrap"`` (the
    single seed's bootstrap interval over test images) or ``""`` (no interval known).
    """

    mean: float
    low: float | None = None
    high: float | None = None
    method: Literal["t", "bootstrap", ""] = ""
    n: int = 1

    def text(self, digits: int = 4) -> str:
        """``0.9120 ± 0.0131`` (across seeds), ``0.9120 [0.8990, 0.9250]`` (bootstrap) or ``0.9120``."""
        if self.low is None or self.high is None:
            return f"{self.mean:.{digits}f}"
        if self.method == "t":
            return f"{self.mean:.{digits}f} ± {(self.high - self.low) / 2:.{digits}f}"
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


@dataclass(frozen=True)
class Row:
    """One model on one (task, dataset, profile): its seeds aggregated."""

    model: str
    task: str  # the model's own task (``verification`` for a Siamese row of a classification table)
    status: str  # "ok", "cached", "ok (2 of 3 cached)", "failed: <reason>"
    metrics: dict[str, Stat]
    seeds: int  # ok seeds aggregated
    failed_seeds: int
    training: str  # "1.5/30 ep, time limit", "30/30 ep"
    train_s: float | None  # training seconds (per-epoch validation excluded), mean over seeds
    train_fit: str  # the last epoch's training accuracy (mean over seeds), else "loss X"
    test_images: str  # "300", or "100–300" when seeds differ
    params: int | None
    flops: float | None
    latency_ms: float | None
    throughput_ips: float | None
    peak_memory_mb: float | None
    baseline: str  # "majority class: top1 = 0.3400 (binomial, one-sided)"
    notes: str  # "≈ baseline" when not significantly above it
    runs: tuple[str, ...]
    # The ok records aggregated (failed ones when none is ok): the drill-down draws from them.
    records: tuple[TrialResult, ...] = field(repr=False, default=())

    @property
    def ok(self) -> bool:
        return not self.status.startswith("failed")


@dataclass(frozen=True)
class Table:
    """The rows of one (task, dataset, profile), best first by ``primary``."""

    task: str
    dataset: str
    profile: str
    primary: str
    higher_is_better: bool
    columns: tuple[str, ...]  # metric columns, in order
    rows: list[Row]


# --------------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def t_quantile(df: int, level: float = LEVEL) -> float:
    """Two-sided Student-t quantile ``t_{(1+level)/2, df}`` (cached: one per seed count)."""
    from scipy.stats import t

    return float(t.ppf((1 + level) / 2, df))


def seed_stat(values: Sequence[float], single_ci: tuple[float, float] | None = None) -> Stat:
    """Mean of ``values`` (one per ok seed) with its 95% interval.

    Two or more seeds: ``mean ± t_{0.975, n-1} · s / √n`` (``s`` the sample standard deviation), the
    variation between training runs.  One seed: ``single_ci``, that run's bootstrap interval over
    test images (variation of the test set only), when it has one.
    """
    n = len(values)
    mean = math.fsum(values) / n
    if n >= 2:
        half = t_quantile(n - 1) * statistics.stdev(values) / math.sqrt(n)
        return Stat(mean, mean - half, mean + half, "t", n)
    if single_ci is not None:
        return Stat(mean, single_ci[0], single_ci[1], "bootstrap", 1)
    return Stat(mean)


def aggregate_metrics(records: Sequence[TrialResult]) -> dict[str, Stat]:
    """Every scalar metric of the ok ``records`` (one per seed) as a :class:`Stat`."""
    names = dict.fromkeys(k for r in records for k in r.metrics)
    out: dict[str, Stat] = {}
    for name in names:
        have = [r for r in records if r.metrics.get(name) is not None]
        if not have:
            continue
        ci = have[0].ci.get(name) if len(have) == 1 else None
        out[name] = seed_stat([float(r.metrics[name]) for r in have], None if ci is None else (ci.low, ci.high))
    return out


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return math.fsum(vals) / len(vals) if vals else None


def _first(values: Iterable[float | int | None]) -> float | int | None:
    return next((v for v in values if v is not None), None)


def training_cell(records: Sequence[TrialResult]) -> str:
    """``"1.5/30 ep, time limit"``, ``"30/30 ep"``; over seeds the mean epochs done and how many were cut."""
    ends = [r.training for r in records if r.training is not None]
    if not ends:
        return MISSING
    done = math.fsum(e.epochs_done for e in ends) / len(ends)
    planned = max(e.epochs_planned for e in ends)
    # Two significant digits below one epoch: a 90 s MNIST trial of VGG does 0.04 of an epoch, not 0.
    shown = f"{done:.2g}" if 0 < done < 1 else f"{done:.1f}".rstrip("0").rstrip(".")
    cut = sum(e.stopped_by == "time_limit" for e in ends)
    text = f"{shown}/{planned} ep"
    if cut == len(ends):
        return text + ", time limit"
    return text + (f", time limit in {cut}/{len(ends)}" if cut else "")


def train_fit_cell(records: Sequence[TrialResult]) -> str:
    """The last epoch's training accuracy (mean over seeds), or ``"loss X"`` where the task has none."""
    last = [r.history[-1] for r in records if r.history]
    acc = _mean(h.train_acc for h in last)
    if acc is not None:
        return f"{acc:.4f}"
    loss = _mean(h.train_loss for h in last)
    return MISSING if loss is None else f"loss {loss:.4g}"


def images_cell(records: Sequence[TrialResult]) -> str:
    """Test images scored: one number, or ``"min–max"`` when the seeds scored different subsets."""
    sizes = sorted({r.test_images for r in records if r.test_images is not None})
    if not sizes:
        return MISSING
    return str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}–{sizes[-1]}"


def baseline_text(record: TrialResult) -> str:
    """``"majority class: top1 = 0.3400 (binomial, one-sided)"``; empty without a baseline."""
    b = record.baseline
    if b is None:
        return ""
    score = MISSING if b.score is None else f"{b.score:.4f}"
    return f"{b.name}: {b.metric} = {score} ({b.test})"


def baseline_note(records: Sequence[TrialResult]) -> str:
    """``≈ baseline`` when the seeds' scores were not significantly above the baseline (some of them: how many)."""
    tested = [r.baseline.significant for r in records if r.baseline is not None and r.baseline.significant is not None]
    weak = sum(not s for s in tested)
    if not weak:
        return ""
    return "≈ baseline" if weak == len(tested) else f"≈ baseline in {weak}/{len(tested)} seeds"


def budget_note(records: Sequence[TrialResult], spec: TaskSpec | None) -> str:
    """``budget-limited (mAP_50 0.1800 < 0.25, time limit)`` when every seed's training was cut by its time
    limit and the seeds' mean of the task's target metric is below the target; else empty."""
    if spec is None or spec.target is None or not records:
        return ""
    metric, goal = spec.target
    cut = all(r.training is not None and r.training.stopped_by == "time_limit" for r in records)
    score = _mean(r.metrics.get(metric) for r in records)
    if not cut or score is None or score >= goal:
        return ""
    return f"budget-limited ({metric} {score:.4f} < {goal:g}, time limit)"


def status_cell(ok: Sequence[ReportEntry], failed: Sequence[ReportEntry]) -> str:
    """``ok``, ``cached`` (every ok seed reused from an earlier run), ``ok (k of n cached)`` or ``failed: <reason>``."""
    if not ok:
        reason = " ".join((failed[-1].record.error or "unknown error").split())  # one line, for the table
        return f"failed: {reason[:80]}"
    cached = sum(e.cached for e in ok)
    if cached == 0:
        return "ok"
    return "cached" if cached == len(ok) else f"ok ({cached} of {len(ok)} cached)"


def build_row(entries: Sequence[ReportEntry]) -> Row:
    """The row of one model's entries (its seeds) on one (task, dataset, profile)."""
    ok = [e for e in entries if e.record.status == "ok"]
    failed = [e for e in entries if e.record.status != "ok"]
    recs = [e.record for e in ok]
    eff = [r.efficiency for r in recs if r.efficiency is not None]
    first = entries[0].record
    return Row(
        model=first.model, task=first.task, status=status_cell(ok, failed), metrics=aggregate_metrics(recs),
        seeds=len(ok), failed_seeds=len(failed), training=training_cell(recs),
        train_s=_mean(r.timings.train_s or None for r in recs), train_fit=train_fit_cell(recs),  # 0: not recorded
        test_images=images_cell(recs),
        params=_first([*(e.params for e in eff), *(r.num_params for r in recs)]),  # type: ignore[arg-type]
        flops=_first(e.flops for e in eff), latency_ms=_mean(e.latency_ms for e in eff),
        throughput_ips=_mean(e.throughput_ips for e in eff), peak_memory_mb=_mean(e.peak_memory_mb for e in eff),
        baseline=next((baseline_text(r) for r in recs if r.baseline is not None), ""),
        notes="; ".join(n for n in (baseline_note(recs), budget_note(recs, _spec(first.task))) if n),
        runs=tuple(dict.fromkeys(e.run for e in entries)),
        records=tuple(recs) if recs else tuple(e.record for e in failed),
    )


def _spec(task: str) -> TaskSpec | None:
    return TASKS.get(task).meta if task in TASKS else None


def sort_rows(rows: Iterable[Row], primary: str, higher_is_better: bool) -> list[Row]:
    """Best first by ``primary``; rows without it next, failed rows last; ties by model name."""
    sign = -1.0 if higher_is_better else 1.0

    def key(r: Row) -> tuple[bool, bool, float, str]:
        s = r.metrics.get(primary)
        return (not r.ok, s is None, sign * s.mean if s else 0.0, r.model)

    return sorted(rows, key=key)


#: Config keys that differ between the seeds of one experiment, or do not change what is measured.
NOT_VARIANT = ("seed", "resources", "device")


def flat_config(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"train.loss.name": "'dice'", ...}``: a record's config flattened to dotted keys, values as JSON text."""
    out: dict[str, str] = {}
    for k, v in config.items():
        if not prefix and k in NOT_VARIANT:
            continue
        if isinstance(v, dict) and v:
            out.update(flat_config(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = json.dumps(v, sort_keys=True, default=str)
    return out


def variant_key(config: dict[str, Any]) -> str:
    """What makes two records of one model the same experiment: the config without seed and resources.  Records
    of one model with different keys (``--set train.loss.name=dice`` beside the default) are separate rows, never
    pooled as seeds."""
    return json.dumps(flat_config(config), sort_keys=True)


def variant_labels(keys: Sequence[tuple[str, str, str, str, str]]) -> dict[tuple[str, str, str, str, str], str]:
    """Row names: the model's name, or where one (task, dataset, profile, model) has several configs, the name
    with the settings that set each apart (``unet [train.loss.name="dice"]``, at most three shown)."""
    by_model: dict[tuple[str, ...], list[tuple[str, str, str, str, str]]] = {}
    for k in keys:
        by_model.setdefault(k[:4], []).append(k)
    labels = {}
    for (*_, model), variants in by_model.items():
        if len(variants) == 1:
            labels[variants[0]] = model
            continue
        flats = [json.loads(v[4]) for v in variants]
        differing = sorted({k for f in flats for k in f if len({g.get(k) for g in flats}) > 1})
        for v, f in zip(variants, flats, strict=True):
            shown = [f"{k}={f.get(k, 'unset')}" for k in differing[:3]]
            more = f", +{len(differing) - 3}" if len(differing) > 3 else ""
            labels[v] = f"{model} [{', '.join(shown)}{more}]"
    return labels


def build_tables(entries: Sequence[ReportEntry]) -> list[Table]:
    """One table per (task, dataset, profile), one row per model (its seeds aggregated), sorted by the primary metric.

    A model whose task also ranks on another (``TaskSpec.also_ranks_on``) appears in that task's table
    too, which then gains a column for the joining task's primary metric.
    """
    groups: dict[tuple[str, str, str, str, str], list[ReportEntry]] = {}
    for e in entries:
        r = e.record
        groups.setdefault((r.task, r.dataset, r.profile, r.model, variant_key(r.config)), []).append(e)
    labels = variant_labels(list(groups))
    boards: dict[tuple[str, str, str], list[Row]] = {}
    extra: dict[str, list[str]] = {}  # task -> columns added by models of other tasks ranked on it
    for gkey, group in groups.items():
        task, dataset, profile = gkey[:3]
        row = build_row(group)
        if labels[gkey] != row.model:
            row = replace(row, model=labels[gkey])
        boards.setdefault((task, dataset, profile), []).append(row)
        spec = _spec(task)
        for other in spec.also_ranks_on if spec else ():
            boards.setdefault((other, dataset, profile), []).append(row)
            extra.setdefault(other, []).append(spec.primary_metric)  # type: ignore[union-attr]
    tables = []
    for (task, dataset, profile), rows in sorted(boards.items()):
        spec = _spec(task)
        primary = spec.primary_metric if spec else next(iter(rows[0].metrics), "")
        higher = spec.higher_is_better if spec else True
        columns = (*spec.headline_metrics, *dict.fromkeys(extra.get(task, []))) if spec else tuple(
            dict.fromkeys(k for r in rows for k in r.metrics))
        tables.append(Table(task, dataset, profile, primary, higher, columns, sort_rows(rows, primary, higher)))
    return tables


def pareto_front(points: Sequence[tuple[float, float]], higher_is_better: bool = True) -> list[int]:
    """Indices of the points ``(cost, score)`` that no other point dominates, by increasing cost.

    A point is dominated when another has cost <= and score >= (<= when not ``higher_is_better``),
    one of them strictly.  Of exact duplicates the first is kept.  O(N log N): sweep by cost, keep a
    point when its score beats every cheaper one.
    """
    sign = 1.0 if higher_is_better else -1.0
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -sign * points[i][1], i))
    front: list[int] = []
    best = -math.inf
    for i in order:
        score = sign * points[i][1]
        if score > best:
            front.append(i)
            best = score
    return front


# --------------------------------------------------------------------------------------------
# Cells and Markdown
# --------------------------------------------------------------------------------------------


def table_notes(table: Table) -> list[str]:
    """The lines under a table's heading: its baseline(s) and the number of test images scored."""
    ok = [r for r in table.rows if r.ok]
    baselines = list(dict.fromkeys(r.baseline for r in ok if r.baseline))
    sizes = list(dict.fromkeys(r.test_images for r in ok if r.test_images != MISSING))
    lines = []
    if baselines:
        lines.append(f"Baseline: {'; '.join(baselines)}. \"≈ baseline\": not significantly above it "
                     f"(one-sided, {ALPHA:.0%} level).")
    if sizes:
        lines.append(f"Test images scored: {', '.join(sizes)}" + (" (differs by row)." if len(sizes) > 1 else "."))
    return lines


#: The columns after the metrics, with how each row fills them.
TAIL_HEADERS = ("seeds", "training", "train s", "train acc", "test n", "params", "FLOPs", "latency ms", "img/s",
                "peak MB", "status", "notes", "run")


def fmt(v: float | None, digits: int = 2) -> str:
    return MISSING if v is None else f"{v:.{digits}f}"


def si(v: float | None) -> str:
    """``11.18M``, ``1.82G``: parameters and FLOPs at a glance."""
    if v is None:
        return MISSING
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.2f}{suffix}"
    return f"{v:.0f}"


def seeds_cell(row: Row) -> str:
    return str(row.seeds) + (f" (+{row.failed_seeds} failed)" if row.failed_seeds and row.seeds else "")


def runs_cell(row: Row, shown: int = 2) -> str:
    """The run names, the first ``shown`` of them and how many more."""
    more = len(row.runs) - shown
    return ", ".join(row.runs[:shown]) + (f" +{more}" if more > 0 else "")


def tail_cells(row: Row) -> list[str]:
    """The cells of :data:`TAIL_HEADERS`, as text."""
    return [seeds_cell(row), row.training, fmt(row.train_s, 1), row.train_fit, row.test_images, si(row.params),
            si(row.flops), fmt(row.latency_ms), fmt(row.throughput_ips, 0), fmt(row.peak_memory_mb, 0), row.status,
            row.notes, runs_cell(row)]


def metric_cell(row: Row, name: str) -> str:
    s = row.metrics.get(name)
    return MISSING if s is None else s.text()


def headers(table: Table) -> list[str]:
    return ["model", *table.columns, *TAIL_HEADERS]


def heading(table: Table) -> str:
    direction = "higher" if table.higher_is_better else "lower"
    return (f"{table.task} on {table.dataset}, profile {table.profile} "
            f"(sorted by {table.primary}, {direction} is better)")


INTERVALS = (f"Metric cells: the mean over a model's ok seeds. `± h`: half-width of the {LEVEL:.0%} t-interval "
             f"of that mean across seeds (two or more seeds: variation between training runs). `[low, high]`: "
             f"the single seed's {LEVEL:.0%} percentile-bootstrap interval over test images. No interval: "
             "none was recorded.")


def _md(text: str) -> str:
    """A Markdown table cell: pipes escaped (error messages may hold them)."""
    return text.replace("|", "\\|")


def to_markdown(tables: Sequence[Table], meta: ReportMeta) -> str:
    """The leaderboard as Markdown: a heading, notes and a table per (task, dataset, profile)."""
    lines = [f"# {meta.title}", "", f"Source: {meta.source}.", "", INTERVALS, ""]
    if not tables:
        lines += ["No trials to show.", ""]
    for t in tables:
        lines += [f"## {heading(t)}", ""]
        notes = table_notes(t)
        lines += [*(f"{n}  " for n in notes), ""] if notes else []
        hdr = headers(t)
        lines += ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
        for r in t.rows:
            cells = [r.model, *(metric_cell(r, c) for c in t.columns), *tail_cells(r)]
            lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def to_html(tables: Sequence[Table], meta: ReportMeta) -> str:
    """The leaderboard as one self-contained, interactive HTML page (see ``bench.reports.page``)."""
    from bench.reports.page import render

    return render(tables, meta)


def write_report(entries: Sequence[ReportEntry], out_dir: Path, title: str, source: str) -> list[Path]:
    """Write ``leaderboard.md`` and ``leaderboard.html`` of ``entries`` under ``out_dir``; return their paths."""
    tables = build_tables(entries)
    meta = ReportMeta(title, source)
    out_dir.mkdir(parents=True, exist_ok=True)
    md, page = out_dir / "leaderboard.md", out_dir / "leaderboard.html"
    md.write_text(to_markdown(tables, meta))
    page.write_text(to_html(tables, meta))
    return [md, page]
