"""Selective-search region proposals (Uijlings et al. 2013) and their disk cache.

The proposal-based detectors (``rcnn``, ``spp_net``, ``fast_rcnn``) take their regions from
selective search: OpenCV contrib's ``cv2.ximgproc.segmentation`` implementation (Felzenszwalb
graph segmentation of the image, then hierarchical grouping of regions by colour, texture, size and
fill similarity, over several colour spaces; *fast* mode uses 2 colour spaces x 2 strategy sets x
2 segmentation scales, *quality* mode 5 x 2 x 5 as in the paper).

**Settings** (:class:`ProposalSettings`): ``mode``, ``max_proposals``, ``min_size`` and
``image_size`` (the longest side selective search runs at; None = the image's own size).  They are
the builder parameter ``proposals`` of each proposal-based model (a mapping in the model YAML's
``params``, e.g. ``params: {proposals: {mode: quality, max_proposals: 2000}}``; keys left out keep
the builder's default).  A model whose builder has a ``proposals`` parameter is a proposal-based
model: the detection task computes its proposals with those settings (:func:`settings_of`) and puts
them into every target as ``target["proposals"]`` (``[P, 4]`` float32 xyxy, image pixels).

**Cache**: a split's proposals are computed once per dataset version and proposal settings, for
every image of the split, and stored in one ``.npz`` file:
``$BENCH_PROPOSAL_CACHE`` (default ``~/.cache/bench/proposals``, the machine's own disk, never the
repository) ``/<dataset version>/<view+split>/<settings key>.npz``.  The dataset version is the
trial's (the md5 of the DVC pin, or of the folder as it is for unversioned data; see
``bench.orchestration.driver.dataset_version``), so ``rcnn``, ``spp_net`` and ``fast_rcnn`` with the
same settings share one file, and changed data never meets stale boxes.  Concurrent trials on one
machine take a file lock on the entry: the first computes it and writes it atomically (temporary
file, then ``os.replace``), the others wait and then read it.  Every lookup is logged (logger
``bench.engine.proposals``, INFO, to stderr unless logging is configured otherwise) as a hit or a
miss with the path and the time it took.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np

log = logging.getLogger(__name__)

Mode = Literal["fast", "quality"]
MODES: tuple[str, ...] = ("fast", "quality")
CACHE_ENV = "BENCH_PROPOSAL_CACHE"
CACHE_FORMAT = 2  # bump when the file layout or the box semantics change: old entries are then not read


@dataclass(frozen=True)
class ProposalSettings:
    """How selective search runs for one model.

    ``mode``: ``fast`` (OpenCV's fast setting, the R-CNN paper's choice) or ``quality``;
    ``max_proposals``: keep the first N boxes in OpenCV's ranking (R-CNN and Fast R-CNN use ~2000);
    ``min_size``: drop boxes narrower or shorter than this many pixels (of the original image);
    ``image_size``: the longest image side selective search runs at (the boxes are scaled back to
    the image's pixels); None runs at the image's own size.  Small images give few segments, so a
    larger ``image_size`` yields more (and finer) proposals at a higher cost.
    """

    mode: Mode = "fast"
    max_proposals: int = 2000
    min_size: int = 2
    image_size: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"proposals.mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.max_proposals < 1:
            raise ValueError(f"proposals.max_proposals must be >= 1, got {self.max_proposals}")
        if self.min_size < 0:
            raise ValueError(f"proposals.min_size must be >= 0, got {self.min_size}")
        if self.image_size is not None and self.image_size < 16:
            raise ValueError(f"proposals.image_size must be >= 16 px or null, got {self.image_size}")

    @property
    def key(self) -> str:
        """File-name form of the settings: ``fast-n2000-min2-native``."""
        size = "native" if self.image_size is None else f"s{self.image_size}"
        return f"{self.mode}-n{self.max_proposals}-min{self.min_size}-{size}"


def resolve_settings(value: ProposalSettings | Mapping[str, Any] | None,
                     default: ProposalSettings | None = None) -> ProposalSettings:
    """``value`` (settings, a partial mapping from YAML, or None) over ``default``; unknown keys raise."""
    base = default or ProposalSettings()
    if value is None:
        return base
    if isinstance(value, ProposalSettings):
        return value
    known = {f.name for f in fields(ProposalSettings)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ValueError(
            f"params.proposals: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}"
        )
    return ProposalSettings(**{**asdict(base), **dict(value)})


def settings_of(builder: Callable[..., Any], params: Mapping[str, Any]) -> ProposalSettings | None:
    """The proposal settings a model with ``builder`` and YAML ``params`` runs with; None when the
    builder takes no ``proposals`` parameter (the model does not use proposals)."""
    param = inspect.signature(builder).parameters.get("proposals")
    if param is None:
        return None
    default = param.default if isinstance(param.default, ProposalSettings) else None
    return resolve_settings(params.get("proposals"), default)


# ---------------------------------------------------------------------------------------------
# selective search


def selective_search(image: np.ndarray, mode: str, max_proposals: int, min_size: int) -> np.ndarray:
    """Selective-search boxes of one image, in OpenCV's ranking order (seeded: deterministic).

    ``image``: ``[H, W, 3]`` uint8 RGB.  Returns ``[P, 4]`` float32 xyxy in the image's pixels
    (x2 = x + w, so a box covering the whole image is ``[0, 0, W, H]``), ``P <= max_proposals``:
    exact duplicates removed (the first occurrence kept), boxes with a side below ``min_size``
    dropped, then the first ``max_proposals`` kept.
    """
    import cv2

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"selective_search: expected an [H, W, 3] uint8 RGB image, got {image.shape} {image.dtype}")
    if mode not in MODES:
        raise ValueError(f"selective_search: mode must be one of {', '.join(MODES)}, got {mode!r}")
    _seed_ranking()
    ss = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    ss.setBaseImage(np.ascontiguousarray(image[:, :, ::-1]))  # OpenCV works in BGR
    if mode == "fast":
        ss.switchToSelectiveSearchFast()
    else:
        ss.switchToSelectiveSearchQuality()
    rects = np.asarray(ss.process(), dtype=np.float32).reshape(-1, 4)  # [P, 4] x, y, w, h
    boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
    return _dedupe_filter(boxes, min_size)[:max_proposals]


def _seed_ranking(seed: int = 0) -> None:
    """Seed C's ``rand()``, which OpenCV's selective search draws for its ranking (the paper's
    "pseudo-random" ranking: each box's hierarchy level times a random number).  Unseeded, one image
    gives differently ordered boxes on each call, so ``max_proposals`` would keep different ones
    and the cache would not equal what a model computes from the same image; ``cv2.setRNGSeed``
    does not reach it (measured).  Process-wide: not deterministic when threads run it at once."""
    import ctypes

    ctypes.CDLL(None).srand(seed)


def _dedupe_filter(boxes: np.ndarray, min_size: float) -> np.ndarray:
    """``boxes [P, 4]`` without exact duplicates (first kept, order preserved) and without boxes
    whose width or height is below ``min_size``."""
    _, first = np.unique(boxes, axis=0, return_index=True)
    boxes = boxes[np.sort(first)]
    wh = boxes[:, 2:] - boxes[:, :2]
    return boxes[(wh >= min_size).all(axis=1)].astype(np.float32, copy=False)


def propose(image: np.ndarray, settings: ProposalSettings) -> np.ndarray:
    """Selective search on ``image [H, W, 3] uint8`` with ``settings``: ``[P, 4]`` float32 xyxy.

    With ``settings.image_size`` the image is resized (bilinear) so its longest side has that
    length, and the boxes are mapped back to the original pixels before ``min_size`` applies.
    """
    h, w = image.shape[:2]
    if settings.image_size is None or max(h, w) == settings.image_size:
        return selective_search(image, settings.mode, settings.max_proposals, settings.min_size)
    import cv2

    scale = settings.image_size / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resized = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    # No cut in the resized image: the cap and the size filter apply in original pixels.
    boxes = selective_search(resized, settings.mode, sys.maxsize, 0)
    boxes = boxes * np.array([w / size[0], h / size[1]] * 2, dtype=np.float32)
    boxes = np.minimum(boxes, np.array([w, h, w, h], dtype=np.float32))
    return _dedupe_filter(boxes, settings.min_size)[:settings.max_proposals]


def image_uint8(image: Any) -> np.ndarray:
    """A ``[3, H, W]`` float tensor in [0, 1] (the detection datasets' images) as ``[H, W, 3]`` uint8.

    The datasets load uint8 pixels and divide by 255, so this recovers them exactly.
    """
    arr = image.detach().float().cpu().numpy() if hasattr(image, "detach") else np.asarray(image, dtype=np.float32)
    return np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8).transpose(1, 2, 0)


# ---------------------------------------------------------------------------------------------
# the disk cache


def cache_root() -> Path:
    """``$BENCH_PROPOSAL_CACHE`` or ``~/.cache/bench/proposals`` (node-local, outside the repository)."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "bench" / "proposals")).expanduser().resolve()


def dataset_version(dataset_root: Path, dvc_file: str | None, root: str) -> str:
    """The trial's dataset version of the folder ``dataset_root`` (``root`` in the dataset YAML).

    Pinned data (``dvc_file`` set): ``md5:<hex>`` of its DVC pin, the ``.dvc`` file found in the
    first ancestor of ``dataset_root`` holding ``dvc_file`` (the project root).  A trial verifies the
    data against that pin before it trains, so the pin's md5 is the data's.  Unversioned data:
    ``unpinned-md5:<hex>``, DVC's directory hash of the folder as it is, every file's md5 reused
    while its size and times are unchanged (a stat table under the cache root).
    """
    from bench.datasets import versioning

    folder = Path(os.path.abspath(dataset_root))
    if dvc_file:
        for project in (folder, *folder.parents):
            if (project / dvc_file).is_file():
                return versioning.read_pin(project / dvc_file, root, project).version
        raise FileNotFoundError(f"{dvc_file} (dvc_file of the dataset YAML) is in no folder above {folder}")
    table = cache_root() / "md5" / (hashlib.md5(str(folder).encode()).hexdigest() + ".json")
    return "unpinned-md5:" + versioning.entries_md5(versioning.dir_entries(folder, table)).removesuffix(".dir")


@dataclass(frozen=True)
class SplitProposals:
    """The proposals of every image of one split: ``boxes(image_id) -> [P, 4]`` float32 xyxy."""

    by_image: dict[int, np.ndarray]
    path: Path
    hit: bool
    seconds: float

    def boxes(self, image_id: int) -> np.ndarray:
        try:
            return self.by_image[int(image_id)]
        except KeyError:
            raise KeyError(f"no proposals for image id {image_id} in {self.path}; delete the file to recompute it") \
                from None


def cache_path(version: str, split_tag: str, settings: ProposalSettings) -> Path:
    """``<cache root>/<version>/<split_tag>/<settings key>.npz`` (``:`` in the version made ``-``)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in f"{version}")
    tag = "".join(c if c.isalnum() or c in "-_." else "-" for c in split_tag)
    return cache_root() / safe / tag / f"{settings.key}.npz"


def split_tag(view_format: str, view_path: str, split: str) -> str:
    """A readable, unique folder name for one split of one dataset view: ``train-1a2b3c4d``."""
    digest = hashlib.md5(f"{view_format}\n{view_path}\n{split}".encode()).hexdigest()[:8]
    return f"{split}-{digest}"


def load_or_compute(
    path: Path, images: Sequence[tuple[int, Path]], settings: ProposalSettings,
    lock_timeout_s: float = 3600.0,
) -> SplitProposals:
    """The proposals of ``images`` (``(image_id, file)`` pairs) from the cache file ``path``, computed
    and written there first if it is missing (or was written for other images).

    Safe under concurrency: the lock ``path.lock`` is held while checking and computing, so a second
    trial waits for the first one's file instead of computing it again.
    """
    from filelock import FileLock

    t0 = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = [int(i) for i, _ in images]
    with FileLock(str(path) + ".lock", timeout=lock_timeout_s):
        found = _read(path, ids)
        if found is not None:
            out = SplitProposals(found, path, True, time.perf_counter() - t0)
            _announce(f"proposal cache hit: {path} ({len(ids)} images) loaded in {out.seconds:.2f} s")
            return out
        by_image = {i: propose(_load_uint8(f), settings) for i, f in images}
        _write(path, by_image, settings)
    out = SplitProposals(by_image, path, False, time.perf_counter() - t0)
    mean = np.mean([len(b) for b in by_image.values()]) if by_image else 0.0
    _announce(f"proposal cache miss: computed {len(ids)} images ({mean:.0f} boxes/image, {settings.key}) in "
              f"{out.seconds:.2f} s, written to {path}")
    return out


def _load_uint8(path: Path) -> np.ndarray:
    from bench.datasets.formats import open_image

    return np.asarray(open_image(path).convert("RGB"), dtype=np.uint8)


def _read(path: Path, ids: list[int]) -> dict[int, np.ndarray] | None:
    """The cached boxes by image id, or None when the file is missing, unreadable, of another format
    version or written for other images."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as npz:
            if int(npz["format"]) != CACHE_FORMAT or sorted(npz["image_ids"].tolist()) != sorted(ids):
                return None
            offsets, boxes, image_ids = npz["offsets"], npz["boxes"], npz["image_ids"].tolist()
    except (OSError, ValueError, KeyError) as exc:
        log.warning("proposal cache: unreadable %s (%s); recomputing it", path, exc)
        return None
    return {i: boxes[offsets[k]:offsets[k + 1]] for k, i in enumerate(image_ids)}


def _write(path: Path, by_image: dict[int, np.ndarray], settings: ProposalSettings) -> None:
    """One ``.npz``: ``image_ids [N]``, ``offsets [N + 1]``, ``boxes [sum P, 4]``; written to a
    temporary file in the same folder, then renamed over ``path`` (readers never see half a file)."""
    ids = list(by_image)
    counts = [len(by_image[i]) for i in ids]
    boxes = np.concatenate([by_image[i] for i in ids]) if ids else np.zeros((0, 4), np.float32)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, format=CACHE_FORMAT, image_ids=np.asarray(ids, dtype=np.int64),
                     offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                     boxes=boxes.astype(np.float32), settings=np.asarray(settings.key))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _announce(message: str) -> None:
    """INFO on this module's logger; with no logging configured anywhere, straight to stderr (a Ray
    worker's stderr is its log file, and the console with ``bench run --verbose``)."""
    if not logging.getLogger().handlers and not log.handlers:
        print(f"[bench.proposals] {message}", file=sys.stderr, flush=True)
    else:
        log.info(message)


def for_split(cfg: Any, dataset_root: Path, split: str, images: Sequence[tuple[int, Path]],
              settings: ProposalSettings) -> SplitProposals:
    """The cached proposals of split ``split`` (``train``/``val``/``test``) of trial ``cfg``'s dataset.

    ``cfg``: the ``TrialConfig``; ``dataset_root``: its dataset folder; ``images``: ``(image_id,
    file)`` of every image of the split.
    """
    view = cfg.dataset.views[cfg.task]
    version = dataset_version(dataset_root, cfg.dataset.dvc_file, cfg.dataset.root)
    tag = split_tag(view.format, view.path, cfg.dataset.splits[split])
    return load_or_compute(cache_path(version, tag, settings), images, settings)
