"""Where a trial's checkpoints live, and the training state that lets a retried trial resume.

A trial's folder holds ``last.pt`` (written every epoch), ``best.pt`` (the best epoch by the task's
primary validation metric), ``attempts.json`` (one entry per start of the trial) and ``done.json``
(written once the trial has produced its record).  The folder is a local directory by default, or
an fsspec URL (``s3://bucket/ckpt``, ``gs://...``, ``file:///shared/ckpt``) on a cluster, where a
retried trial may land on another node.

``last.pt`` carries everything the loop needs to go on as if it had never stopped: the weights,
the optimiser and AMP scaler states, the loop's counters (iteration, best score, history, time
spent), and the Python, NumPy, torch (CPU and CUDA) and data-loader RNG states.  The LR schedule is
a function of the iteration and the training time spent (``bench.engine.trainer.lr_factor``), so
restoring those two restores the schedule.

Checkpoints are read with ``torch.load(weights_only=True)``: every value in them is a tensor, a
number, a string or a container of those (the NumPy RNG state is stored as a tensor for that reason).
"""

from __future__ import annotations

import io
import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:  # torch is imported where it is used: the orchestration imports this module too
    import torch

LAST, BEST, ATTEMPTS, DONE = "last.pt", "best.pt", "attempts.json", "done.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from (another model, another trial, unreadable)."""


class UnsafeCheckpointError(ValueError):
    """A weight file that holds more than tensors and plain data (a pickled object, code)."""


def load_weights(source: str | Path | io.BytesIO, map_location: str | torch.device = "cpu",
                 name: str | None = None) -> Any:
    """``torch.load(source, weights_only=True)``; a file that needs any other object is refused.

    A ``.pt`` file is a pickle, and unpickling can run arbitrary code; ``weights_only=True`` makes
    torch's unpickler accept only tensors and plain containers, numbers and strings, which is all a
    bench checkpoint or a user's state dict holds.  Every ``torch.load`` in ``bench/`` and
    ``benchmarks/`` passes it explicitly (``tests/reliability/test_security.py`` checks the calls).
    Raises :class:`UnsafeCheckpointError` naming the file (``name``, else ``source``): torch's own
    message names the refused global, not the file, and one trial loads several files.
    """
    import pickle

    import torch

    try:
        return torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsafeCheckpointError(
            f"refused to load {name or source}: it holds objects other than tensors and plain data, and unpickling "
            f"them could run code (torch.load weights_only=True: {reason}). Save weights with "
            "torch.save(model.state_dict(), path)."
        ) from None


def is_url(location: str) -> bool:
    """``s3://...``, ``gs://...``, ``file://...``: anything fsspec resolves by protocol."""
    return "://" in location


@dataclass(frozen=True)
class CheckpointDir:
    """One trial's checkpoint folder: ``location`` is a local path or an fsspec URL."""

    location: str

    def path(self, name: str) -> str:
        """Where ``name`` lives (a local path or a URL); what the record's ``checkpoint`` field holds."""
        return f"{self.location.rstrip('/')}/{name}" if is_url(self.location) else str(Path(self.location) / name)

    def _fs(self) -> Any:
        import fsspec

        return fsspec.core.url_to_fs(self.location)[0]

    def makedirs(self) -> None:
        if is_url(self.location):
            self._fs().makedirs(self.location, exist_ok=True)
        else:
            Path(self.location).mkdir(parents=True, exist_ok=True)

    def exists(self, name: str) -> bool:
        return self._fs().exists(self.path(name)) if is_url(self.location) else Path(self.path(name)).exists()

    def read_bytes(self, name: str) -> bytes:
        if is_url(self.location):
            with self._fs().open(self.path(name), "rb") as f:
                return f.read()
        return Path(self.path(name)).read_bytes()

    def write_bytes(self, name: str, data: bytes) -> None:
        self._write(name, lambda f: f.write(data))

    def _write(self, name: str, fill: Callable[[BinaryIO], object]) -> None:
        """Write ``name`` through ``fill(file)`` so that a reader never sees half a file.

        Locally: a temp file renamed over the name (atomic on POSIX).  Object stores (S3, GCS) make a
        single put visible all at once, so writing the object directly is as safe there.
        """
        if is_url(self.location):
            with self._fs().open(self.path(name), "wb") as f:
                fill(f)
            return
        tmp = Path(self.path(name + ".tmp"))
        with tmp.open("wb") as f:
            fill(f)
        os.replace(tmp, self.path(name))

    def remove(self, *names: str) -> None:
        for name in names:
            if not self.exists(name):
                continue
            if is_url(self.location):
                self._fs().rm(self.path(name))
            else:
                Path(self.path(name)).unlink()

    def save(self, state: dict[str, Any], is_best: bool) -> None:
        """Write ``last.pt``; if ``is_best``, make ``best.pt`` the same weights.

        Locally ``best.pt`` is a hard link to the new ``last.pt``, not a second copy: with
        time-budgeted training the last epoch is usually the best, and one EfficientNet-B7 checkpoint
        is 245 MB (two copies per trial filled a disk during a 54-trial run).  Each save writes a new
        file and renames it over the old name, so the other name keeps its own weights and a killed
        trial never leaves a truncated checkpoint.  On an object store ``best.pt`` is a server-side copy.
        """
        import torch

        # Straight to the file: going through bytes in memory costs two more copies of a state that
        # is 3x the weights with Adam (measured on ResNet-18: 0.6-1.3 s per save against 0.35 s).
        self._write(LAST, lambda f: torch.save(state, f))
        if not is_best:
            return
        if is_url(self.location):
            self._fs().copy(self.path(LAST), self.path(BEST))
            return
        link = Path(self.path(BEST + ".tmp"))
        link.unlink(missing_ok=True)
        os.link(self.path(LAST), link)
        os.replace(link, self.path(BEST))

    def load(self, name: str, map_location: torch.device | str = "cpu") -> dict[str, Any]:
        """A checkpoint written by :meth:`save`, read with ``weights_only=True`` (no code runs)."""
        source = io.BytesIO(self.read_bytes(name)) if is_url(self.location) else self.path(name)
        try:
            return load_weights(source, map_location, name=self.path(name))
        except UnsafeCheckpointError:
            raise
        except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: say which and what to do
            raise CheckpointError(f"{self.path(name)}: cannot read this checkpoint ({type(exc).__name__}: "
                                  f"{str(exc)[:300]}); delete the file to start the trial afresh") from None

    def read_json(self, name: str, default: Any) -> Any:
        return json.loads(self.read_bytes(name)) if self.exists(name) else default

    def write_json(self, name: str, obj: Any) -> None:
        self.write_bytes(name, (json.dumps(obj, indent=1) + "\n").encode())


def rng_state(loader_generator: torch.Generator | None) -> dict[str, Any]:
    """Every RNG a training epoch draws from: Python, NumPy, torch CPU/CUDA and the loader's shuffle."""
    import numpy as np
    import torch

    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if loader_generator is not None:
        state["loader"] = loader_generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], loader_generator: torch.Generator | None) -> None:
    """Inverse of :func:`rng_state`.  CUDA states are restored only on a machine with as many GPUs."""
    import numpy as np
    import torch

    random.setstate(_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    if loader_generator is not None and "loader" in state:
        loader_generator.set_state(state["loader"])


def _tuples(obj: Any) -> Any:
    """Lists back to tuples (``random.setstate`` wants the tuple it gave, whatever the pickling did)."""
    return tuple(_tuples(v) for v in obj) if isinstance(obj, list | tuple) else obj


def check_resumable(state: dict[str, Any], where: str, model: str, trial_id: str) -> None:
    """Refuse a checkpoint written by another model or trial, naming the file and the fix."""
    cfg = state.get("config") or {}
    if cfg.get("model") != model:
        raise CheckpointError(
            f"{where}: this checkpoint was written by model {cfg.get('model')!r}, not {model!r} (trial {trial_id}); "
            "the folder holds another trial's checkpoint: delete it, or point --checkpoint-dir elsewhere")
    if "loop" not in state:
        raise CheckpointError(f"{where}: this checkpoint has weights only, no training state to resume from "
                              "(written by an older bench); delete it to start the trial afresh")
