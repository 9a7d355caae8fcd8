"""Report plots (matplotlib, Agg backend; imported inside the functions so importing this is cheap)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from bench.results.record import EpochLog


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (workers and CI have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as PNG at ``path`` (parents created)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    return out


def pr_curves(per_class: dict[str, Any], path: str | Path) -> Path:
    """One precision-recall curve per class from ``evaluate_coco(...)["per_class"]`` -> PNG at ``path``.

    Classes without GT (``APall`` None) are skipped; the legend shows VOC all-point AP.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    try:
        for name, c in per_class.items():
            if c.get("APall") is None:
                continue
            curve = c["pr_curve"]
            ax.plot(curve["recall"], curve["precision"], lw=1.2, label=f"{name} (AP {c['APall']:.3f})")
        ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small", ncol=1 + len(ax.lines) // 20, loc="lower left")
        return _save(fig, path)
    finally:
        plt.close(fig)


def confusion_matrix_plot(cm: np.ndarray, class_names: Sequence[str] | None, path: str | Path) -> Path:
    """Row-normalised heat map of ``cm: [K, K]`` (rows = ground truth, cols = prediction) -> PNG.

    Cells show counts when ``K <= 20``; rows without samples stay blank rather than 0/0.
    """
    plt = _pyplot()
    cm = np.asarray(cm, dtype=np.float64)
    k = cm.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    rows = cm.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = np.where(rows > 0, cm / np.where(rows > 0, rows, 1), np.nan)
    size = min(4 + 0.4 * k, 30)
    fig, ax = plt.subplots(figsize=(size, size))
    try:
        im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of row")
        ax.set_xticks(range(k), names, rotation=90)
        ax.set_yticks(range(k), names)
        ax.set(xlabel="predicted", ylabel="ground truth", title="Confusion matrix")
        if k <= 20:
            for i in range(k):
                for j in range(k):
                    dark = bool(np.nan_to_num(norm[i, j]) > 0.5)
                    ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=7,
                            color="white" if dark else "black")
        return _save(fig, path)
    finally:
        plt.close(fig)


def training_curve(history: Sequence[EpochLog], primary: str, path: str | Path) -> Path:
    """Train loss (left axis) and validation ``primary`` (right axis) per epoch -> PNG at ``path``."""
    plt = _pyplot()
    epochs = [h.epoch for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    try:
        ax.plot(epochs, [h.train_loss for h in history], "o-", color="tab:blue")
        ax.set(xlabel="epoch", title="training curve")
        ax.set_ylabel("train loss", color="tab:blue")
        ax2 = ax.twinx()
        vals = [h.val.get(primary) for h in history]
        ax2.plot(epochs, [np.nan if v is None else v for v in vals], "s-", color="tab:orange")
        ax2.set_ylabel(f"val {primary}", color="tab:orange")
        return _save(fig, path)
    finally:
        plt.close(fig)
