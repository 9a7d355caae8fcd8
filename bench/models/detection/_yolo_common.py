"""What every YOLO generation shares: the square input batch, and decoding that ends in per-class NMS.

Each generation has its own backbone, head, target assignment and loss (``_yolo_v1.py`` ... ``_yolo_v5.py``);
only the plumbing around them is here.  YOLO resizes every image to the network's square input (a plain
resize, as darknet v1/v2 did), so boxes are scaled into that frame for training and back out for the
evaluator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchvision.ops import batched_nms

Target = dict[str, torch.Tensor]


def square_batch(images: Sequence[torch.Tensor], size: int, targets: Sequence[Target] | None = None) -> tuple[
        torch.Tensor, list[Target] | None, torch.Tensor]:
    """Resize each ``image [3, H, W]`` (0..1) to ``size x size`` and stack them.

    Returns ``(x [B, 3, size, size], targets with boxes [N, 4] xyxy in input pixels, scales [B, 2])``, where
    ``scales[b] = (size / W, size / H)`` maps image pixels to input pixels (``postprocess`` divides by it).
    """
    x = torch.stack([F.interpolate(im[None], size=(size, size), mode="bilinear", align_corners=False,
                                   antialias=im.shape[-1] > size or im.shape[-2] > size)[0] for im in images])
    scales = torch.tensor([[size / im.shape[-1], size / im.shape[-2]] for im in images], device=x.device)
    if targets is None:
        return x, None, scales
    scaled = [{**t, "boxes": t["boxes"] * s.repeat(2)} for t, s in zip(targets, scales, strict=True)]
    return x, scaled, scales


def postprocess(boxes: torch.Tensor, scores: torch.Tensor, scales: torch.Tensor, score_thresh: float,
                nms_iou: float, max_detections: int, input_size: int, pre_nms_top_k: int = 1000) -> list[Target]:
    """Per-class NMS over each image's candidates.

    ``boxes [B, N, 4]`` xyxy in input pixels; ``scores [B, N, K]`` the class-specific confidence of each
    candidate (objectness x class probability for YOLO); every (candidate, class) pair above
    ``score_thresh`` is a detection, the ``pre_nms_top_k`` best enter NMS at IoU ``nms_iou`` within each class,
    the ``max_detections`` best survive.  Returns ``[{boxes [M, 4] xyxy (image pixels), scores [M],
    labels [M] in 1..K}]``.
    """
    out = []
    k = scores.shape[-1]
    for b in range(boxes.shape[0]):
        flat = scores[b].reshape(-1)
        keep = torch.nonzero(flat > score_thresh).squeeze(1)
        if keep.numel() > pre_nms_top_k:
            keep = keep[flat[keep].topk(pre_nms_top_k).indices]
        cand, cls = keep // k, keep % k
        box = boxes[b, cand].clamp(0, input_size)
        kept = batched_nms(box, flat[keep], cls, nms_iou)[:max_detections]
        out.append({"boxes": box[kept] / scales[b].repeat(2), "scores": flat[keep][kept], "labels": cls[kept] + 1})
    return out


def resolve_anchors(model: str, anchors: Sequence[Sequence[float]] | None, num_anchors: int,
                    published: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The anchors a YOLO builder uses: ``anchors`` as given (the detection task's k-means, or the YAML's), or,
    when None (a build outside a task: the fidelity test), the paper's ``published`` ones, already scaled to the
    input.  Each a positive ``(w, h)`` in input pixels, ``num_anchors`` of them, or a clear error."""
    if anchors is None:
        if num_anchors != len(published):
            raise ValueError(f"{model}: num_anchors {num_anchors} without `anchors`: the published anchors are "
                             f"{len(published)}; give `anchors` or let the detection task fill them by k-means")
        anchors = published
    if len(anchors) != num_anchors:
        raise ValueError(f"{model}: {len(anchors)} anchors given but num_anchors is {num_anchors}")
    if any(len(a) != 2 or not (min(a) > 0 and math.isfinite(sum(a))) for a in anchors):
        raise ValueError(f"{model}: anchors must be positive (w, h) pairs in input pixels, got {list(anchors)}")
    return [(float(w), float(h)) for w, h in anchors]
