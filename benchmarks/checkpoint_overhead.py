"""What per-epoch checkpointing (the state a retried trial resumes from) costs a training run.

Runs one trial of the cpu profile (default: ``resnet18`` on ``shapes``) through the engine, without
Ray or MLflow, four times in the same process (ABBA): with the per-epoch checkpoints every trial
writes (weights, optimiser, scaler, RNG and loop state), and with ``checkpoint: false`` as the
reference.  Prints the time spent writing checkpoints as a fraction of the training time of the
same runs (the target is <= 3%), and the reference's throughput beside the checkpointing runs', as
a cross-check.

    python benchmarks/checkpoint_overhead.py [MODEL] [DATASET]

The training time is the trial's own budget (``train.time_limit_s``), so the two runs train for the
same wall time and the cost shows in the iterations per second.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from bench.config.catalog import Catalog, TrialConfig, effective_trial
from bench.engine.trainer import train_and_test

ROOT = Path(__file__).resolve().parents[1]


def trial(model: str, dataset: str, checkpoint: bool) -> dict:
    """Train and test one cpu-profile trial; its training time split, and its checkpoint's size."""
    cat = Catalog(ROOT / "configs")
    cfg: TrialConfig = effective_trial(cat.model(model), cat.dataset(dataset), cat.profile("cpu"), seed=0)
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"checkpoint": checkpoint})})
    with tempfile.TemporaryDirectory(prefix="bench-ckpt-") as tmp:
        out = train_and_test(cfg, ROOT / cfg.dataset.root, Path(tmp), lambda e: None, ROOT)
        size = (Path(tmp) / "last.pt").stat().st_size if checkpoint else 0
    t = out.timings
    return {"checkpoint": checkpoint, "epochs": len(out.history), "epochs_done": round(out.training.epochs_done, 2),
            "train_s": round(t["train_s"], 2), "checkpoint_s": round(t.get("checkpoint_s", 0.0), 3),
            "saves": len(out.history) if checkpoint else 0, "checkpoint_mb": round(size / 2**20, 1),
            "epochs_per_s": out.training.epochs_done / t["train_s"]}  # steps per second, up to a constant


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else "resnet18"
    dataset = sys.argv[2] if len(sys.argv) > 2 else "shapes"
    runs = []
    for checkpoint in (True, False, False, True):  # ABBA: a drift in the machine's load hits both sides alike
        runs.append(trial(model, dataset, checkpoint))
        print(json.dumps(runs[-1]), flush=True)
    with_ckpt = [r for r in runs if r["checkpoint"]]
    reference = [r for r in runs if not r["checkpoint"]]
    ckpt_s, train_s = sum(r["checkpoint_s"] for r in with_ckpt), sum(r["train_s"] for r in with_ckpt)
    saves = sum(r["saves"] for r in with_ckpt)
    print(f"{model}@{dataset}, cpu profile: {saves} checkpoints of {with_ckpt[0]['checkpoint_mb']} MB, "
          f"{1000 * ckpt_s / max(1, saves):.0f} ms each; checkpoint time / training time = {ckpt_s:.2f} s / "
          f"{train_s:.1f} s = {ckpt_s / train_s:.2%} (target <= 3%)")
    rate = sum(r["epochs_per_s"] for r in with_ckpt) / sum(r["epochs_per_s"] for r in reference)
    print(f"cross-check: epochs per training second with / without checkpoints = {rate:.3f} "
          f"(1 - that = {1 - rate:.2%}; measures the machine's noise as much as the checkpoints)")


if __name__ == "__main__":
    main()
