"""The cpu profile's budgeted classification recipe, run on CUDA with AMP, without Ray or MLflow.

Checks the GPU path of the engine (device selection, fp16 autocast + GradScaler, CUDA memory) and
shows what the same 90 s budget buys on a GPU.  Usage, on a machine with the shapes data pulled:

    python benchmarks/gpu_recipe_check.py resnet18,vgg16,efficientnet_b7 90

Prints one JSON line per model (test top-1 on shapes, epochs done, train seconds, peak CUDA memory)
and writes them to ``$OUT/gpu_check.json`` (default: the current directory).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

from bench.config.catalog import Catalog, effective_trial
from bench.engine.trainer import train_and_test


def check(model: str, limit_s: float, catalog: Catalog) -> dict:
    """Train ``model`` on shapes with the cpu recipe but ``device: auto``, AMP on and ``limit_s`` of training."""
    cfg = effective_trial(catalog.model(model), catalog.dataset("shapes"), catalog.profile("cpu"), seed=0)
    train = cfg.train.model_copy(update={"amp": True, "time_limit_s": limit_s, "num_workers": 6})
    cfg = cfg.model_copy(update={"device": "auto", "train": train})
    t0 = time.time()
    res = train_and_test(cfg, Path("datasets/shapes"), Path("runs/gpu_recipe_check") / model, lambda e: None,
                         Path.cwd())
    cuda = torch.cuda.is_available()
    return {"model": model, "device": res.device, "top1": res.metrics.get("top1"), "epochs": len(res.history),
            "train_s": round(res.timings.get("train_s", 0.0), 1), "wall_s": round(time.time() - t0, 1),
            "infer_ms": res.inference_ms_per_image,
            "max_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else 0.0}


def main() -> None:
    models, limit_s = sys.argv[1].split(","), float(sys.argv[2])
    catalog = Catalog(Path("configs"))
    cuda = torch.cuda.is_available()
    print("torch", torch.__version__, "cuda", cuda, torch.cuda.get_device_name(0) if cuda else "-", flush=True)
    rows = []
    for m in models:
        try:
            row = check(m, limit_s, catalog)
        except Exception as e:  # one failure must not hide the other models' numbers
            row = {"model": m, "error": repr(e)[:500]}
        print(json.dumps(row), flush=True)
        rows.append(row)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
    (Path(os.environ.get("OUT", ".")) / "gpu_check.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
