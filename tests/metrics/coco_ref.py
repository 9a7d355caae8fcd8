"""Reference implementations used by the differential tests (pycocotools, a literal VOC devkit loop)."""

from __future__ import annotations

import contextlib
import copy
import io
from typing import Any

import numpy as np


def pycocotools_eval(gt: dict[str, Any], preds: list[dict[str, Any]], iou_type: str) -> Any:
    """pycocotools COCOeval after evaluate/accumulate/summarize (inputs deep-copied: it mutates them)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(preds))
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def devkit_voc(
    gt: dict[str, Any], preds: list[dict[str, Any]], iou_thr: float, legacy: bool, iou_type: str = "bbox"
) -> dict[int, tuple[float, float] | None]:
    """The VOC devkit's per-class loop, written literally (one detection at a time).

    Returns category id -> (AP11, APall), or None for a class without non-crowd GT.
    """
    from pycocotools import mask as mask_utils

    one = 1.0 if legacy else 0.0
    sizes = {im["id"]: (im.get("height"), im.get("width")) for im in gt["images"]}
    out: dict[int, tuple[float, float] | None] = {}
    for cat in gt["categories"]:
        c = cat["id"]
        recs: dict[int, list[dict[str, Any]]] = {}
        for a in gt["annotations"]:
            if a["category_id"] == c:
                recs.setdefault(a["image_id"], []).append(a)
        npos = sum(1 for a in gt["annotations"] if a["category_id"] == c
                   and not a["iscrowd"] and not a.get("difficult", 0))
        if npos == 0:
            out[c] = None
            continue
        dets = [p for p in preds if p["category_id"] == c]
        order = sorted(range(len(dets)), key=lambda i: -dets[i]["score"])  # sorted() is stable
        matched: set[int] = set()
        tp, fp = [], []
        for i in order:
            d = dets[i]
            best, jmax = -np.inf, -1
            for j, g in enumerate(recs.get(d["image_id"], [])):
                if iou_type == "segm":
                    h, w = sizes[d["image_id"]]
                    grle = mask_utils.frPyObjects(g["segmentation"], h, w)
                    grle = mask_utils.merge(grle) if isinstance(grle, list) else grle
                    ov = float(mask_utils.iou([d["segmentation"]], [grle], [0])[0][0])
                else:
                    bx1, by1 = d["bbox"][0], d["bbox"][1]
                    bx2, by2 = bx1 + d["bbox"][2], by1 + d["bbox"][3]
                    gx1, gy1 = g["bbox"][0], g["bbox"][1]
                    gx2, gy2 = gx1 + g["bbox"][2], gy1 + g["bbox"][3]
                    iw = max(min(bx2, gx2) - max(bx1, gx1) + one, 0.0)
                    ih = max(min(by2, gy2) - max(by1, gy1) + one, 0.0)
                    inter = iw * ih
                    area_d = (bx2 - bx1 + one) * (by2 - by1 + one)
                    uni = area_d + (gx2 - gx1 + one) * (gy2 - gy1 + one) - inter
                    ov = inter / uni if uni > 0 else 0.0
                if ov > best:  # strict: the first of equal maxima wins, like np.argmax
                    best, jmax = ov, j
            if best > iou_thr:
                g = recs[d["image_id"]][jmax]
                if g["iscrowd"] or g.get("difficult", 0):
                    continue  # ignored: neither TP nor FP
                if g["id"] not in matched:
                    matched.add(g["id"])
                    tp.append(1.0)
                    fp.append(0.0)
                else:
                    tp.append(0.0)
                    fp.append(1.0)
            else:
                tp.append(0.0)
                fp.append(1.0)
        tpc, fpc = np.cumsum(tp), np.cumsum(fp)
        rec = tpc / npos
        prec = tpc / np.maximum(tpc + fpc, np.finfo(np.float64).eps)
        ap11 = 0.0
        for t in np.arange(11) / 10:
            ap11 += (np.max(prec[rec >= t]) if np.sum(rec >= t) > 0 else 0.0) / 11.0
        mrec = np.concatenate(([0.0], rec, [1.0]))
        mpre = np.concatenate(([0.0], prec, [0.0]))
        for i in range(mpre.size - 1, 0, -1):
            mpre[i - 1] = max(mpre[i - 1], mpre[i])
        idx = np.where(mrec[1:] != mrec[:-1])[0]
        out[c] = (float(ap11), float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1])))
    return out
