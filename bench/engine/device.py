"""Device choice, mixed precision and synchronised timing."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import torch


def select_device(preference: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda`` without a GPU is an error, not a fallback."""
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False on this worker")
    if preference in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[None]:
    """fp16 autocast on CUDA when ``enabled``; a no-op on CPU (CPU AMP is slower for these nets)."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def sync(device: torch.device) -> None:
    """Wait for queued kernels so wall-clock timings measure the work, not the launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def timed(device: torch.device, acc: dict[str, float], key: str) -> Iterator[None]:
    """Add the synchronised wall time of the block to ``acc[key]``."""
    sync(device)
    t0 = time.perf_counter()
    try:
        yield
    finally:
        sync(device)
        acc[key] = acc.get(key, 0.0) + time.perf_counter() - t0
