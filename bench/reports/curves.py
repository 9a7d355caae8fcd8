"""Per-trial plots the driver attaches to MLflow (drawn from the record; no metric computed here)."""

from __future__ import annotations

from pathlib import Path

from bench.results.record import EpochLog


def training_curve(history: list[EpochLog], primary: str, path: Path) -> Path:
    """Train loss (left axis) and validation ``primary`` (right axis) per epoch, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h.epoch for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [h.train_loss for h in history], "o-", color="tab:blue", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss", color="tab:blue")
    ax2 = ax.twinx()
    vals = [h.val.get(primary) for h in history]
    ax2.plot(epochs, [float("nan") if v is None else v for v in vals], "s-", color="tab:orange")
    ax2.set_ylabel(f"val {primary}", color="tab:orange")
    ax.set_title("training curve")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
