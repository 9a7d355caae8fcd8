"""Transfer-learning modes (the guide's "Transfer Learning" chapter): scratch, frozen, fine-tune.

* ``scratch``: random init, everything trains.
* ``frozen``: the pretrained backbone is a fixed feature extractor; only a new head trains.
* ``finetune``: a new head plus the last ``finetune_stages`` backbone stages train.

Weights come only from a local file named in the config (nothing is downloaded).  As in the
guide's "load the weights … and skip any mismatch", tensors whose name or shape does not match
are skipped, and the head is always new.  Which modules are the head and the stages is declared by
the model (``bench_head`` / ``bench_stages``, see ``bench.models``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from bench.config.schema import TransferConfig
from bench.engine.checkpoint import UnsafeCheckpointError, load_weights


class TransferError(ValueError):
    """A transfer setting that cannot be applied (missing file, unknown stage …)."""


def head_name(model: nn.Module) -> str:
    """Module path of the classifier head: ``model.bench_head`` or the last child with parameters."""
    name = getattr(model, "bench_head", None)
    if name is None:
        with_params = [n for n, m in model.named_children() if any(True for _ in m.parameters())]
        if not with_params:
            raise TransferError(f"{type(model).__name__} has no parameters to train")
        name = with_params[-1]
    return name


def stage_names(model: nn.Module) -> list[str]:
    """Backbone stages, input to output: ``model.bench_stages`` or the children with parameters but the head."""
    stages = getattr(model, "bench_stages", None)
    if stages is not None:
        return list(stages)
    head = head_name(model)
    return [n for n, m in model.named_children() if n != head and any(True for _ in m.parameters())]


def _under(param: str, prefixes: list[str]) -> bool:
    return any(param == p or param.startswith(p + ".") for p in prefixes)


def checkpoint_writer(state: Any) -> tuple[str | None, str | None]:
    """``(model config name, builder)`` that wrote a bench checkpoint, from its ``config``; Nones when the
    file does not say (a plain state dict, or a checkpoint from elsewhere)."""
    cfg = state.get("config") if isinstance(state, dict) else None
    if not isinstance(cfg, dict):
        return None, None
    model, builder = cfg.get("model"), cfg.get("builder") or cfg.get("model")
    return (model if isinstance(model, str) else None), (builder if isinstance(builder, str) else None)


def _writer_text(model: str | None, builder: str | None) -> str:
    if model is None and builder is None:
        return ""
    return f" (written by model {model!r}" + (f", builder {builder!r}" if builder and builder != model else "") + ")"


def load_backbone(model: nn.Module, path: Path, builder: str | None = None) -> dict[str, list[str]]:
    """Load a local state dict (or checkpoint with a ``model`` key) into ``model`` except its head.

    ``builder``: the registered architecture of ``model``; a bench checkpoint whose ``config`` names
    another builder is refused (its tensors would load where names and shapes happen to agree, and
    the rest would be skipped without a word).  Returns ``{"loaded": [...], "skipped": [...]}`` tensor
    names (skipped: head, unknown or shape-mismatched).
    """
    if not path.is_file():
        raise TransferError(
            f"transfer.weights: {path} does not exist. Give a local .pt/.pth state dict (e.g. saved with "
            f"torch.save(model.state_dict(), path)); bench never downloads weights."
        )
    try:
        state: Any = load_weights(path)
    except UnsafeCheckpointError as exc:
        raise TransferError(f"transfer.weights: {exc}") from None
    wrote_model, wrote_builder = checkpoint_writer(state)
    this = f"this trial's model {builder!r}" if builder else f"this {type(model).__name__}"
    if builder and wrote_builder and wrote_builder != builder:
        raise TransferError(
            f"transfer.weights: {path}{_writer_text(wrote_model, wrote_builder)} is a checkpoint of another model "
            f"than {this}; give a checkpoint written by {builder} (a trial's "
            "runs/<model>_<dataset>_<seed>-<key>/best.pt) or a plain state dict of the same architecture"
        )
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    own = model.state_dict()
    head = head_name(model)
    keep = {k: v for k, v in state.items()
            if k in own and not _under(k, [head]) and tuple(v.shape) == tuple(own[k].shape)}
    if not keep:
        raise TransferError(
            f"transfer.weights: no tensor of {path}{_writer_text(wrote_model, wrote_builder)} matches {this} "
            f"({type(model).__name__}) by name and shape; give weights of the same architecture")
    model.load_state_dict(keep, strict=False)
    return {"loaded": sorted(keep), "skipped": sorted(set(state) - set(keep))}


def apply_transfer(model: nn.Module, cfg: TransferConfig, project: Path, builder: str | None = None) -> dict[str, Any]:
    """Load weights and freeze parameters as ``cfg`` says; returns a summary for the trial record.

    ``builder``: the model's registered architecture, checked against the checkpoint's (see :func:`load_backbone`).
    """
    if cfg.mode == "scratch":
        if cfg.weights:
            raise TransferError("transfer.weights is set but transfer.mode is 'scratch'; use 'frozen' or 'finetune'")
        return {"mode": "scratch"}
    if not cfg.weights:
        raise TransferError(f"transfer.mode {cfg.mode!r} needs transfer.weights: a local state-dict path")
    path = Path(cfg.weights)
    report = load_backbone(model, path if path.is_absolute() else project / path, builder)
    stages = stage_names(model)
    n = 0 if cfg.mode == "frozen" else cfg.finetune_stages
    if n > len(stages):
        raise TransferError(f"transfer.finetune_stages={n} but {type(model).__name__} has {len(stages)} stages: "
                            f"{', '.join(stages)}")
    trainable = [head_name(model), *stages[len(stages) - n:]]
    for name, p in model.named_parameters():
        p.requires_grad_(_under(name, trainable))
    return {"mode": cfg.mode, "trainable": trainable, "loaded": len(report["loaded"]),
            "skipped": len(report["skipped"])}


def freeze_frozen_norms(model: nn.Module) -> None:
    """Keep BatchNorm layers of frozen parts in eval mode (running statistics stay pretrained).

    Call after ``model.train()``.
    """
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            params = list(m.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                m.eval()
