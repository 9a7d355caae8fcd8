"""`bench report` over 10,000 records in the results store: target <= 10 s.

Templates are real records (``bench run all --profile smoke --output``, made here unless
``--templates FILE`` is given: a classification, a detection and a segmentation record with their
history, per-class PR data, confusion matrices, CIs and efficiency numbers).  They are copied into
a fresh store as N distinct (model, dataset, profile, seed) records over 10 runs with jittered
metrics, so the "latest result of each model" view selects all of them: the worst case.  The
script then times the real command, ``bench report --out TMP`` in a subprocess, start-up included.

Usage: ``python benchmarks/report_speed.py [--records 10000] [--templates out.json]``
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_S = 10.0


def templates(path: Path | None, tmp: Path, bench: str) -> list:
    from bench.results.record import read_results

    if path is None:
        path = tmp / "templates.json"
        env = {**os.environ, "BENCH_RESULTS": str(tmp / "t.db"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/t.db.mlflow",
               "BENCH_PLAIN_PROGRESS": "1", "HF_HUB_OFFLINE": "1"}
        subprocess.run([bench, "run", "all", "--profile", "smoke", "--no-report", "--output", str(path)], env=env,
                       check=True, capture_output=True)
    return [r for r in read_results(path) if r.status == "ok"]


def fill(store_path: Path, records: int, tpl: list) -> None:
    """``records`` copies of the templates, each its own (model, dataset, profile, seed)."""
    from bench.results.store import ResultsStore

    store = ResultsStore(store_path)
    rng = random.Random(0)
    per_run = records // 10
    for run in range(10):
        name = f"synthetic-{run:02d}"
        store.start_run(name, "all", "cpu", "0" * 40, "code")
        for i in range(per_run):
            t = tpl[i % len(tpl)]
            n = run * per_run + i
            model, dataset, profile, seed = f"{t.model}_{n // 40:04d}", f"data{(n // 10) % 2}", \
                ("cpu", "gpu")[(n // 20) % 2], n % 10
            metrics = {k: (None if v is None else min(1.0, max(0.0, v + rng.gauss(0, 0.05))))
                       for k, v in t.metrics.items()}
            store.add(name, t.model_copy(update={
                "model": model, "dataset": dataset, "profile": profile, "seed": seed, "metrics": metrics,
                "trial_id": f"{model}@{dataset}#{seed}", "key": f"synthetic-{n}", "samples": None}))
        store.finish_run(name, "finished")
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--templates", type=Path, default=None)
    args = ap.parse_args()
    bench = str(Path(sys.executable).with_name("bench"))
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp_s:
        tmp = Path(tmp_s)
        tpl = templates(args.templates, tmp, bench)
        fill(tmp / "results.db", args.records, tpl)
        env = {**os.environ, "BENCH_RESULTS": str(tmp / "results.db")}
        t0 = time.perf_counter()
        subprocess.run([bench, "report", "--out", str(tmp / "reports")], env=env, check=True, capture_output=True)
        took = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in (tmp / "reports").iterdir()) / 2**20
    print(f"bench report over {args.records} records ({len(tpl)} templates): {took:.2f} s, reports {size:.1f} MiB "
          f"| ratio to budget {took / BUDGET_S:.2f} (budget {BUDGET_S:.0f} s) {'OK' if took <= BUDGET_S else 'MISSED'}")


if __name__ == "__main__":
    main()
