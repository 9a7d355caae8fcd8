"""Facts about the code, packages and machine a trial ran with."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("bench", "torch", "torchvision", "numpy", "ray", "mlflow", "dvc", "pycocotools", "faster-coco-eval")


def git_sha(project: Path) -> str:
    """HEAD of the checkout (``+dirty`` when it has uncommitted changes), else ``$BENCH_GIT_SHA``.

    Under ``ray job submit`` the working dir copy has no ``.git``; the driver then records the
    SHA passed in ``BENCH_GIT_SHA`` (the README's cluster recipe sets it).
    """
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=project, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("BENCH_GIT_SHA", "unknown")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that change numbers."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def hardware(device: Any = None) -> dict[str, Any]:
    """Host, CPU count, torch threads and GPU name of the process that ran the trial."""
    info: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["cuda"] = torch.version.cuda
    except ImportError:
        pass
    if device is not None:
        info["device"] = str(device)
    return info
