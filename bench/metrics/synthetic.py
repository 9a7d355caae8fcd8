"""Random COCO-style detection data for tests and benchmarks (pure Python/NumPy, seeded).

The generator deliberately produces the cases evaluators get wrong: crowd GT, ``area`` fields
that differ from ``w * h``, non-contiguous category ids, images without GT or without
predictions, classes with predictions but no GT, duplicate detections, tied (quantised) scores
and images with more than 100 detections.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _polygon(rng: np.random.Generator, x: float, y: float, w: float, h: float) -> list[float]:
    """A random convex-ish octagon inside the box ``[x, y, w, h]`` (flat ``[x0, y0, x1, y1, ...]``)."""
    t = np.sort(rng.uniform(0, 2 * np.pi, 8))
    r = rng.uniform(0.6, 1.0, 8)
    px = x + w / 2 + np.cos(t) * r * w / 2
    py = y + h / 2 + np.sin(t) * r * h / 2
    return np.stack([px, py], axis=1).ravel().round(2).tolist()


def _rle(poly: list[float], h: int, w: int) -> dict[str, Any]:
    """Compressed RLE (JSON form, ``counts`` as str) of one polygon."""
    from faster_coco_eval.core import mask as mask_utils

    rle = mask_utils.frPyObjects([poly], h, w)[0]
    counts = rle["counts"]
    return {"size": [h, w], "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def random_coco(
    seed: int,
    n_images: int = 12,
    n_classes: int = 4,
    max_gt: int = 6,
    dets_per_gt: float = 1.5,
    n_false: int = 3,
    iou_type: str = "bbox",
    img_size: tuple[int, int] = (48, 200),
    crowd_prob: float = 0.1,
    many_dets_image: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A random ``(gt, preds)`` pair in COCO dataset / results format.

    Sizes are kept small by default so that ``segm`` masks stay cheap; ``img_size`` bounds image
    sides.  Scores are rounded to 2 decimals so ties occur.
    """
    rng = np.random.default_rng(seed)
    cat_ids = sorted(rng.choice(np.arange(1, 4 * n_classes + 10), size=n_classes, replace=False).tolist())
    categories = [{"id": int(c), "name": f"class_{c}"} for c in cat_ids]
    no_gt_cat = cat_ids[-1] if n_classes > 1 and rng.random() < 0.5 else None  # preds only
    images, anns, preds = [], [], []
    ann_id = 1
    lo, hi = img_size
    for img_id in rng.choice(np.arange(1, 10 * n_images + 1), size=n_images, replace=False).tolist():
        h, w = int(rng.integers(lo, hi)), int(rng.integers(lo, hi))
        images.append({"id": int(img_id), "height": h, "width": w, "file_name": f"{img_id}.jpg"})
        n_gt = int(rng.integers(0, max_gt + 1)) if rng.random() > 0.15 else 0
        gts = []
        for _ in range(n_gt):
            cat = int(rng.choice([c for c in cat_ids if c != no_gt_cat]))
            bw, bh = rng.uniform(2, w * 0.7), rng.uniform(2, h * 0.7)
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            crowd = int(rng.random() < crowd_prob)
            box = [round(x, 2), round(y, 2), round(bw, 2), round(bh, 2)]
            area = box[2] * box[3] * (rng.uniform(0.3, 1.0) if rng.random() < 0.5 else 1.0)
            ann: dict[str, Any] = {"id": ann_id, "image_id": int(img_id), "category_id": cat, "bbox": box,
                                   "area": float(area), "iscrowd": crowd}
            if iou_type == "segm":
                poly = _polygon(rng, *box)
                ann["segmentation"] = [poly]
                if crowd:  # COCO stores crowd regions as uncompressed RLE
                    from faster_coco_eval.core import mask as mask_utils

                    m = mask_utils.decode(mask_utils.frPyObjects([poly], h, w)[0])
                    flat = m.ravel(order="F")
                    change = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
                    counts = np.diff(np.concatenate([[0], change])).tolist()
                    ann["segmentation"] = {"size": [h, w], "counts": counts}
            anns.append(ann)
            seg = ann.get("segmentation")
            gts.append((cat, box, seg[0] if isinstance(seg, list) else _polygon(rng, *box)))
            ann_id += 1
        if rng.random() < 0.15:
            continue  # image without predictions
        # (category, box, polygon or None): jittered copies of GT, then random false positives.
        cand: list[tuple[int, list[float], list[float] | None]] = []
        for cat, (x, y, bw, bh), gpoly in gts:
            for _ in range(int(rng.poisson(dets_per_gt))):
                j = rng.normal(0, 0.08, 4) * [bw, bh, bw, bh]
                nb = [x + j[0], y + j[1], max(bw + j[2], 1.0), max(bh + j[3], 1.0)]
                poly = (np.asarray(gpoly).reshape(-1, 2) + j[:2]).ravel().round(2).tolist()
                cand.append((cat if rng.random() > 0.1 else int(rng.choice(cat_ids)), nb, poly))
        n_fp = int(rng.integers(0, n_false + 1))
        if many_dets_image and rng.random() < 0.1:
            n_fp += 110  # more than maxDets=100 on this image
        for _ in range(n_fp):
            bw, bh = rng.uniform(2, w * 0.6), rng.uniform(2, h * 0.6)
            fp_box = [rng.uniform(0, w - bw), rng.uniform(0, h - bh), bw, bh]
            cand.append((int(rng.choice(cat_ids)), fp_box, None))
        if cand and rng.random() < 0.3:
            cand.append(cand[int(rng.integers(len(cand)))])  # exact duplicate detection
        for cat, nb, poly in cand:
            box = [round(float(v), 2) for v in nb]
            p: dict[str, Any] = {"image_id": int(img_id), "category_id": int(cat), "bbox": box,
                                 "score": round(float(rng.uniform(0.01, 1.0)), 2)}
            if iou_type == "segm":
                p["segmentation"] = _rle(poly if poly is not None else _polygon(rng, *box), h, w)
            preds.append(p)
    order = rng.permutation(len(preds))
    preds = [preds[i] for i in order]
    return {"images": images, "annotations": anns, "categories": categories}, preds
