"""The generic train/eval loop shared by every task.

Seeded; CUDA + AMP when present, CPU otherwise; checkpoints (last and best by the task's primary
validation metric) every epoch; the best weights are the ones tested.  Time is split into data,
compute and metric time.  Each epoch logs the mean training loss and, where the task counts it
(``Task.count_correct``), the running training accuracy; the result says how training ended
(schedule or time limit, epochs done), how many test images were scored and how the test score
compares with the task's baseline (``Task.baseline``).
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.config.catalog import TrialConfig
from bench.engine.base import Task
from bench.engine.checkpoints import load_weights
from bench.engine.data import make_loader, subsample
from bench.engine.device import autocast, select_device, sync, timed
from bench.engine.efficiency import measure
from bench.engine.transfer import apply_transfer, freeze_frozen_norms
from bench.metrics.significance import BaselineTest
from bench.results.record import Efficiency, EpochLog, TrainingEnd
from bench.tasks import TASKS, task_impl

ProgressFn = Callable[[dict[str, Any]], None]


@dataclass
class LoopOutput:
    """What training and testing produced (turned into a TrialResult by the caller)."""

    metrics: dict[str, Any]
    history: list[EpochLog]
    timings: dict[str, float]
    num_params: int
    device: str
    checkpoint: str | None
    inference_ms_per_image: float | None
    extras: dict[str, Any] = field(default_factory=dict)
    training: TrainingEnd | None = None  # how the schedule ended (ran out or cut by the time limit)
    test_images: int | None = None  # test images evaluated (after ``max_eval_images`` subsampling)
    baseline: BaselineTest | None = None  # the task's baseline on those images, and the test against it
    efficiency: Efficiency | None = None  # the tested model's cost (``bench.engine.efficiency``)
    # The test evaluator's per-image statistics (``samples()``; see ``bench.metrics.bootstrap``), None
    # for an evaluator without them.
    samples: dict[str, np.ndarray] | None = None


@dataclass
class Evaluation:
    """One pass over a split: the evaluator's result, the evaluator itself and the images seen."""

    metrics: dict[str, Any]  # ``evaluator.compute()``; empty when not computed
    ms_per_image: float | None  # forward time per image (first batch skipped)
    evaluator: Any
    images: int


def seed_everything(seed: int) -> None:
    """Python, NumPy and torch RNGs (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Trainable parameters in two groups: weight decay on weight matrices and conv kernels, none on
    1-D tensors (norm scales and shifts, biases).

    Decaying BN scales fights the normalisation rather than regularising the function (the
    reference EfficientNet and timm's ``filter_bias_and_bn`` exclude them); with the cpu recipe's
    decay 0.05 it shrank MBConv networks' BN and SE biases every step.
    """
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def make_optimizer(model: nn.Module, cfg: TrialConfig) -> torch.optim.Optimizer:
    """SGD with momentum, AdamW or RMSProp over the trainable parameters (see ``param_groups``).

    RMSProp is the TF form the MobileNet/EfficientNet/Inception-v3 papers use: decay (torch's
    ``alpha``) 0.9, momentum from the config, epsilon ``train.eps`` (default 1e-3, as EfficientNet's).
    """
    t = cfg.train
    groups = param_groups(model, t.weight_decay)
    if t.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum)
    if t.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=t.lr, alpha=0.9, momentum=t.momentum, eps=t.eps or 1e-3)
    # The fused kernel updates all tensors in one pass: measured on CPU, VGG-11's 129M-parameter
    # step went from ~1.5 s to ~0.2 s.
    return torch.optim.AdamW(groups, lr=t.lr, eps=t.eps or 1e-8, fused=True)


def lr_factor(it: int, total: int, cfg: TrialConfig, elapsed_s: float = 0.0) -> float:
    """Multiplier of the base LR at iteration ``it`` of ``total``: linear warm-up, then the schedule.

    With ``time_limit_s`` the run is budgeted (Li et al. 2020, "Budgeted Training"): progress is
    the larger of the iteration and the time fraction, so the schedule anneals to its end when the
    budget runs out rather than being cut off at a high learning rate.
    """
    t = cfg.train
    if it < t.warmup_iters:
        return (it + 1) / t.warmup_iters
    progress = (it - t.warmup_iters) / max(1, total - t.warmup_iters)
    if t.time_limit_s:
        progress = min(1.0, max(progress, elapsed_s / t.time_limit_s))
    if t.scheduler == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    if t.scheduler == "step":
        return 0.1 ** sum(progress >= m for m in (2 / 3, 8 / 9))
    return 1.0


def precise_bn(model: nn.Module, loader: Any, task: Task, device: torch.device, batches: int) -> None:
    """Re-estimate BatchNorm running statistics as plain averages over ``batches`` training batches.

    The running averages (momentum 0.1) trail the weights; after a short, fast-moving schedule they
    describe weights of many steps ago, and eval-mode accuracy can sit at chance while train-mode
    accuracy is far above it (measured: DenseNet-121 on MNIST after 90 s, 11% vs 55%).  Recomputing
    them with the final weights is the "precise BN" of Wu & Johnson 2021 (arXiv:2105.07576).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
             and m.training]
    if not norms or batches <= 0:
        return
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    # The statistics of the network that will be evaluated: dropout and stochastic depth off.  With
    # stochastic depth on, a dropped residual branch changes the input statistics of every later BN,
    # and eval then sees other statistics.  Only those modules go to eval mode: detectors compute
    # their losses only while their heads are in train mode.
    random_layers = [m for m in model.modules() if m.training and _is_random_layer(m)]
    for m in random_layers:
        m.eval()
    try:
        with torch.no_grad(), autocast(device, task.cfg.train.amp):
            for i, batch in enumerate(loader):
                if i >= batches:
                    break
                task.loss(model, batch, device)
    finally:
        for m in random_layers:
            m.train()
        for m, mom in zip(norms, saved, strict=True):
            m.momentum = mom


def _is_random_layer(m: nn.Module) -> bool:
    """Dropout of any kind, stochastic depth / drop-path (torchvision's and timm's)."""
    return isinstance(m, nn.modules.dropout._DropoutNd) or type(m).__name__ in ("StochasticDepth", "DropPath")


def evaluate(
    task: Task, model: nn.Module, split: str, device: torch.device, cfg: TrialConfig, acc: dict[str, float],
    compute: bool = True,
) -> Evaluation:
    """``model`` on ``split``: metrics (if ``compute``), the evaluator, forward ms per image, image count."""
    limit = (cfg.train.max_val_images or cfg.train.max_eval_images) if split == "val" else cfg.train.max_eval_images
    ds = subsample(task.dataset(split, train=False), limit, cfg.seed)
    loader = make_loader(
        ds, cfg.train.eval_batch_size or cfg.train.batch_size, shuffle=False, seed=cfg.seed,
        num_workers=cfg.train.num_workers, collate=task.collate,
    )
    model.eval()
    with torch.no_grad(), timed(device, acc, "metric_s"), autocast(device, cfg.train.amp):
        task.before_eval(model, split, device)
    evaluator = task.evaluator(split, getattr(ds, "indices", None))
    fwd_s, fwd_n = 0.0, 0
    t_data = time.perf_counter()
    with torch.no_grad():
        for i, batch in enumerate(loader):
            acc["data_s"] = acc.get("data_s", 0.0) + time.perf_counter() - t_data
            sync(device)
            t0 = time.perf_counter()
            with autocast(device, cfg.train.amp):
                outputs = task.predict(model, batch, device)
            sync(device)
            dt = time.perf_counter() - t0
            acc["compute_s"] = acc.get("compute_s", 0.0) + dt
            if i > 0:  # the first batch pays for lazy init and allocator warm-up
                fwd_s, fwd_n = fwd_s + dt, fwd_n + task.batch_size_of(batch)
            with timed(device, acc, "metric_s"):
                task.update(evaluator, batch, outputs)
            t_data = time.perf_counter()
    with timed(device, acc, "metric_s"):
        metrics = evaluator.compute() if compute else {}
    return Evaluation(metrics, 1000 * fwd_s / fwd_n if fwd_n else None, evaluator, len(ds))


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float | None]:
    """The scalar (float or null) entries of an evaluator result."""
    return {k: (None if v is None else float(v)) for k, v in metrics.items()
            if v is None or (isinstance(v, int | float) and not isinstance(v, bool))}


def train_and_test(
    cfg: TrialConfig, dataset_root: Path, run_dir: Path, progress: ProgressFn, project: Path | None = None
) -> LoopOutput:
    """Train ``cfg`` on the train split, select on val, report test metrics.

    ``project`` resolves relative paths in the config (transfer weights); default: the cwd.
    """
    seed_everything(cfg.seed)
    device = select_device(cfg.device)
    spec = TASKS.get(cfg.task).meta
    task: Task = task_impl(cfg.task)(cfg, dataset_root)
    model = task.build_model()
    transfer = apply_transfer(model, cfg.train.transfer, project or Path.cwd())
    model = model.to(device)
    num_params = sum(p.numel() for p in model.parameters())
    train_ds = subsample(task.dataset("train", train=True), cfg.train.max_train_images, cfg.seed)
    loader = make_loader(
        train_ds, cfg.train.batch_size, shuffle=True, seed=cfg.seed,
        num_workers=cfg.train.num_workers, collate=task.collate,
    )
    opt = make_optimizer(model, cfg)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.train.amp and device.type == "cuda")
    total_iters = cfg.train.epochs * len(loader)
    acc: dict[str, float] = {}
    history: list[EpochLog] = []
    best, best_path = -math.inf, None
    run_dir.mkdir(parents=True, exist_ok=True)
    t_base = time.perf_counter()
    untrained = evaluate(task, model, "test", device, cfg, acc, compute=False) if task.untrained_baseline else None
    base_s = time.perf_counter() - t_base
    t_train = time.perf_counter()
    it, out_of_time = 0, False
    limit = cfg.train.time_limit_s
    for epoch in range(1, cfg.train.epochs + 1):
        model.train()
        freeze_frozen_norms(model)
        t_epoch, losses = time.perf_counter(), []
        correct, counted = 0, 0
        task.pop_train_counts()  # forget counts left by calls outside this loop (precise BN)
        t_data = time.perf_counter()
        for batch in loader:
            acc["data_s"] = acc.get("data_s", 0.0) + time.perf_counter() - t_data
            elapsed = time.perf_counter() - t_train - acc.get("val_s", 0.0)
            if limit and elapsed > limit and losses:
                out_of_time = True  # the budget counts training only, not validation
                break
            for group in opt.param_groups:
                group["lr"] = cfg.train.lr * lr_factor(it, total_iters, cfg, elapsed)
            with timed(device, acc, "compute_s"):
                with autocast(device, cfg.train.amp):
                    loss = task.loss(model, batch, device)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite training loss {loss.item()} at epoch {epoch}, iter {it}")
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.train.grad_clip:
                    scaler.unscale_(opt)
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
                scaler.step(opt)
                scaler.update()
            losses.append(loss.item())
            if (counts := task.pop_train_counts()) is not None:
                correct, counted = correct + counts[0], counted + counts[1]
            it += 1
            t_data = time.perf_counter()
        t_val = time.perf_counter()
        precise_bn(model, loader, task, device, cfg.train.precise_bn_batches)
        val = evaluate(task, model, "val", device, cfg, acc).metrics
        acc["val_s"] = acc.get("val_s", 0.0) + time.perf_counter() - t_val
        val_scalars = scalar_metrics(val)
        score = val_scalars.get(spec.primary_metric)
        log = EpochLog(
            epoch=epoch, train_loss=float(np.mean(losses)) if losses else float("nan"),
            train_acc=correct / counted if counted else None, val=val_scalars, lr=opt.param_groups[0]["lr"],
            seconds=time.perf_counter() - t_epoch,
        )
        history.append(log)
        if cfg.train.checkpoint:
            state = {"model": model.state_dict(), "epoch": epoch, "config": cfg.model_dump(mode="json")}
            is_best = score is not None and score > best
            save_checkpoint(state, run_dir, is_best)
            if is_best:
                best, best_path = score, run_dir / "best.pt"
        progress({"event": "epoch", "epoch": epoch, "epochs": cfg.train.epochs, "loss": log.train_loss,
                  "train_acc": log.train_acc, spec.primary_metric: score})
        if out_of_time:
            progress({"event": "time_limit", "epoch": epoch})
            break
    acc["train_s"] = time.perf_counter() - t_train - acc.get("val_s", 0.0)
    if best_path is not None:
        model.load_state_dict(load_weights(best_path, map_location=device)["model"])
    t_test = time.perf_counter()
    test = evaluate(task, model, "test", device, cfg, acc)
    with timed(device, acc, "metric_s"):
        baseline = task.baseline(test.evaluator, untrained.evaluator if untrained else None)
        samples = test.evaluator.samples() if hasattr(test.evaluator, "samples") else None
    acc["test_s"] = time.perf_counter() - t_test + base_s
    # After the test metrics and the baseline, so it cannot change them; its own failures only leave
    # fields empty (the reason goes to the extras).
    efficiency, efficiency_error = measure(task, model, device, cfg)
    extras: dict[str, Any] = {"transfer": transfer, **task.extras()}
    if efficiency_error:
        extras["efficiency_error"] = efficiency_error
    training = TrainingEnd(epochs_planned=cfg.train.epochs, epochs_done=it / max(1, len(loader)),
                           stopped_by="time_limit" if out_of_time else "schedule")
    return LoopOutput(
        metrics=test.metrics, history=history, timings=acc, num_params=num_params, device=str(device),
        checkpoint=str(best_path or (run_dir / "last.pt" if cfg.train.checkpoint else "")) or None,
        inference_ms_per_image=test.ms_per_image, extras=extras, training=training,
        test_images=test.images, baseline=baseline, efficiency=efficiency, samples=samples,
    )


def save_checkpoint(state: dict, run_dir: Path, is_best: bool) -> None:
    """Write ``run_dir/last.pt`` atomically; if ``is_best``, make ``best.pt`` the same file.

    ``best.pt`` is a hard link to the new ``last.pt``, not a second copy: with time-budgeted
    training the last epoch is usually the best, and one EfficientNet-B7 checkpoint is 245 MB
    (two copies per trial filled a disk during a 54-trial run).  Each save writes a new file and
    renames it over the old name, so the other name keeps its own weights and a killed trial never
    leaves a truncated checkpoint.
    """
    tmp = run_dir / "last.pt.tmp"
    torch.save(state, tmp)
    os.replace(tmp, run_dir / "last.pt")
    if is_best:
        link = run_dir / "best.pt.tmp"
        link.unlink(missing_ok=True)
        os.link(run_dir / "last.pt", link)
        os.replace(link, run_dir / "best.pt")
