"""Region-based detection building blocks shared by the proposal-based detectors (R-CNN family).

General functions, no model state:

* :func:`encode_boxes` / :func:`decode_boxes`: the R-CNN box parameterisation (Girshick et al.
  2014, appendix C; Fast R-CNN eq. 2's targets) with per-coordinate normalisation;
* :func:`sample_rois`: IoU-based RoI sampling with a foreground fraction (Fast R-CNN sec. 2.3);
* :func:`postprocess`: per-class box decoding, clipping, score threshold and per-class NMS;
* :func:`resize_images` / :func:`batch_images`: the single-scale input pipeline (shorter side to
  ``S``, longest side capped), proposals and ground truth scaled with the image.

Boxes are ``xyxy`` in pixels throughout; ``[N, 4]`` tensors.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Fast R-CNN normalises the regression targets to zero mean and unit variance (sec. 2.3, "we
# normalize the ground-truth regression targets v_i"); its reference implementation
# (rbgirshick/py-faster-rcnn, BBOX_NORMALIZE_MEANS/STDS) fixes the statistics at mean 0 and
# std (0.1, 0.1, 0.2, 0.2), measured on PASCAL VOC proposals.  Dividing by these stds is
# torchvision's BoxCoder weights (10, 10, 5, 5).
TARGET_STDS = (0.1, 0.1, 0.2, 0.2)
# exp() of a predicted log-scale above this is clamped (torchvision's bound: log(1000 / 16)).
MAX_LOG_SCALE = math.log(1000.0 / 16)


def encode_boxes(rois: torch.Tensor, gt: torch.Tensor, stds: tuple[float, ...] = TARGET_STDS) -> torch.Tensor:
    """Regression targets ``[N, 4]`` (tx, ty, tw, th) taking ``rois [N, 4]`` onto ``gt [N, 4]``.

    tx = (gx - px) / pw, ty = (gy - py) / ph, tw = log(gw / pw), th = log(gh / ph), with centres
    (x, y) and sizes (w, h); each divided by its ``stds`` entry.
    """
    pw, ph = (rois[:, 2] - rois[:, 0]).clamp(min=1e-3), (rois[:, 3] - rois[:, 1]).clamp(min=1e-3)
    px, py = rois[:, 0] + 0.5 * pw, rois[:, 1] + 0.5 * ph
    gw, gh = (gt[:, 2] - gt[:, 0]).clamp(min=1e-3), (gt[:, 3] - gt[:, 1]).clamp(min=1e-3)
    gx, gy = gt[:, 0] + 0.5 * gw, gt[:, 1] + 0.5 * gh
    t = torch.stack([(gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)], dim=1)
    return t / t.new_tensor(stds)


def decode_boxes(rois: torch.Tensor, deltas: torch.Tensor, stds: tuple[float, ...] = TARGET_STDS) -> torch.Tensor:
    """The inverse of :func:`encode_boxes`: ``rois [N, 4]`` and ``deltas [N, 4k]`` -> boxes ``[N, 4k]``.

    ``k`` boxes per RoI (one per class for per-class regression); log-scales are clamped at
    ``MAX_LOG_SCALE`` so an untrained regressor cannot overflow.
    """
    n = rois.shape[0]
    d = deltas.reshape(n, -1, 4) * deltas.new_tensor(stds)  # [N, k, 4]
    pw, ph = (rois[:, 2] - rois[:, 0])[:, None], (rois[:, 3] - rois[:, 1])[:, None]
    px, py = rois[:, 0][:, None] + 0.5 * pw, rois[:, 1][:, None] + 0.5 * ph
    cx, cy = px + d[..., 0] * pw, py + d[..., 1] * ph
    w = pw * torch.exp(d[..., 2].clamp(max=MAX_LOG_SCALE))
    h = ph * torch.exp(d[..., 3].clamp(max=MAX_LOG_SCALE))
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=2).reshape(n, -1)


def sample_rois(
    proposals: torch.Tensor, gt_boxes: torch.Tensor, gt_labels: torch.Tensor, *, batch_size: int,
    fg_fraction: float, fg_iou: float, bg_iou: tuple[float, float], add_gt: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A training mini-batch of RoIs for one image (Fast R-CNN sec. 2.3).

    ``proposals [P, 4]``, ``gt_boxes [G, 4]``, ``gt_labels [G]`` (1..K).  With ``add_gt`` the
    ground-truth boxes join the candidates.  Each candidate is matched to the ground truth of
    highest IoU.  Foreground: IoU >= ``fg_iou``, up to ``round(fg_fraction * batch_size)`` drawn
    at random; background: IoU in ``[bg_iou[0], bg_iou[1])``, filling the rest of ``batch_size``
    (fewer when too few candidates qualify: the batch is then smaller, as in the reference code).

    Returns ``(rois [R, 4], labels [R] (0 = background), matched_gt [R, 4])``, foreground first.
    """
    from torchvision.ops import box_iou

    cand = torch.cat([proposals, gt_boxes]) if add_gt else proposals
    if gt_boxes.numel() == 0:
        iou = cand.new_zeros(len(cand))
        match = torch.zeros(len(cand), dtype=torch.long, device=cand.device)
    else:
        iou, match = box_iou(cand, gt_boxes).max(dim=1)
    fg = torch.nonzero(iou >= fg_iou).flatten()
    bg = torch.nonzero((iou >= bg_iou[0]) & (iou < bg_iou[1])).flatten()
    n_fg = min(len(fg), round(fg_fraction * batch_size))
    fg = fg[torch.randperm(len(fg), generator=generator, device="cpu")[:n_fg].to(fg.device)]
    n_bg = min(len(bg), batch_size - n_fg)
    bg = bg[torch.randperm(len(bg), generator=generator, device="cpu")[:n_bg].to(bg.device)]
    keep = torch.cat([fg, bg])
    labels = torch.zeros(len(keep), dtype=torch.long, device=cand.device)
    if gt_boxes.numel():
        labels[:n_fg] = gt_labels[match[fg]]
        matched = gt_boxes[match[keep]]
    else:
        matched = cand[keep]  # background only: the regression target is never used
    return cand[keep], labels, matched


def postprocess(
    class_logits: torch.Tensor, box_deltas: torch.Tensor, rois: torch.Tensor, image_size: tuple[int, int], *,
    score_thresh: float, nms_thresh: float, detections_per_img: int,
) -> dict[str, torch.Tensor]:
    """Detections of one image from its RoIs' outputs (Fast R-CNN sec. 3, test time).

    ``class_logits [R, K + 1]`` (class 0 = background), ``box_deltas [R, 4 (K + 1)]`` per-class
    regression, ``rois [R, 4]``; ``image_size`` (h, w) clips the boxes.  Each RoI gives one box
    per foreground class, scored by that class's softmax probability; boxes scoring below
    ``score_thresh`` or with no area go, then NMS per class at ``nms_thresh``; the best
    ``detections_per_img`` remain.  Returns ``{"boxes": [N, 4], "scores": [N], "labels": [N]}``.
    """
    from torchvision.ops import batched_nms, clip_boxes_to_image, remove_small_boxes

    k1 = class_logits.shape[1]
    scores = F.softmax(class_logits.float(), dim=1)[:, 1:]  # [R, K]
    boxes = decode_boxes(rois.float(), box_deltas.float()).reshape(-1, k1, 4)[:, 1:]  # [R, K, 4]
    boxes = clip_boxes_to_image(boxes, image_size)
    labels = torch.arange(1, k1, device=scores.device).expand_as(scores)
    boxes, scores, labels = boxes.reshape(-1, 4), scores.reshape(-1), labels.reshape(-1)
    keep = torch.nonzero(scores > score_thresh).flatten()
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = remove_small_boxes(boxes, 1e-2)
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = batched_nms(boxes, scores, labels, nms_thresh)[:detections_per_img]
    return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}


def resize_scale(height: int, width: int, min_size: int, max_size: int | None) -> float:
    """The factor taking an image's shorter side to ``min_size``, lowered so the longer side stays
    within ``max_size`` (Fast R-CNN: 600 and 1000)."""
    scale = min_size / min(height, width)
    if max_size is not None and max(height, width) * scale > max_size:
        scale = max_size / max(height, width)
    return scale


def resize_images(
    images: list[torch.Tensor], min_size: int, max_size: int | None
) -> tuple[list[torch.Tensor], list[float]]:
    """Each ``[3, H, W]`` image resized (bilinear) by :func:`resize_scale`; returns the images and
    their scale factors (multiply boxes by them)."""
    out, scales = [], []
    for im in images:
        s = resize_scale(im.shape[-2], im.shape[-1], min_size, max_size)
        size = (max(1, round(im.shape[-2] * s)), max(1, round(im.shape[-1] * s)))
        out.append(im if size == tuple(im.shape[-2:]) else
                   F.interpolate(im[None], size=size, mode="bilinear", align_corners=False)[0])
        scales.append(s)
    return out, scales


def batch_images(images: list[torch.Tensor], divisible: int) -> torch.Tensor:
    """``[B, 3, H, W]`` with every image at the top left, zero-padded to the largest height and width
    rounded up to a multiple of ``divisible`` (the backbone stride): a box's feature cells do not
    depend on the other images of the batch."""
    h = math.ceil(max(im.shape[-2] for im in images) / divisible) * divisible
    w = math.ceil(max(im.shape[-1] for im in images) / divisible) * divisible
    out = images[0].new_zeros(len(images), 3, h, w)
    for i, im in enumerate(images):
        out[i, :, :im.shape[-2], :im.shape[-1]] = im
    return out
