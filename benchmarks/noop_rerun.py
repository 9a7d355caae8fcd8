"""A no-op rerun of a finished `bench run` against the first run: target ratio < 5%.

Runs ``bench run TARGET --profile P`` twice into a fresh results store and MLflow database (temp
folder), the second time with nothing to train (every trial key already has an ok record), and
prints both wall times and their ratio.  The second run must list every trial as cached.

Usage: ``python benchmarks/noop_rerun.py [--target all] [--profile cpu]`` (the default is the
embedded `bench run all`, about 7 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 0.05


def timed_run(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return time.perf_counter() - t0, out.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="all")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seeds", type=int, default=1)
    args = ap.parse_args()
    bench = str(Path(sys.executable).with_name("bench"))
    with tempfile.TemporaryDirectory(prefix="bench-noop-") as tmp:
        env = {**os.environ, "BENCH_RESULTS": f"{tmp}/results.db", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
               "BENCH_PLAIN_PROGRESS": "1", "HF_HUB_OFFLINE": "1"}
        cmd = [bench, "run", args.target, "--profile", args.profile, "--seeds", str(args.seeds), "--no-report"]
        first, _ = timed_run(cmd, env)
        second, out = timed_run(cmd, env)
    cached = out.count(" cached ")
    ratio = second / first
    print(f"bench run {args.target} --profile {args.profile}: first {first:.1f} s, no-op rerun {second:.2f} s "
          f"({cached} trial rows cached) | ratio {ratio:.4f} (target < {TARGET_RATIO:.2f}) "
          f"{'OK' if ratio < TARGET_RATIO else 'MISSED'}")


if __name__ == "__main__":
    main()
