"""The leaderboard as one self-contained HTML page: inline CSS, JS and SVG, no external assets.

Without JavaScript the page is the tables plus an accuracy-vs-latency Pareto plot per table
(inline SVG drawn here).  With it, column headers sort the rows (numbers by their ``data-v``
value, "—" last), a task selector and a model-name filter hide rows, and clicking a row opens a
drill-down drawn in the browser from compact JSON embedded in the page: training curves
(``history``), PR curves (detection and instance segmentation boxes, ``per_class``) and the confusion matrix
(``extras["confusion_matrix"]``).  Drawing those in the browser, on demand, keeps the Python side
linear and light: ``benchmarks/report_render_speed.py`` renders 10,000 records.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from importlib import resources
from typing import Any

from bench.reports.leaderboard import (
    INTERVALS,
    MISSING,
    TAIL_HEADERS,
    ReportMeta,
    Row,
    Table,
    heading,
    metric_cell,
    pareto_front,
    table_notes,
    tail_cells,
)
from bench.results.record import TrialResult
from bench.tasks import TASKS

esc = html.escape


def asset(name: str) -> str:
    """An asset shipped next to this module (the page's CSS and JS), as text."""
    return resources.files("bench.reports").joinpath(name).read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------
# Drill-down data: one compact JSON object per row, drawn by leaderboard.js on demand
# --------------------------------------------------------------------------------------------


def _r(v: float | None, digits: int = 4) -> float | None:
    return None if v is None or not math.isfinite(v) else round(v, digits)


def representative(row: Row, primary: str) -> TrialResult:
    """The seed a drill-down shows: the median of the row's records by ``primary`` (the first when unknown)."""
    recs = sorted(row.records, key=lambda r: (r.metrics.get(primary) is None, r.metrics.get(primary) or 0.0))
    scored = [r for r in recs if r.metrics.get(primary) is not None]
    return scored[(len(scored) - 1) // 2] if scored else row.records[0]


def history_data(rec: TrialResult, primary: str) -> dict[str, list[Any]] | None:
    """Per epoch: ``e`` epoch, ``l`` train loss, ``a`` train accuracy, ``v`` validation ``primary``."""
    if not rec.history:
        return None
    h = rec.history
    return {"e": [x.epoch for x in h], "l": [_r(x.train_loss) for x in h], "a": [_r(x.train_acc) for x in h],
            "v": [_r(x.val.get(primary)) for x in h]}


def pr_data(per_class: dict[str, Any]) -> dict[str, Any] | None:
    """Detection PR curves: ``r`` the shared recall grid, ``c`` ``[[class, AP, precisions], ...]``.

    Classes without ground truth (``APall`` None) are left out, as in ``plots.pr_curves``.
    """
    curves = [(name, c) for name, c in per_class.items()
              if isinstance(c, dict) and c.get("APall") is not None and isinstance(c.get("pr_curve"), dict)]
    if not curves:
        return None
    recall = curves[0][1]["pr_curve"]["recall"]
    # Every class is reported on the same 101-point recall grid (bench.metrics.detection.CURVE_RECALLS).
    return {"r": [_r(x, 3) for x in recall],
            "c": [[name, _r(c["APall"]), [_r(p, 3) for p in c["pr_curve"]["precision"]]] for name, c in curves]}


def cm_data(rec: TrialResult) -> dict[str, Any] | None:
    """Confusion matrix ``m`` (rows = ground truth) with class names ``n`` when ``per_class`` names them all."""
    cm = rec.extras.get("confusion_matrix")
    if not cm:
        return None
    names = list(rec.per_class) if len(rec.per_class) == len(cm) else [str(i) for i in range(len(cm))]
    return {"m": cm, "n": names}


def drill_data(row: Row) -> dict[str, Any]:
    """What the drill-down of ``row`` draws, from its representative seed."""
    primary = TASKS.get(row.task).meta.primary_metric if row.task in TASKS else ""
    rec = representative(row, primary)
    out: dict[str, Any] = {"model": row.model, "task": row.task, "primary": primary, "seed": rec.seed,
                           "seeds": row.seeds, "trial": rec.trial_id}
    if rec.status != "ok":
        out["error"] = rec.error or "unknown error"
        return out
    out["history"] = history_data(rec, primary)
    out["pr"] = pr_data(rec.per_class) if rec.task in ("detection", "instance_segmentation") else None  # box PR
    out["cm"] = cm_data(rec)
    return out


def data_json(payload: dict[str, Any]) -> str:
    """JSON safe inside ``<script>``: every ``<`` escaped, so no ``</script>`` or ``<!--`` can end the element."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


# --------------------------------------------------------------------------------------------
# Pareto plot (inline SVG, static)
# --------------------------------------------------------------------------------------------

W, H = 560, 320
ML, MR, MT, MB = 60, 20, 14, 44  # margins: room for tick labels and axis titles


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering ``[lo, hi]`` (steps 1, 2, 5 × 10^k)."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step - 1e-9) * step
    return [round(start + i * step, 12) for i in range(int((hi - start) / step + 1e-9) + 1)]


def _axis(lo: float, hi: float, log: bool) -> tuple[float, float, list[float]]:
    """Padded data range of one axis and its ticks (decades on a log axis)."""
    if log:
        a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        return 10.0**a, 10.0**b, [10.0**k for k in range(a, b + 1)]
    pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0
    ticks = nice_ticks(lo - pad, hi + pad)
    return lo - pad, hi + pad, ticks


def _tick_text(v: float) -> str:
    return f"{v:g}"


def pareto_svg(table: Table) -> str:
    """Primary metric against latency for the table's ok rows, the Pareto front drawn as a staircase.

    The latency axis is logarithmic when it spans more than a factor of 10.  A paragraph instead when
    no row has both numbers.
    """
    rows = [r for r in table.rows if r.ok and r.latency_ms and table.primary in r.metrics]
    if not rows:
        return "<p class='muted'>No row has both a latency and a " + esc(table.primary) + ": no Pareto plot.</p>"
    xs = [float(r.latency_ms or 0.0) for r in rows]
    ys = [r.metrics[table.primary].mean for r in rows]
    log = min(xs) > 0 and max(xs) / min(xs) > 10
    x0, x1, xt = _axis(min(xs), max(xs), log)
    y0, y1, yt = _axis(min(ys), max(ys), False)

    def px(x: float) -> float:
        f = (math.log10(x) - math.log10(x0)) / (math.log10(x1) - math.log10(x0)) if log else (x - x0) / ((x1 - x0) or 1)
        return ML + f * (W - ML - MR)

    def py(y: float) -> float:
        return H - MB - (y - y0) / ((y1 - y0) or 1) * (H - MT - MB)

    front = pareto_front(list(zip(xs, ys, strict=True)), table.higher_is_better)
    on_front = set(front)
    parts = [f"<svg class='pareto' viewBox='0 0 {W} {H}' width='{W}' height='{H}' role='img' "
             f"aria-label='{esc(table.primary)} against latency'>",
             f"<rect x='{ML}' y='{MT}' width='{W - ML - MR}' height='{H - MT - MB}' class='plot'/>"]
    for t in xt:
        if x0 <= t <= x1:
            parts.append(f"<line class='grid' x1='{px(t):.1f}' x2='{px(t):.1f}' y1='{MT}' y2='{H - MB}'/>"
                         f"<text class='tick' x='{px(t):.1f}' y='{H - MB + 14}' text-anchor='middle'>"
                         f"{_tick_text(t)}</text>")
    for t in yt:
        if y0 <= t <= y1:
            parts.append(f"<line class='grid' x1='{ML}' x2='{W - MR}' y1='{py(t):.1f}' y2='{py(t):.1f}'/>"
                         f"<text class='tick' x='{ML - 6}' y='{py(t) + 4:.1f}' text-anchor='end'>"
                         f"{_tick_text(t)}</text>")
    parts.append(f"<text class='axis' x='{(ML + W - MR) / 2}' y='{H - 8}' text-anchor='middle'>latency, ms per "
                 f"image at batch 1{' (log scale)' if log else ''}</text>"
                 f"<text class='axis' transform='translate(14 {(MT + H - MB) / 2}) rotate(-90)' "
                 f"text-anchor='middle'>{esc(table.primary)}</text>")
    # Staircase: from each front point right to the next one's latency, then up (down) to its score.
    step = " ".join(f"M{px(xs[i]):.1f} {py(ys[i]):.1f}" if k == 0 else f"H{px(xs[i]):.1f} V{py(ys[i]):.1f}"
                    for k, i in enumerate(front))
    parts.append(f"<path class='front' d='{step}'/>")
    for i, r in enumerate(rows):
        cls = "pt front" if i in on_front else "pt"
        tip = f"{r.model}: {table.primary} {ys[i]:.4f}, {xs[i]:.3g} ms"
        parts.append(f"<circle class='{cls}' data-model='{esc(r.model)}' cx='{px(xs[i]):.1f}' cy='{py(ys[i]):.1f}' "
                     f"r='4'><title>{esc(tip)}</title></circle>")
        if i in on_front:  # labelled; to the left of points near the right edge, so the name stays inside
            left = px(xs[i]) > W - MR - 100
            x, anchor = (px(xs[i]) - 6, "end") if left else (px(xs[i]) + 6, "start")
            parts.append(f"<text class='label' data-model='{esc(r.model)}' x='{x:.1f}' y='{py(ys[i]) - 6:.1f}' "
                         f"text-anchor='{anchor}'>{esc(r.model)}</text>")
    parts.append("</svg>")
    return "".join(parts)


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

#: Tail columns sorted as numbers, with the row value each sorts by.
NUMERIC_TAIL = {
    "seeds": lambda r: r.seeds,
    "train s": lambda r: r.train_s,
    "train acc": lambda r: _num(r.train_fit),
    "test n": lambda r: _num(r.test_images.split("–")[0]),
    "params": lambda r: r.params,
    "FLOPs": lambda r: r.flops,
    "latency ms": lambda r: r.latency_ms,
    "img/s": lambda r: r.throughput_ips,
    "peak MB": lambda r: r.peak_memory_mb,
}


def _num(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _td(text: str, value: float | None = None, extra: str = "") -> str:
    v = "" if value is None else f" data-v='{value:.6g}'"
    return f"<td{v}{extra}>{esc(text)}</td>"


def metric_td(row: Row, name: str) -> str:
    """A metric cell: the text shown, the mean in ``data-v`` and the interval in ``data-lo``/``data-hi``."""
    s = row.metrics.get(name)
    if s is None:
        return _td(MISSING)
    extra = ""
    if s.low is not None and s.high is not None:
        how = (f"{s.n} seeds, 95% t-interval of the mean" if s.method == "t"
               else "1 seed, 95% bootstrap interval over test images")
        extra = f" data-lo='{s.low:.6g}' data-hi='{s.high:.6g}' title='{how}'"
    return _td(metric_cell(row, name), s.mean, extra)


def row_tr(table: Table, row: Row, row_id: str) -> str:
    """One ``<tr>``: the model, its metric cells and the tail cells, with what sorting and filters read."""
    state = "failed" if not row.ok else ("cached" if row.status == "cached" else "ok")
    cells = [f"<td class='model'>{esc(row.model)}</td>", *(metric_td(row, c) for c in table.columns)]
    for name, text in zip(TAIL_HEADERS, tail_cells(row), strict=True):
        get = NUMERIC_TAIL.get(name)
        cells.append(_td(text, None if get is None else get(row)))
    return (f"<tr class='{state}' data-model='{esc(row.model)}' data-task='{esc(row.task)}' data-row='{row_id}' "
            f"tabindex='0'>" + "".join(cells) + "</tr>")


def header_tr(table: Table) -> str:
    cols = [("model", "text"), *((c, "num") for c in table.columns),
            *((h, "num" if h in NUMERIC_TAIL else "text") for h in TAIL_HEADERS)]
    return "<tr>" + "".join(f"<th scope='col' data-type='{kind}' title='sort by {esc(name)}'>{esc(name)}</th>"
                            for name, kind in cols) + "</tr>"


def section(table: Table, index: int, row_ids: dict[int, str]) -> str:
    """One table's ``<section>``: heading, notes, the table, its drill-down panel and its Pareto plot."""
    notes = "".join(f"<p class='note'>{esc(n)}</p>" for n in table_notes(table))
    body = "".join(row_tr(table, r, row_ids[id(r)]) for r in table.rows)
    return (f"<section class='board' id='board-{index}' data-task='{esc(table.task)}' "
            f"data-dataset='{esc(table.dataset)}' data-profile='{esc(table.profile)}'>"
            f"<h2>{esc(heading(table))}</h2>{notes}"
            f"<div class='scroll'><table class='lb'><thead>{header_tr(table)}</thead>"
            f"<tbody>{body}</tbody></table></div>"
            f"<div class='drill' hidden></div>"
            f"<figure>{pareto_svg(table)}<figcaption>Pareto front (orange): the rows no other row beats on both "
            f"{esc(table.primary)} and latency.</figcaption></figure></section>")


def render(tables: Sequence[Table], meta: ReportMeta) -> str:
    """The whole page."""
    row_ids: dict[int, str] = {}
    details: dict[str, Any] = {}
    for t in tables:
        for r in t.rows:  # a Siamese row sits in two tables: one id, one drill-down payload
            if id(r) not in row_ids:
                row_ids[id(r)] = rid = f"r{len(row_ids)}"
                details[rid] = drill_data(r)
    tasks = list(dict.fromkeys(t.task for t in tables))
    options = "".join(f"<option value='{esc(t)}'>{esc(t)}</option>" for t in tasks)
    sections = "".join(section(t, i, row_ids) for i, t in enumerate(tables)) or "<p>No trials to show.</p>"
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{esc(meta.title)}</title><style>{asset('leaderboard.css')}</style></head><body>"
        f"<h1>{esc(meta.title)}</h1><p class='source'>Source: {esc(meta.source)}.</p>"
        f"<p class='legend'>{esc(INTERVALS.replace('`', ''))}</p>"
        "<div id='controls' class='js-only'><label>Task <select id='task-filter'><option value=''>all tasks</option>"
        f"{options}</select></label> <label>Model <input id='model-filter' type='search' "
        "placeholder='part of a model name'></label> <span class='muted'>Click a column header to sort, a row for "
        "its training curves, PR curves or confusion matrix.</span></div>"
        "<noscript><p class='muted'>Sorting, filters and drill-downs need JavaScript; the tables and Pareto plots "
        "do not.</p></noscript>"
        f"{sections}"
        f"<script type='application/json' id='bench-data'>{data_json(details)}</script>"
        f"<script>{asset('leaderboard.js')}</script></body></html>\n"
    )
