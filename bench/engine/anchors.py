"""Anchor boxes from k-means on the training boxes (YOLO v2's dimension clusters, Redmon & Farhadi 2017).

The distance is ``d(box, centroid) = 1 - IoU(box, centroid)`` with both boxes sharing a centre, so large boxes
do not dominate as they would under Euclidean distance.  ``kmeans_anchors`` is the pure function; the
detection task calls ``for_training_split`` to run it on the chosen dataset's training split at the model's
input size, caching the result next to the selective-search proposals (keyed by the dataset version, the
split, k and the input size).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CACHE_FORMAT = 1  # bump when the clustering changes: old cache files are then not read


def wh_iou(wh: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """IoU of boxes ``wh [N, 2]`` and ``centroids [K, 2]`` (widths, heights) placed on one centre -> ``[N, K]``."""
    inter = np.minimum(wh[:, None, 0], centroids[None, :, 0]) * np.minimum(wh[:, None, 1], centroids[None, :, 1])
    union = wh[:, None].prod(-1) + centroids[None].prod(-1) - inter
    return inter / union


def kmeans_anchors(wh: np.ndarray, k: int, seed: int = 0, restarts: int = 10, iters: int = 300) -> np.ndarray:
    """``k`` anchors ``[k, 2]`` (w, h), sorted by area ascending, clustering ``wh [N, 2]`` under ``1 - IoU``.

    Each of ``restarts`` runs is initialised by k-means++ under the same distance (seeded), then Lloyd
    iterations move each centroid to the median of its boxes (as darknet's and the YOLOv5 authors' tools do:
    robust to a few huge boxes) until the assignment stops changing.  Lloyd's method stops in local minima
    (two seeds in one cluster stay there), so the run with the highest mean best-anchor IoU is returned.
    Needs at least ``k`` distinct boxes.
    """
    wh = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    wh = wh[(wh > 0).all(axis=1)]
    if len(np.unique(wh, axis=0)) < k:
        raise ValueError(f"k-means anchors: {len(wh)} boxes ({len(np.unique(wh, axis=0))} distinct) cannot make "
                         f"{k} anchors; give explicit `anchors` in the model config or use more training data")
    rng = np.random.default_rng(seed)
    runs = [_lloyd(wh, k, rng, iters) for _ in range(restarts)]
    best = max(runs, key=lambda c: mean_best_iou(wh, c))
    return best[np.argsort(best.prod(axis=1))]


def _lloyd(wh: np.ndarray, k: int, rng: np.random.Generator, iters: int) -> np.ndarray:
    """One k-means++-seeded run of median k-means under ``1 - IoU`` -> centroids ``[k, 2]``."""
    centroids = wh[[rng.integers(len(wh))]]
    while len(centroids) < k:  # k-means++: the next seed drawn with probability ~ distance^2
        d = (1 - wh_iou(wh, centroids)).min(axis=1) ** 2
        centroids = np.vstack([centroids, wh[rng.choice(len(wh), p=d / d.sum())]])
    assign = np.full(len(wh), -1)
    for _ in range(iters):
        new = wh_iou(wh, centroids).argmax(axis=1)
        if (new == assign).all():
            break
        assign = new
        for j in range(k):
            if (assign == j).any():
                centroids[j] = np.median(wh[assign == j], axis=0)
    return centroids


def mean_best_iou(wh: np.ndarray, anchors: np.ndarray) -> float:
    """The average, over boxes ``wh [N, 2]``, of the IoU with their best anchor (the paper's "Avg IOU")."""
    return float(wh_iou(np.asarray(wh, np.float64), np.asarray(anchors, np.float64)).max(axis=1).mean())


@dataclass(frozen=True)
class SplitAnchors:
    """k-means anchors of one training split at one input size, and where they came from."""

    anchors: list[tuple[float, float]]  # (w, h) in input pixels, area ascending
    mean_iou: float  # the boxes' mean IoU with their best anchor
    boxes: int  # training boxes clustered
    image_size: int
    path: Path  # the cache file
    hit: bool  # read from the cache rather than computed

    def record(self) -> dict[str, Any]:
        """What the trial record's extras and MLflow carry."""
        return {"anchors": [[round(w, 2), round(h, 2)] for w, h in self.anchors], "k": len(self.anchors),
                "mean_iou": round(self.mean_iou, 4), "boxes": self.boxes, "image_size": self.image_size,
                "method": "k-means, 1 - IoU distance, training split", "cache": str(self.path)}


def training_wh(gt: dict[str, Any], image_size: int) -> np.ndarray:
    """``[N, 2]`` (w, h) of the non-crowd boxes of COCO ``gt``, each image resized to ``image_size`` square
    (as the YOLO models resize their input)."""
    sizes = {im["id"]: (im["width"], im["height"]) for im in gt["images"]}
    wh = [(a["bbox"][2] * image_size / sizes[a["image_id"]][0], a["bbox"][3] * image_size / sizes[a["image_id"]][1])
          for a in gt["annotations"] if not a.get("iscrowd", 0) and not a.get("difficult", 0)]
    return np.asarray(wh, dtype=np.float64).reshape(-1, 2)


def cache_file(version: str, split_tag: str, k: int, image_size: int) -> Path:
    """``<proposal cache root>/../anchors/<version>/<split_tag>/k<k>-s<size>.json``."""
    from bench.engine.proposals import cache_root

    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in f"{version}/{split_tag}")
    return cache_root().parent / "anchors" / safe / f"k{k}-s{image_size}-v{CACHE_FORMAT}.json"


def for_training_split(gt: dict[str, Any], k: int, image_size: int, path: Path) -> SplitAnchors:
    """The anchors of training split ``gt`` from the cache file ``path``, clustered and written first if missing."""
    wh = training_wh(gt, image_size)
    if path.is_file():
        data = json.loads(path.read_text())
        return SplitAnchors([tuple(a) for a in data["anchors"]], data["mean_iou"], data["boxes"], image_size, path,
                            hit=True)
    anchors = kmeans_anchors(wh, k)
    found = SplitAnchors([(float(w), float(h)) for w, h in anchors], mean_best_iou(wh, anchors), len(wh), image_size,
                         path, hit=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"anchors": found.anchors, "mean_iou": found.mean_iou, "boxes": found.boxes}))
    tmp.replace(path)  # atomic: concurrent trials on one node write the same content
    return found
