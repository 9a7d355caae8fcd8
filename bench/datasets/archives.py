"""Reading and extracting zip and tar archives without path traversal.

An archive member is only a name, and a crafted one (``../../.bashrc``, ``/etc/cron.d/x``, or a tar
link pointing outside) would make a naive ``extractall`` write outside the target folder.  Every
archive bench reads goes through :func:`safe_members` first, which refuses the whole archive when any
member is unsafe (a half-extracted archive is worse than none), with an error naming the archive and
the member.
"""

from __future__ import annotations

import posixpath
import re
import tarfile
import zipfile
from pathlib import Path


class ArchiveError(ValueError):
    """An archive that is unreadable or holds a member bench will not extract."""


# "C:" / "C:\" style drive prefixes: absolute on Windows even without a leading slash.
_DRIVE = re.compile(r"^[A-Za-z]:")


def unsafe_reason(name: str) -> str | None:
    """Why a member name would escape the target folder (None when it stays inside).

    Backslashes count as separators too: a zip written on Windows may use them, and Python's
    ``zipfile`` maps them to ``/`` when it extracts there.
    """
    norm = name.replace("\\", "/")
    if norm.startswith("/") or _DRIVE.match(norm):
        return "absolute path"
    if ".." in norm.split("/"):
        return "'..' component"
    return None


def _link_reason(member: tarfile.TarInfo) -> str | None:
    """Why a tar link member points outside the archive's root (None for other members or inner links)."""
    if not (member.issym() or member.islnk()):
        return None
    target = member.linkname.replace("\\", "/")
    if target.startswith("/") or _DRIVE.match(target):
        return f"link to absolute path {member.linkname!r}"
    # A symlink resolves against its own folder; a hard link names a member from the root.
    base = posixpath.dirname(member.name) if member.issym() else ""
    resolved = posixpath.normpath(posixpath.join(base, target))
    if resolved == ".." or resolved.startswith("../"):
        return f"link to {member.linkname!r} outside the archive"
    return None


def _tar_reason(member: tarfile.TarInfo) -> str | None:
    """Why one tar member is refused: unsafe name, link leaving the root, or a device/FIFO node."""
    reason = unsafe_reason(member.name) or _link_reason(member)
    if reason is None and not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        reason = "device or FIFO member"
    return reason


def _refuse(archive: Path, member: str, reason: str) -> ArchiveError:
    return ArchiveError(f"{archive}: refusing member {member!r} ({reason}); nothing was extracted")


def safe_members(archive: Path) -> list[str]:
    """The member names of a zip or tar ``archive``, after checking that every one is safe to extract.

    Raises :class:`ArchiveError` naming the archive and the first unsafe member, or when the file is
    neither a zip nor a tar archive.
    """
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
        for name in names:
            if reason := unsafe_reason(name):
                raise _refuse(archive, name, reason)
        return names
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
        for member in members:
            if reason := _tar_reason(member):
                raise _refuse(archive, member.name, reason)
        return [m.name for m in members]
    raise ArchiveError(f"{archive} is neither a zip nor a tar archive")


def read_member(archive: Path, member: str) -> bytes:
    """The bytes of one member of a zip ``archive`` (checked with :func:`safe_members` first)."""
    names = safe_members(archive)
    if member not in names:
        raise ArchiveError(f"{archive} has no member {member!r}")
    with zipfile.ZipFile(archive) as zf:
        return zf.read(member)


def safe_extract(archive: Path, dest: Path) -> list[Path]:
    """Extract every member of a zip or tar ``archive`` into ``dest``; returns the extracted paths.

    All members are checked before anything is written.  Each target path is also resolved and
    required to stay below ``dest`` (catches what the name checks cannot foresee, e.g. a member
    written through a symlink already present in ``dest``); tar extraction additionally uses
    Python's ``data`` filter where available (3.11.4+).
    """
    names = safe_members(archive)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    targets = [dest / name for name in names]
    for name, target in zip(names, targets, strict=True):
        if not target.resolve().is_relative_to(root):
            raise _refuse(archive, name, f"resolves outside {dest}")
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)
    else:
        with tarfile.open(archive) as tf:
            if hasattr(tarfile, "data_filter"):
                tf.extractall(dest, filter="data")
            else:  # pragma: no cover - Python < 3.11.4; the checks above already passed
                tf.extractall(dest)  # noqa: S202
    return targets
