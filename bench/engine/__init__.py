"""Train and eval loops, checkpoints and device handling (imports torch)."""
