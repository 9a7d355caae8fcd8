"""What per-epoch checkpointing (the state a retried trial resumes from) costs a training run.

Runs one trial of the cpu profile (default: ``resnet18`` on ``shapes``) through the engine, without
Ray or MLflow, twice in the same process: with the per-epoch checkpoints every trial writes (weights,
optimiser, scaler, RNG and loop state), and with ``checkpoint: false`` as the reference.  Prints the
time spent writing checkpoints as a fraction of the training time of the same run (the target is
<= 3%), and the reference's throughput beside the checkpointing run's, as a cross-check.

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
    with_ckpt = trial(model, dataset, checkpoint=True)
    print(json.dumps(with_ckpt), flush=True)
    reference = trial(model, dataset, checkpoint=False)
    print(json.dumps(reference), flush=True)
    ratio = with_ckpt["checkpoint_s"] / with_ckpt["train_s"]
    per_save = 1000 * with_ckpt["checkpoint_s"] / max(1, with_ckpt["saves"])
    print(f"{model}@{dataset}, cpu profile: {with_ckpt['saves']} checkpoints of {with_ckpt['checkpoint_mb']} MB, "
          f"{per_save:.0f} ms each; checkpoint time / training time = {with_ckpt['checkpoint_s']:.2f} s / "
          f"{with_ckpt['train_s']:.1f} s = {ratio:.2%} (target <= 3%)")
    rate = with_ckpt["epochs_per_s"] / reference["epochs_per_s"]
    print(f"cross-check: epochs per training second with / without checkpoints = {rate:.3f} "
          f"(1 - that = {1 - rate:.2%}; a noisy machine moves this by a few %)")


if __name__ == "__main__":
    main()
