"""Wall time of `bench list` and `bench --help` as a user runs them, against the 2 s budget.

The first call is reported apart from the warm ones: where bytecode caches are missing it pays for
compiling every imported module (this is why the Makefile lets pip compile at install time).

Usage: ``python benchmarks/cli_startup.py [--repeat 5]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

BUDGET_S = 2.0


def wall(cmd: list[str]) -> float:
    """Seconds one run of ``cmd`` takes (it must succeed)."""
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    bench = str(Path(sys.executable).with_name("bench"))
    for cmd in ([bench, "list"], [bench, "--help"]):
        first = wall(cmd)
        warm = [wall(cmd) for _ in range(args.repeat)]
        med = statistics.median(warm)
        print(f"{' '.join(['bench', *cmd[1:]]):<14} first {first:5.2f} s | warm median {med:5.2f} s, "
              f"min {min(warm):5.2f} s | median / budget {med / BUDGET_S:.2f}x (budget {BUDGET_S:.0f} s)")


if __name__ == "__main__":
    main()
