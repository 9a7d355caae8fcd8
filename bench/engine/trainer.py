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
from bench.engine.checkpoint import BEST, LAST, CheckpointDir, check_resumable, rng_state, set_rng_state
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
    resumed_from_epoch: int | None = None  # the checkpoint's epoch this run went on from; None: a fresh start


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


@dataclass
class LoopState:
    """The training loop's counters, saved in every checkpoint so that a retried trial goes on from them."""

    epoch: int = 0  # epochs finished
    it: int = 0  # optimiser steps taken (drives the LR schedule)
    best: float = -math.inf  # best primary validation score so far
    best_epoch: int | None = None
    history: list[EpochLog] = field(default_factory=list)
    acc: dict[str, float] = field(default_factory=dict)  # the time split so far (data_s, compute_s, val_s ...)
    train_wall_s: float = 0.0  # wall time since training started, validation included
    out_of_time: bool = False  # the time budget ended training

    def to_state(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "it": self.it, "best": self.best, "best_epoch": self.best_epoch,
                "history": [h.model_dump(mode="json") for h in self.history], "acc": dict(self.acc),
                "train_wall_s": self.train_wall_s, "out_of_time": self.out_of_time}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> LoopState:
        return cls(epoch=d["epoch"], it=d["it"], best=d["best"], best_epoch=d["best_epoch"],
                   history=[EpochLog.model_validate(h) for h in d["history"]], acc=dict(d["acc"]),
                   train_wall_s=d["train_wall_s"], out_of_time=d["out_of_time"])


def resume_state(
    ckpt: CheckpointDir, cfg: TrialConfig, model: nn.Module, opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler, loader: Any, device: torch.device,
) -> LoopState | None:
    """Load ``ckpt``'s ``last.pt`` into the model, optimiser and scaler, restore the RNGs; its loop state.

    None when there is no checkpoint.  A checkpoint of another model is an error naming the file.
    """
    if not ckpt.exists(LAST):
        return None
    state = ckpt.load(LAST, device)
    check_resumable(state, ckpt.path(LAST), cfg.model, cfg.trial_id)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"], loader.generator)
    return LoopState.from_state(state["loop"])


def train_and_test(
    cfg: TrialConfig, dataset_root: Path, run_dir: Path | CheckpointDir, progress: ProgressFn,
    project: Path | None = None, resume: bool = False,
) -> LoopOutput:
    """Train ``cfg`` on the train split, select on val, report test metrics.

    ``run_dir``: the trial's checkpoint folder (a path, or a :class:`CheckpointDir` for a URL).
    ``resume``: go on from its ``last.pt`` when there is one (weights, optimiser, scaler, RNGs, epoch,
    time spent), exactly where the stopped run had got to at the end of that epoch.
    ``project`` resolves relative paths in the config (transfer weights); default: the cwd.
    """
    ckpt = run_dir if isinstance(run_dir, CheckpointDir) else CheckpointDir(str(run_dir))
    seed_everything(cfg.seed)
    device = select_device(cfg.device)
    spec = TASKS.get(cfg.task).meta
    task: Task = task_impl(cfg.task)(cfg, dataset_root)
    model = task.build_model()
    transfer = apply_transfer(model, cfg.train.transfer, project or Path.cwd(), cfg.builder)
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
    ckpt.makedirs()
    t_base = time.perf_counter()
    # Before any resume: it scores the freshly initialised model, the same one in every attempt.
    untrained = evaluate(task, model, "test", device, cfg, acc, compute=False) if task.untrained_baseline else None
    base_s = time.perf_counter() - t_base
    loop = (resume_state(ckpt, cfg, model, opt, scaler, loader, device) if resume else None) or LoopState(acc=acc)
    resumed_from = loop.epoch if loop.epoch else None
    if resumed_from:
        progress({"event": "resumed", "epoch": loop.epoch, "epochs": cfg.train.epochs})
    acc = loop.acc
    t_train = time.perf_counter() - loop.train_wall_s
    limit = cfg.train.time_limit_s
    epochs_left = range(loop.epoch + 1, cfg.train.epochs + 1) if not loop.out_of_time else range(0)
    for epoch in epochs_left:
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
                loop.out_of_time = True  # the budget counts training only, not validation
                break
            for group in opt.param_groups:
                group["lr"] = cfg.train.lr * lr_factor(loop.it, total_iters, cfg, elapsed)
            with timed(device, acc, "compute_s"):
                with autocast(device, cfg.train.amp):
                    loss = task.loss(model, batch, device)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"non-finite training loss {loss.item()} at epoch {epoch}, iter {loop.it}")
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
            loop.it += 1
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
        loop.history.append(log)
        loop.epoch = epoch
        if cfg.train.checkpoint:
            is_best = score is not None and score > loop.best
            if is_best:
                loop.best, loop.best_epoch = score, epoch
            t_save = time.perf_counter()
            loop.train_wall_s = t_save - t_train
            ckpt.save({"model": model.state_dict(), "epoch": epoch, "config": cfg.model_dump(mode="json"),
                       "optimizer": opt.state_dict(), "scaler": scaler.state_dict(), "rng": rng_state(loader.generator),
                       "loop": loop.to_state()}, is_best)
            # Saving is part of the training time (it is what fault tolerance costs), kept apart to be measured.
            acc["checkpoint_s"] = acc.get("checkpoint_s", 0.0) + time.perf_counter() - t_save
        progress({"event": "epoch", "epoch": epoch, "epochs": cfg.train.epochs, "loss": log.train_loss,
                  "train_acc": log.train_acc, spec.primary_metric: score})
        if loop.out_of_time:
            progress({"event": "time_limit", "epoch": epoch})
            break
    acc["train_s"] = time.perf_counter() - t_train - acc.get("val_s", 0.0)
    best_path = ckpt.path(BEST) if loop.best_epoch is not None else None
    if best_path is not None:
        model.load_state_dict(ckpt.load(BEST, device)["model"])
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
    training = TrainingEnd(epochs_planned=cfg.train.epochs, epochs_done=loop.it / max(1, len(loader)),
                           stopped_by="time_limit" if loop.out_of_time else "schedule")
    return LoopOutput(
        metrics=test.metrics, history=loop.history, timings=acc, num_params=num_params, device=str(device),
        checkpoint=best_path or (ckpt.path(LAST) if cfg.train.checkpoint else None),
        inference_ms_per_image=test.ms_per_image, extras=extras, training=training,
        test_images=test.images, baseline=baseline, efficiency=efficiency, samples=samples,
        resumed_from_epoch=resumed_from,
    )


def save_checkpoint(state: dict, run_dir: Path, is_best: bool) -> None:
    """Write ``run_dir/last.pt`` atomically; if ``is_best``, make ``best.pt`` the same file
    (see :meth:`bench.engine.checkpoint.CheckpointDir.save`)."""
    CheckpointDir(str(run_dir)).save(state, is_best)
