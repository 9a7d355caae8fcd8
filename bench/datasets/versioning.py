"""DVC-pinned data: read the pin, verify files against it, pull what is missing.

``datasets.dvc`` pins one output per dataset directory (``datasets/shapes``, ``datasets/mnist``,
...), so a trial checks and pulls only its own dataset: ``dvc pull datasets/mnist`` fetches that
output alone, and ``dvc add datasets/mnist`` re-pins it without touching the others.

The md5 we compute is DVC's own directory hash (md5 of the sorted JSON list of
``{"md5", "relpath"}`` entries), so a trial can check its data without a DVC call, and the check
is the same one ``dvc status`` makes.  Like DVC's own state database, ``verify`` reuses a file's
md5 while its (size, mtime, ctime, inode) are unchanged (``.bench-cache/md5/``), so re-checking
70 000 MNIST files costs a directory walk, not 70 000 reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml
from filelock import FileLock


class DataVersionError(RuntimeError):
    """The data on disk is missing or is not the version pinned in the ``.dvc`` file."""


@dataclass(frozen=True)
class Pin:
    """One output of a ``.dvc`` file: the tracked path (relative to the project root) and its md5."""

    dvc_file: Path
    path: str
    md5: str  # DVC form, "<hex>.dir" for directories

    @property
    def version(self) -> str:
        """Short dataset version string recorded with every trial."""
        return "md5:" + self.md5.removesuffix(".dir")


def _norm(path: str) -> str:
    """``./datasets/mnist/`` -> ``datasets/mnist``: the form pins are compared in."""
    return Path(os.path.normpath(path)).as_posix()


def read_pins(dvc_file: Path, project: Path | None = None) -> list[Pin]:
    """Every output of a ``.dvc`` file; paths relative to ``project`` (default: the file's folder)."""
    project = project or dvc_file.parent
    try:
        outs = yaml.safe_load(dvc_file.read_text())["outs"]
        pins = []
        for out in outs:
            rel = os.path.relpath(dvc_file.parent / out["path"], project)
            pins.append(Pin(dvc_file=dvc_file, path=_norm(rel), md5=out["md5"]))
    except (OSError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise DataVersionError(f"{dvc_file}: not a readable DVC pin ({exc})") from None
    if not pins:
        raise DataVersionError(f"{dvc_file}: pins no outputs")
    return pins


def read_pin(dvc_file: Path, root: str | Path | None = None, project: Path | None = None) -> Pin:
    """The output of ``dvc_file`` tracking ``root`` (a dataset directory relative to ``project``).

    ``root`` may be omitted when the file pins a single output.  ``project`` defaults to the
    ``.dvc`` file's folder; an absolute ``root`` must lie inside it (DVC tracks nothing outside).
    """
    project = project or dvc_file.parent
    pins = read_pins(dvc_file, project)
    if root is None:
        if len(pins) == 1:
            return pins[0]
        raise DataVersionError(
            f"{dvc_file} pins {len(pins)} outputs ({', '.join(p.path for p in pins)}); say which dataset root"
        )
    rel = Path(root)
    if rel.is_absolute():
        rel = Path(os.path.relpath(rel.resolve(), project.resolve()))
    want = _norm(str(rel))
    for pin in pins:
        if pin.path == want:
            return pin
    raise DataVersionError(
        f"{dvc_file} pins no output at {want} (it pins {', '.join(p.path for p in pins)}). Fix `root`/`dvc_file` "
        f"in the dataset YAML, or version the folder with `dvc add {want} && dvc push`."
    )


def file_md5(path: Path | str) -> str:
    """md5 hex digest of one file."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _walk(root: Path) -> list[tuple[str, os.stat_result]]:
    """``(relpath, stat)`` of every file under ``root``; ``os.scandir`` is ~2x faster than ``rglob``."""
    found: list[tuple[str, os.stat_result]] = []
    stack = [(str(root), "")]
    while stack:
        folder, prefix = stack.pop()
        with os.scandir(folder) as it:
            for entry in it:
                if entry.is_dir():
                    stack.append((entry.path, prefix + entry.name + "/"))
                elif entry.is_file():
                    found.append((prefix + entry.name, entry.stat()))
    return found


def _stat_key(st: os.stat_result) -> str:
    # ctime cannot be set from user space (unlike mtime), so an in-place edit always changes the key.
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


def _stat_cache_files(project: Path, data: Path) -> tuple[Path, Path]:
    """``(summary, table)`` files of ``data``'s stat cache under ``<project>/.bench-cache/md5/``."""
    rel = os.path.relpath(data.resolve(), project.resolve()).replace(os.sep, "__")
    folder = project / ".bench-cache" / "md5"
    return folder / (rel + ".sum.json"), folder / (rel + ".json")


def _read_json(path: Path) -> dict:
    try:
        found = json.loads(path.read_text())
        return found if isinstance(found, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, obj: dict) -> None:
    """Atomic replace: trials on one node may verify the same dataset at the same time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, separators=(",", ":"))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only checkout just re-hashes next time


def dir_entries(
    root: Path, stat_cache: Path | None = None, files: list[tuple[str, os.stat_result]] | None = None
) -> list[dict[str, str]]:
    """``[{"md5", "relpath"}]`` of every file under ``root``, sorted like DVC sorts them (by relpath).

    With ``stat_cache`` (a JSON table ``relpath -> [stat key, md5]``), md5s of files whose stat key
    is unchanged are reused and the table is refreshed; without it every file is read.  ``files``
    is ``_walk(root)`` when the caller has it already.
    """
    old = _read_json(stat_cache) if stat_cache else {}
    table: dict[str, list[str]] = {}
    entries = []
    misses = 0
    for rel, st in sorted(_walk(root) if files is None else files):
        key, hit = _stat_key(st), old.get(rel)
        if hit and hit[0] == key:
            md5 = hit[1]
        else:
            md5, misses = file_md5(os.path.join(root, rel)), misses + 1
        table[rel] = [key, md5]
        entries.append({"md5": md5, "relpath": rel})
    if stat_cache and (misses or len(table) != len(old)):
        _write_json(stat_cache, table)
    return entries


def _fingerprint(files: list[tuple[str, os.stat_result]]) -> str:
    """md5 over every file's relpath and stat key: equal fingerprints mean unchanged files."""
    return hashlib.md5("\n".join(f"{rel}\t{_stat_key(st)}" for rel, st in sorted(files)).encode()).hexdigest()


def entries_md5(entries: list[dict[str, str]]) -> str:
    """DVC's directory hash ("<hex>.dir") of a sorted entry list."""
    blob = json.dumps(entries, sort_keys=True).encode()
    return hashlib.md5(blob).hexdigest() + ".dir"


def dir_md5(root: Path) -> str:
    """DVC's directory hash of ``root`` ("<hex>.dir"), every file read."""
    return entries_md5(dir_entries(root))


def folder_version(project: Path, root: Path) -> str:
    """The version of a dataset folder no ``.dvc`` file pins: ``unpinned-md5:`` + DVC's directory hash
    of the files as they are.  Like ``verify`` it reuses a file's md5 while its stat is unchanged
    (``.bench-cache/md5/``), so planning a run on a large folder re-reads only files that changed."""
    if not root.is_dir():
        raise DataVersionError(f"{root}: dataset folder does not exist (`root:` in the dataset YAML)")
    _, table = _stat_cache_files(project, root)
    return "unpinned-md5:" + entries_md5(dir_entries(root, table)).removesuffix(".dir")


def pinned_entries(project: Path, pin: Pin) -> dict[str, str] | None:
    """relpath -> md5 of the pinned version, from the local DVC cache when it holds the listing."""
    hexd = pin.md5.removesuffix(".dir")
    for cache in (project / ".dvc" / "cache" / "files" / "md5", _node_cache() / "files" / "md5"):
        listing = cache / hexd[:2] / (hexd[2:] + ".dir")
        if listing.is_file():
            return {e["relpath"]: e["md5"] for e in json.loads(listing.read_text())}
    return None


def describe_difference(project: Path, pin: Pin, entries: list[dict[str, str]]) -> str:
    """Which files differ from the pin (first few), when the pinned listing is available."""
    want = pinned_entries(project, pin)
    if want is None:
        return ""
    have = {e["relpath"]: e["md5"] for e in entries}
    changed = sorted(k for k in want.keys() & have.keys() if want[k] != have[k])
    missing = sorted(want.keys() - have.keys())
    extra = sorted(have.keys() - want.keys())
    parts = []
    for label, items in (("modified", changed), ("missing", missing), ("unexpected", extra)):
        if items:
            more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
            parts.append(f"{label}: {', '.join(pin.path + '/' + i for i in items[:3])}{more}")
    return "; ".join(parts)


def dataset_name(pin: Pin, name: str | None) -> str:
    """The name a fix should use: the dataset's catalog name, else its folder's (``datasets/mnist`` -> mnist)."""
    return name or Path(pin.path).name


def verify(project: Path, pin: Pin, name: str | None = None) -> str:
    """Check the data against its pin; return the dataset version or raise DataVersionError.

    ``name``: the dataset's name (catalog name or YAML path) for the fix the error gives.
    """
    data = project / pin.path
    pin_file = os.path.relpath(pin.dvc_file, project)
    name = dataset_name(pin, name)
    if not data.is_dir():
        raise DataVersionError(
            f"{data} is missing. Run `bench data pull {name}` (or `dvc pull {pin.path}`) to fetch "
            f"the version pinned in {pin_file}."
        )
    summary, table = _stat_cache_files(project, data)
    files = _walk(data)
    fingerprint = _fingerprint(files)
    cached = _read_json(summary)
    if cached.get("fingerprint") == fingerprint and cached.get("md5") == pin.md5:
        return pin.version  # no file changed since the last full check: one walk, no reads
    entries = dir_entries(data, table, files)
    found = entries_md5(entries)
    if found != pin.md5:
        detail = describe_difference(project, pin, entries)
        raise DataVersionError(
            f"{data}: dataset {name!r} does not match {pin_file}: pinned md5 {pin.md5}, found {found}"
            + (f" ({detail})" if detail else "")
            + f". To restore the pinned data run `bench data pull {name} --force`; if you changed the data on "
            f"purpose, version it with `dvc add {pin.path} && dvc push` and commit {pin_file}."
        )
    _write_json(summary, {"fingerprint": fingerprint, "md5": found})
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


def pull(project: Path, pin: Pin, *, force: bool = False, name: str | None = None) -> str:
    """Fetch one pinned dataset through DVC into a node-local cache, then verify it.

    Only ``pin.path`` is pulled (a granular DVC target), never the other datasets of the same
    ``.dvc`` file.  Several trials on one node may call this at once (each is its own Ray worker
    process), and DVC refuses concurrent commands in one repo, so every pull in the project is
    serialised by one file lock; whoever gets the lock second finds the data in place.
    """
    lock_dir = project / ".bench-cache"
    lock_dir.mkdir(exist_ok=True)
    with FileLock(str(lock_dir / "data.lock"), timeout=1800):
        data = project / pin.path
        if data.is_dir() and not force:
            return verify(project, pin, name)
        cache = _node_cache()
        cache.mkdir(parents=True, exist_ok=True)
        # The cache location is node-specific, so it goes in config.local (never committed).
        dvc(project, "cache", "dir", "--local", str(cache))
        if not (project / ".git").exists():
            # A Ray job's working-dir copy carries .dvc/ but not .git/ (see .rayignore).
            dvc(project, "config", "--local", "core.no_scm", "true")
        args = ["pull", pin.path]
        if force:
            args.append("--force")
        dvc(project, *args)
        return verify(project, pin, name)


def ensure(project: Path, pin: Pin, name: str | None = None) -> str:
    """The pinned data is present and intact on this node: pull when missing, refuse when modified.

    A failed check is repeated under the pull lock before it counts: another trial on this node
    may be halfway through pulling the same dataset.  ``name`` names the dataset in the fix.
    """
    if (project / pin.path).is_dir():
        try:
            return verify(project, pin, name)
        except DataVersionError:
            pass
    return pull(project, pin, name=name)
