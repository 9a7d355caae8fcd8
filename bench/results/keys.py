"""Content addresses of trials: equal keys mean the same experiment, so its result can be reused.

A trial's key hashes everything that decides its numbers: the effective config (model, builder,
params, train, dataset view, resources, seed, profile), the dataset version (DVC md5), the metric
definitions (``METRIC_SPEC``) and the code (:func:`code_version`).  Not the git SHA: a commit that
touches only the README reruns nothing, and a ``ray job submit`` working dir has no ``.git``.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.config.catalog import TrialConfig

#: Version of the key recipe itself: bump it when what goes into a key changes.
KEY_SCHEME = "bench-trial-key/1"
#: Source files that make up the code version (package data included, bytecode excluded).
CODE_SUFFIXES = (".py", ".yaml", ".yml", ".json")


def package_dir() -> Path:
    """The ``bench/`` package directory this process imported."""
    return Path(__file__).resolve().parents[1]


@lru_cache(maxsize=4)
def code_version(root: Path | None = None) -> str:
    """sha256 (16 hex digits) of every source file under ``root`` (default: the ``bench`` package).

    Hashes relative paths and contents in sorted order, so it is the same on every node that has
    the same sources, whatever their location, mtimes or git state.
    """
    root = root or package_dir()
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in CODE_SUFFIXES and "__pycache__" not in p.parts):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def trial_key(cfg: TrialConfig, dataset_version: str, metric_spec: str, code: str) -> str:
    """The content address of one trial (sha256, 24 hex digits).

    ``dataset_version``: ``"md5:<hex>"`` of the pinned data; ``metric_spec``: ``METRIC_SPEC``;
    ``code``: :func:`code_version`.  Seed and profile are part of ``cfg`` and named again so that
    the key's recipe reads like the issue that defines it.
    """
    blob = json.dumps(
        {"scheme": KEY_SCHEME, "config": cfg.model_dump(mode="json"), "dataset": dataset_version,
         "metric_spec": metric_spec, "code": code, "seed": cfg.seed, "profile": cfg.profile},
        sort_keys=True, separators=(",", ":"),
    ).encode()
    return hashlib.sha256(blob).hexdigest()[:24]
