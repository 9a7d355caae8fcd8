"""Leaderboards from MLflow runs: one table per (task, dataset), sorted by the task's primary metric.

Reads what the driver logged; computes no metric itself.  Besides the test metrics each row shows
how training ended (``epochs_done``/``epochs_planned``, ``stopped_by``), the final epoch's training
accuracy (or loss), the number of test images scored, and "≈ baseline" when the worker's test
against the task's baseline (``bench.metrics.significance``) was not significant; each table states
its baseline and test set size under its heading.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.metrics.significance import ALPHA
from bench.tasks import TASKS
from bench.tracking.mlflow_writer import EXPERIMENT, TAG_KIND


@dataclass(frozen=True)
class Row:
    """One trial on a leaderboard."""

    model: str
    status: str
    metrics: dict[str, float | None]
    num_params: float | None
    train_time_s: float | None
    inference_ms: float | None
    run_id: str
    error: str
    training: str = "—"  # "1.5/30 ep, time limit", "30/30 ep"
    train_fit: str = "—"  # final epoch's training accuracy, else "loss X"
    test_images: int | None = None
    baseline: str = ""  # "majority class: top1 = 0.3400 (binomial, one-sided)"
    notes: str = ""  # "≈ baseline" when not significantly above it


@dataclass(frozen=True)
class Table:
    """The rows of one (task, dataset) pair, best first."""

    task: str
    dataset: str
    columns: tuple[str, ...]
    rows: list[Row]


def latest_suite_run(client: Any, experiment_id: str) -> Any:
    """The newest parent (``bench.kind = suite``) run of the experiment."""
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.`{TAG_KIND}` = 'suite'", order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise LookupError("no bench runs in MLflow yet; run `bench run all` first")
    return runs[0]


def collect(uri: str, run_id: str | None = None) -> tuple[Any, list[Table]]:
    """The parent run (``run_id`` or the latest) and its leaderboard tables."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        raise LookupError(f"no '{EXPERIMENT}' experiment at {uri}; run `bench run all` first")
    parent = client.get_run(run_id) if run_id else latest_suite_run(client, exp.experiment_id)
    children = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'", max_results=5000
    )
    groups: dict[tuple[str, str], list[Row]] = {}
    extra: dict[str, list[str]] = {}  # task -> columns added by models of other tasks ranked on it
    for run in children:
        m, t = run.data.metrics, run.data.tags
        row = Row(
            model=t.get("model", run.info.run_name), status=t.get("status", run.info.status.lower()),
            metrics={k.removeprefix("test_"): v for k, v in m.items() if k.startswith("test_") and k != "test_images"},
            num_params=m.get("num_params"), train_time_s=m.get("train_time_s"),
            inference_ms=m.get("inference_ms_per_image"), run_id=run.info.run_id, error=t.get("error", ""),
            training=training_cell(m, t), train_fit=train_fit_cell(m),
            test_images=None if m.get("test_images") is None else int(m["test_images"]),
            baseline=baseline_text(m, t), notes="≈ baseline" if t.get("baseline_significant") == "false" else "",
        )
        task = t.get("task", "?")
        groups.setdefault((task, t.get("dataset", "?")), []).append(row)
        # Siamese models also rank on classification (nearest class mean): same row, both tables.
        for other in (TASKS.get(task).meta.also_ranks_on if task in TASKS else ()):
            groups.setdefault((other, t.get("dataset", "?")), []).append(row)
            extra.setdefault(other, []).append(TASKS.get(task).meta.primary_metric)
    tables = []
    for (task, dataset), rows in sorted(groups.items()):
        spec = TASKS.get(task).meta if task in TASKS else None
        columns = (*spec.headline_metrics, *dict.fromkeys(extra.get(task, []))) if spec else ()
        key = spec.primary_metric if spec else ""
        sign = -1 if (spec is None or spec.higher_is_better) else 1

        def order(r: Row, key: str = key, sign: int = sign) -> tuple[int, float, str]:
            v = r.metrics.get(key)
            return (r.status != "ok" or v is None, sign * (v or 0.0), r.model)

        tables.append(Table(task, dataset, columns, sorted(rows, key=order)))
    return parent, tables


def training_cell(metrics: dict[str, float], tags: dict[str, str]) -> str:
    """``"1.5/30 ep, time limit"`` or ``"30/30 ep"`` from the logged ``epochs_*`` and ``stopped_by``."""
    done, planned = metrics.get("epochs_done"), metrics.get("epochs_planned")
    if done is None or planned is None:
        return "—"
    # Two significant digits below one epoch: a 90 s MNIST trial of VGG does 0.04 of an epoch, not 0.
    shown = f"{done:.2g}" if 0 < done < 1 else f"{done:.1f}".rstrip("0").rstrip(".")
    text = f"{shown}/{planned:.0f} ep"
    return text + (", time limit" if tags.get("stopped_by") == "time_limit" else "")


def train_fit_cell(metrics: dict[str, float]) -> str:
    """The final epoch's training accuracy, or ``"loss X"`` where the task logs no accuracy."""
    if metrics.get("train_acc") is not None:
        return _fmt(metrics["train_acc"])
    return "—" if metrics.get("train_loss") is None else f"loss {metrics['train_loss']:.4g}"


def baseline_text(metrics: dict[str, float], tags: dict[str, str]) -> str:
    """``"majority class: top1 = 0.3400 (binomial, one-sided)"``; empty when none was logged."""
    if not tags.get("baseline"):
        return ""
    return (f"{tags['baseline']}: {tags.get('baseline_metric', '?')} = {_fmt(metrics.get('baseline_score'))}"
            f" ({tags.get('baseline_test', '?')})")


def table_notes(table: Table) -> list[str]:
    """The lines under a table's heading: its baseline(s) and the number of test images scored."""
    ok = [r for r in table.rows if r.status == "ok"]
    baselines = list(dict.fromkeys(r.baseline for r in ok if r.baseline))
    sizes = sorted({r.test_images for r in ok if r.test_images is not None})
    lines = []
    if baselines:
        lines.append(f"Baseline: {'; '.join(baselines)}. \"≈ baseline\": not significantly above it "
                     f"(one-sided, {ALPHA:.0%} level).")
    if sizes:
        lines.append(f"Test images scored: {', '.join(str(n) for n in sizes)}" + (" (differs by row)." if
                                                                                   len(sizes) > 1 else "."))
    return lines


def _fmt(v: float | None, digits: int = 4) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _cells(table: Table, row: Row) -> list[str]:
    params = "—" if row.num_params is None else f"{row.num_params / 1e6:.2f}M"
    status = row.status if row.status == "ok" else f"failed: {row.error[:80]}"
    test_n = "—" if row.test_images is None else str(row.test_images)
    return [row.model, *(_fmt(row.metrics.get(c)) for c in table.columns), params,
            _fmt(row.train_time_s, 1), _fmt(row.inference_ms, 2), row.training, row.train_fit, test_n, status,
            row.notes]


def headers(table: Table) -> list[str]:
    return ["model", *table.columns, "params", "train s", "infer ms/img", "training", "train acc", "test n",
            "status", "notes"]


def to_markdown(parent: Any, tables: list[Table]) -> str:
    """The leaderboard as Markdown."""
    lines = [f"# Leaderboard: {parent.info.run_name}", "",
             f"MLflow parent run `{parent.info.run_id}`; profile `{parent.data.tags.get('profile', '?')}`; "
             f"git `{parent.data.tags.get('git_sha', '?')}`.", ""]
    for t in tables:
        primary = TASKS.get(t.task).meta.primary_metric if t.task in TASKS else "?"
        lines += [f"## {t.task} on {t.dataset} (sorted by {primary})", ""]
        lines += [*(f"{n}  " for n in table_notes(t)), ""] if table_notes(t) else []
        hdr = headers(t)
        lines += ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
        lines += ["| " + " | ".join(_cells(t, r)) + " |" for r in t.rows]
        lines.append("")
    return "\n".join(lines)


CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f0f0f0}td:first-child,th:first-child
{text-align:left}tr.failed td{color:#a00}caption{text-align:left;font-weight:bold;font-size:1.1em}"""


def to_html(parent: Any, tables: list[Table]) -> str:
    """The leaderboard as one self-contained HTML page (inline CSS, no external assets)."""
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>bench leaderboard</title>"
             f"<style>{CSS}</style></head><body><h1>Leaderboard: {esc(parent.info.run_name)}</h1>",
             f"<p>MLflow parent run <code>{esc(parent.info.run_id)}</code>; profile "
             f"<code>{esc(parent.data.tags.get('profile', '?'))}</code>; git "
             f"<code>{esc(parent.data.tags.get('git_sha', '?'))}</code>.</p>"]
    for t in tables:
        primary = TASKS.get(t.task).meta.primary_metric if t.task in TASKS else "?"
        notes = "".join(f"<br><small>{esc(n)}</small>" for n in table_notes(t))
        parts.append(f"<table><caption>{esc(t.task)} on {esc(t.dataset)} (sorted by {esc(primary)}){notes}</caption>")
        parts.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers(t)) + "</tr>")
        for r in t.rows:
            cls = "" if r.status == "ok" else " class='failed'"
            parts.append(f"<tr{cls}>" + "".join(f"<td>{esc(c)}</td>" for c in _cells(t, r)) + "</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(uri: str, out_dir: Path, run_id: str | None = None) -> list[Path]:
    """Write ``leaderboard.md`` and ``leaderboard.html`` under ``out_dir``; return their paths."""
    parent, tables = collect(uri, run_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    md, page = out_dir / "leaderboard.md", out_dir / "leaderboard.html"
    md.write_text(to_markdown(parent, tables))
    page.write_text(to_html(parent, tables))
    return [md, page]
