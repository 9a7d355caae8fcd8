"""Loading weight files safely: ``torch.load(..., weights_only=True)`` and nothing else.

A ``.pt`` file is a pickle, and unpickling can run arbitrary code.  ``weights_only=True`` makes
torch's unpickler accept only tensors and plain containers, numbers and strings, which is all a bench
checkpoint (``{"model": state_dict, "epoch": int, "config": JSON types}``) or a user's state dict
holds.  Every ``torch.load`` in ``bench/`` and ``benchmarks/`` passes it explicitly (torch's default
changed across versions; ``tests/reliability/test_security.py`` checks the calls).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch


class UnsafeCheckpointError(ValueError):
    """A weight file that holds more than tensors and plain data (a pickled object, code)."""


def load_weights(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``; a file that needs any other object is refused.

    Raises :class:`UnsafeCheckpointError` naming ``path`` (torch's own message names the global that
    was refused, not the file, and one trial loads several files).
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsafeCheckpointError(
            f"refused to load {path}: it holds objects other than tensors and plain data, and unpickling them "
            f"could run code (torch.load weights_only=True: {reason}). Save weights with "
            f"torch.save(model.state_dict(), path)."
        ) from None
