"""The detection zoo on CUDA with AMP: a fixed number of training steps per model, steps/s and peak memory.

Issue 11 asks, where a GPU machine is lent, for each new detector trained for 200 steps at AMP with its
steps per second and peak memory.  This runs the engine directly (no Ray, MLflow or DVC, which the GPU
image lacks): the task's own dataset, collate, loss and optimiser, fp16 autocast + GradScaler, gradient
clipping as configured.  Usage, on a machine with the shapes data pulled (and, for rcnn / spp_net /
fast_rcnn without OpenCV there, a warm proposal cache: ``BENCH_PROPOSAL_CACHE`` carried along):

    python benchmarks/gpu_detection_steps.py                      # every detector, 200 steps, gpu profile
    python benchmarks/gpu_detection_steps.py rcnn,panet 50 cpu    # models, steps, profile

Prints one JSON line per model (steps/s after 10 warm-up steps, images/s, peak CUDA memory, first and last
loss) and writes them to ``$OUT/gpu_detection_steps.json`` (default: the current directory).  On a machine
without CUDA it runs the same loop on the CPU (AMP off), which is how it is checked here.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

from bench.config.catalog import Catalog, effective_trial, model_task
from bench.engine.data import make_loader
from bench.engine.device import autocast, select_device, sync
from bench.engine.trainer import make_optimizer, seed_everything
from bench.tasks import task_impl

DETECTION_TASKS = ("detection", "instance_segmentation")
WARMUP = 10


def detectors(catalog: Catalog) -> list[str]:
    """Every shipped model config whose builder's task is detection or instance segmentation."""
    return [n for n in catalog.model_files if model_task(catalog.model(n)) in DETECTION_TASKS]


def check(name: str, steps: int, profile: str, catalog: Catalog) -> dict:
    """``steps`` AMP training steps of ``name`` on shapes under ``profile``; timing after the warm-up."""
    cfg = effective_trial(catalog.model(name), catalog.dataset("shapes"), catalog.profile(profile), seed=0)
    device = select_device("auto")
    amp = device.type == "cuda"
    cfg = cfg.model_copy(update={"device": device.type, "train": cfg.train.model_copy(update={"amp": amp})})
    seed_everything(0)
    task = task_impl(cfg.task)(cfg, Path(cfg.dataset.root))
    model = task.build_model().to(device).train()
    loader = make_loader(task.dataset("train", train=True), cfg.train.batch_size, shuffle=True, seed=0,
                         num_workers=min(cfg.train.num_workers, 6), collate=task.collate)
    opt = make_optimizer(model, cfg)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    losses, t0, timed_steps = [], 0.0, 0
    batches = itertools.chain.from_iterable(itertools.repeat(loader))  # epochs back to back
    for step, batch in zip(range(steps), batches, strict=False):
        if step == min(WARMUP, steps - 1):
            sync(device)
            t0, timed_steps = time.perf_counter(), 0
        with autocast(device, amp):
            loss = task.loss(model, batch, device)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.train.grad_clip:
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        scaler.step(opt)
        scaler.update()
        losses.append(loss.item())
        timed_steps += 1
    sync(device)
    seconds = time.perf_counter() - t0
    return {
        "model": name, "profile": profile, "device": str(device), "amp": amp, "steps": len(losses),
        "batch_size": cfg.train.batch_size, "image_size": cfg.train.image_size,
        "steps_per_s": round(timed_steps / seconds, 2), "images_per_s": round(timed_steps * cfg.train.batch_size
                                                                             / seconds, 1),
        "peak_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None,
        "loss_first": round(losses[0], 4), "loss_last": round(losses[-1], 4),
        "finite": all(map(math.isfinite, losses)),
    }


def main() -> None:
    catalog = Catalog(Path("configs"))
    models = sys.argv[1].split(",") if len(sys.argv) > 1 and sys.argv[1] else detectors(catalog)
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    profile = sys.argv[3] if len(sys.argv) > 3 else "gpu"
    cuda = torch.cuda.is_available()
    print("torch", torch.__version__, "cuda", cuda, torch.cuda.get_device_name(0) if cuda else "-", flush=True)
    rows = []
    for name in models:
        try:
            row = check(name, steps, profile, catalog)
        except Exception as e:  # one failure must not hide the other models' numbers
            row = {"model": name, "error": repr(e)[:500]}
        print(json.dumps(row), flush=True)
        rows.append(row)
    (Path(os.environ.get("OUT", ".")) / "gpu_detection_steps.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
