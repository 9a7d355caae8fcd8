"""DVC-pinned data: read the pin, verify files against it, pull what is missing.

The md5 we compute is DVC's own directory hash (md5 of the sorted JSON list of
``{"md5", "relpath"}`` entries), so a trial can check its data without a DVC call, and the check
is the same one ``dvc status`` makes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from filelock import FileLock


class DataVersionError(RuntimeError):
    """The data on disk is missing or is not the version pinned in the ``.dvc`` file."""


@dataclass(frozen=True)
class Pin:
    """What a ``.dvc`` file pins: the tracked path (relative to the project root) and its md5."""

    dvc_file: Path
    path: str
    md5: str  # DVC form, "<hex>.dir" for directories

    @property
    def version(self) -> str:
        """Short dataset version string recorded with every trial."""
        return "md5:" + self.md5.removesuffix(".dir")


def read_pin(dvc_file: Path) -> Pin:
    """Parse a single-output ``.dvc`` file."""
    try:
        outs = yaml.safe_load(dvc_file.read_text())["outs"]
        return Pin(dvc_file=dvc_file, path=outs[0]["path"], md5=outs[0]["md5"])
    except (OSError, KeyError, IndexError, TypeError, yaml.YAMLError) as exc:
        raise DataVersionError(f"{dvc_file}: not a readable DVC pin ({exc})") from None


def file_md5(path: Path) -> str:
    """md5 hex digest of one file."""
    h = hashlib.md5()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dir_entries(root: Path) -> list[dict[str, str]]:
    """``[{"md5", "relpath"}]`` of every file under ``root``, sorted like DVC sorts them."""
    entries = [
        {"md5": file_md5(p), "relpath": p.relative_to(root).as_posix()}
        for p in root.rglob("*")
        if p.is_file()
    ]
    return sorted(entries, key=lambda e: e["relpath"])


def dir_md5(root: Path) -> str:
    """DVC's directory hash of ``root`` ("<hex>.dir")."""
    blob = json.dumps(dir_entries(root), sort_keys=True).encode()
    return hashlib.md5(blob).hexdigest() + ".dir"


def pinned_entries(project: Path, pin: Pin) -> dict[str, str] | None:
    """relpath -> md5 of the pinned version, from the local DVC cache when it holds the listing."""
    hexd = pin.md5.removesuffix(".dir")
    for cache in (project / ".dvc" / "cache" / "files" / "md5", _node_cache() / "files" / "md5"):
        listing = cache / hexd[:2] / (hexd[2:] + ".dir")
        if listing.is_file():
            return {e["relpath"]: e["md5"] for e in json.loads(listing.read_text())}
    return None


def describe_difference(project: Path, pin: Pin, data: Path) -> str:
    """Which files differ from the pin (first few), when the pinned listing is available."""
    want = pinned_entries(project, pin)
    if want is None:
        return ""
    have = {e["relpath"]: e["md5"] for e in dir_entries(data)}
    changed = sorted(k for k in want.keys() & have.keys() if want[k] != have[k])
    missing = sorted(want.keys() - have.keys())
    extra = sorted(have.keys() - want.keys())
    parts = []
    for label, items in (("modified", changed), ("missing", missing), ("unexpected", extra)):
        if items:
            more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
            parts.append(f"{label}: {', '.join(pin.path + '/' + i for i in items[:3])}{more}")
    return "; ".join(parts)


def verify(project: Path, pin: Pin) -> str:
    """Check the data against its pin; return the dataset version or raise DataVersionError."""
    data = project / pin.path
    if not data.is_dir():
        raise DataVersionError(
            f"{data} is missing. Run `bench data pull` (or `dvc pull {pin.dvc_file.name}`) to fetch "
            f"the version pinned in {pin.dvc_file.name}."
        )
    found = dir_md5(data)
    if found != pin.md5:
        detail = describe_difference(project, pin, data)
        raise DataVersionError(
            f"{data} does not match {pin.dvc_file.name}: pinned md5 {pin.md5}, found {found}"
            + (f" ({detail})" if detail else "")
            + ". To restore the pinned data run `bench data pull --force`; if you changed the data on "
            f"purpose, version it with `dvc add {pin.path} && dvc push` and commit {pin.dvc_file.name}."
        )
    return pin.version


def _node_cache() -> Path:
    """Node-local DVC cache shared by every trial and job on this machine."""
    return Path(os.environ.get("BENCH_DVC_CACHE", Path.home() / ".cache" / "bench" / "dvc")).resolve()


def dvc(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the DVC CLI of this interpreter in ``project``; raise with DVC's own message on failure."""
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=project, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip()
        raise DataVersionError(f"`dvc {' '.join(args)}` failed in {project}: {msg}")
    return proc


def pull(project: Path, pin: Pin, *, force: bool = False) -> str:
    """Fetch the pinned data through DVC into a node-local cache, then verify it.

    Several trials on one node may call this at once (each is its own Ray worker process), so the
    pull is serialised by a file lock; whoever gets the lock second finds the data in place.
    """
    lock_dir = project / ".bench-cache"
    lock_dir.mkdir(exist_ok=True)
    with FileLock(str(lock_dir / "data.lock"), timeout=1800):
        data = project / pin.path
        if data.is_dir() and not force:
            return verify(project, pin)
        cache = _node_cache()
        cache.mkdir(parents=True, exist_ok=True)
        # The cache location is node-specific, so it goes in config.local (never committed).
        dvc(project, "cache", "dir", "--local", str(cache))
        if not (project / ".git").exists():
            # A Ray job's working-dir copy carries .dvc/ but not .git/ (see .rayignore).
            dvc(project, "config", "--local", "core.no_scm", "true")
        args = ["pull", pin.dvc_file.name]
        if force:
            args.append("--force")
        dvc(project, *args)
        return verify(project, pin)


def ensure(project: Path, pin: Pin) -> str:
    """The pinned data is present and intact on this node: pull when missing, refuse when modified."""
    if not (project / pin.path).is_dir():
        return pull(project, pin)
    return verify(project, pin)
