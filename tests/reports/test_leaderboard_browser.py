"""The leaderboard page in headless Chromium: header clicks sort the DOM rows, the task selector hides
other tasks' tables, a row click draws its drill-down SVG.

Needs Playwright (a ``dev`` extra) and a Chromium executable (Debian's ``chromium``, found on PATH or
at ``$BENCH_CHROMIUM``; Playwright's own browser download is not used).  Without them the tests skip
with the reason, unless ``BENCH_REQUIRE_BROWSER=1`` (set by ``.ci/run``), where they fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.reports.leaderboard import ReportEntry, write_report
from tests.reports.records import detection_per_class, history, record

# One worker runs them all under `pytest -n 2 --dist loadgroup`: one Chromium start, not two.
pytestmark = pytest.mark.xdist_group("browser")


def unavailable(reason: str) -> None:
    """Skip for ``reason``, or fail when CI requires the browser."""
    if os.environ.get("BENCH_REQUIRE_BROWSER") == "1":
        pytest.fail(f"BENCH_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def chromium() -> str | None:
    """``$BENCH_CHROMIUM``, else the first Chromium-like executable on PATH."""
    if os.environ.get("BENCH_CHROMIUM"):
        return os.environ["BENCH_CHROMIUM"]
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def report(out: Path) -> Path:
    """A page of two tasks: classification (three models, one of them two seeds, and a failed one) and detection."""
    cls_cm = {"confusion_matrix": [[8, 2], [1, 9]]}
    recs = [
        record("beta", metrics={"top1": 0.90}, latency_ms=5.0, history=history(4), extras=cls_cm,
               per_class={"circle": {}, "square": {}}),
        record("alpha", metrics={"top1": 0.70}, seed=0, latency_ms=1.0, history=history(4)),
        record("alpha", metrics={"top1": 0.74}, seed=1, latency_ms=1.2, history=history(4)),
        record("gamma", metrics={"top1": 0.80}, latency_ms=20.0, history=history(4)),
        record("delta", status="failed", error="RuntimeError: out of memory"),
        record("faster_rcnn", "detection", {"mAP": 0.40, "mAP_50": 0.6}, latency_ms=30.0, history=history(3, "mAP"),
               per_class=detection_per_class(3)),
        record("ssd", "detection", {"mAP": 0.30, "mAP_50": 0.5}, latency_ms=10.0, per_class=detection_per_class(2)),
    ]
    return write_report([ReportEntry(r, "run-1") for r in recs], out, "browser test", "synthetic records")[1]


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, list[str]]]:
    """One headless Chromium page on the report (each test reloads it), and the JavaScript errors it raised."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[dev]')")
    exe = chromium()
    if exe is None:
        unavailable("no Chromium executable on PATH or at $BENCH_CHROMIUM (apt-get install chromium)")
    page_file = report(tmp_path_factory.mktemp("report"))
    with sync_playwright() as pw:
        try:
            # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
            browser = pw.chromium.launch(executable_path=exe, headless=True,
                                         args=["--no-sandbox", "--disable-dev-shm-usage"])
        except Error as exc:
            unavailable(f"Chromium at {exe} did not start: {str(exc).splitlines()[0]}")
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_file.as_uri())
        yield page, errors
        browser.close()


@pytest.fixture
def page(browser_page: tuple[Any, list[str]]) -> Iterator[Any]:
    """The page as loaded, no sorting, filter or drill-down left from another test; no JavaScript error after."""
    page, errors = browser_page
    page.reload()
    errors.clear()
    yield page
    assert errors == [], "JavaScript errors on the page"


def models(page: Any, task: str) -> list[str]:
    """Model names of a task's table, in DOM order."""
    return page.eval_on_selector_all(f"section[data-task='{task}'] tbody tr", "rows => rows.map(r => r.dataset.model)")


def visible_models(page: Any) -> list[tuple[str, str]]:
    """(table task, model) of every row a reader can see."""
    return [(row.evaluate("r => r.closest('section').dataset.task"), row.get_attribute("data-model"))
            for row in page.locator("tbody tr:visible").all()]


def test_header_click_sorts_rows_ascending_then_descending(page: Any) -> None:
    assert models(page, "classification") == ["beta", "gamma", "alpha", "delta"]  # as built: best top1 first
    header = page.locator("section[data-task='classification'] thead th", has_text="top1")
    header.click()
    assert models(page, "classification") == ["alpha", "gamma", "beta", "delta"]  # "—" (failed) last
    assert header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert models(page, "classification") == ["beta", "gamma", "alpha", "delta"]  # still last
    assert header.get_attribute("aria-sort") == "descending"
    page.locator("section[data-task='classification'] thead th", has_text="latency ms").click()
    assert models(page, "classification") == ["alpha", "beta", "gamma", "delta"]  # numeric: 1.1 < 5 < 20
    page.locator("section[data-task='classification'] thead th", has_text="model").click()
    assert models(page, "classification") == ["alpha", "beta", "delta", "gamma"]


def test_task_and_model_filters_hide_rows(page: Any) -> None:
    assert {task for task, _ in visible_models(page)} == {"classification", "detection"}
    page.select_option("#task-filter", "detection")
    assert visible_models(page) == [("detection", "faster_rcnn"), ("detection", "ssd")]
    page.select_option("#task-filter", "")
    page.fill("#model-filter", "AL")
    assert visible_models(page) == [("classification", "alpha")]


def test_row_click_opens_its_drill_down(page: Any) -> None:
    det = page.locator("section[data-task='detection']")
    assert det.locator(".drill").is_hidden()
    det.locator("tbody tr[data-model='faster_rcnn']").click()
    drill = det.locator(".drill")
    assert drill.is_visible() and "faster_rcnn" in drill.locator("h3").inner_text()
    assert drill.locator("svg.chart").count() == 3  # training loss, val mAP, PR curves
    assert drill.locator("svg.chart path[stroke]").count() >= 3  # a curve per class at least
    cls = page.locator("section[data-task='classification']")
    cls.locator("tbody tr[data-model='beta']").click()
    assert cls.locator(".drill svg.cm rect").count() == 4  # 2 x 2 confusion matrix
    cls.locator("tbody tr[data-model='delta']").click()
    assert "out of memory" in cls.locator(".drill").inner_text()  # a failed row says why
    cls.locator("tbody tr[data-model='delta']").click()
    assert cls.locator(".drill").is_hidden()  # a second click closes it


def test_pareto_plot_highlights_the_front(page: Any) -> None:
    points = page.locator("section[data-task='classification'] svg.pareto circle")
    assert points.count() == 3
    front = page.eval_on_selector_all("section[data-task='classification'] svg.pareto circle.front",
                                      "cs => cs.map(c => c.dataset.model)")
    assert sorted(front) == ["alpha", "beta"]  # gamma: slower than beta and worse
