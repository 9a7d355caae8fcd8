"""Box- and mask-aware train-time transforms of detection data (``train.augment`` of detection tasks).

Each op takes ``image [3, H, W]`` in [0, 1] and a target with ``boxes [N, 4] xyxy`` (pixels),
``labels [N]`` and optionally ``masks [N, H, W] uint8`` and ``proposals [P, 4] xyxy``, and moves
all of them with the image:

* ``hflip`` / ``vflip``: mirror with p = 0.5 (``x -> W - x``, ``y -> H - y``);
* ``scale_jitter``: rescale by s ~ U(``SCALE_RANGE``) (bilinear image, nearest masks, boxes times
  s), then crop (s > 1) or pad with mid-grey (s < 1) at a random offset back to ``H x W``: objects
  change size on a fixed canvas (the detectors' own resize would undo a plain rescale);
* ``crop``: a random window with each side ~ U(``CROP_RANGE``) of the image's, kept at that size
  (the detector resizes it: a zoom-in);
* ``color_shift``: a random offset in +-0.1 per RGB channel, image only (as for classification);
* ``mosaic`` (YOLOv4's, Bochkovskiy et al. 2020): four images on one canvas the size of the first, split
  into quadrants at a random centre ~ U(``MOSAIC_CENTRE_RANGE``) of each side; each image is resized to
  the canvas and the part of it next to the centre fills its quadrant (as in ultralytics' ``load_mosaic``,
  whose 2x canvas cropped back to 1x puts the centre in the same range).  It combines several items, so
  ``DetectionDataset`` applies it first (drawing 3 more items with torch's generator), then the other ops
  in order.

Boxes are clipped to the new image; a box left narrower or shorter than ``MIN_SIDE`` px (outside the
window, or cut to a sliver) is dropped together with its label and mask.  Proposals are clipped and
their degenerate ones dropped on their own.  Randomness comes from torch's generator, so it follows
the trial seed and the DataLoader's per-worker seeding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

SCALE_RANGE = (0.75, 1.25)
CROP_RANGE = (0.6, 1.0)
MIN_SIDE = 1.0
MOSAIC_CENTRE_RANGE = (0.25, 0.75)
PAD_VALUE = 0.5  # mid-grey, near the mean pixel (Detectron2's fixed-size crop pads with 128 of 255)
#: Target entries with one row per object: filtered together when boxes are dropped.
INSTANCE_KEYS = ("boxes", "labels", "masks")

Target = dict[str, torch.Tensor]


def _uniform(lo: float, hi: float) -> float:
    return lo + float(torch.rand(())) * (hi - lo)


def _randint(n: int) -> int:
    """Uniform in ``0..n`` (inclusive)."""
    return int(torch.randint(0, n + 1, ()))


def flip(image: torch.Tensor, target: Target, horizontal: bool) -> tuple[torch.Tensor, Target]:
    """Mirror left-right (``horizontal``) or top-bottom: ``x1' = W - x2``, ``x2' = W - x1`` (or y)."""
    dim, (a, b) = (-1, (0, 2)) if horizontal else (-2, (1, 3))
    size = image.shape[dim]
    out = dict(target)
    for key in ("boxes", "proposals"):
        if key in target:
            box = target[key].clone()
            box[:, a], box[:, b] = size - target[key][:, b], size - target[key][:, a]
            out[key] = box
    if "masks" in target:
        out["masks"] = target["masks"].flip(dim)
    return image.flip(dim), out


def _clip(boxes: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes ``[N, 4] xyxy`` clipped to the image, and ``keep [N] bool``: both sides still >= ``MIN_SIDE``."""
    x = boxes[:, 0::2].clamp(0, width)
    y = boxes[:, 1::2].clamp(0, height)
    clipped = torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)
    keep = ((clipped[:, 2] - clipped[:, 0]) >= MIN_SIDE) & ((clipped[:, 3] - clipped[:, 1]) >= MIN_SIDE)
    return clipped, keep


def window(image: torch.Tensor, target: Target, top: int, left: int, height: int, width: int) -> tuple[
        torch.Tensor, Target]:
    """The ``height x width`` window at ``(top, left)`` (inside the image): pixels, masks and boxes
    shifted, clipped, degenerate objects dropped (with their labels and masks)."""
    out = dict(target)
    shift = torch.tensor([left, top, left, top], dtype=torch.float32)
    if "masks" in target:
        out["masks"] = target["masks"][:, top:top + height, left:left + width]
    boxes, keep = _clip(target["boxes"] - shift, height, width)
    out["boxes"] = boxes
    for key in INSTANCE_KEYS:
        if key in out:
            out[key] = out[key][keep]
    if "proposals" in target:
        props, ok = _clip(target["proposals"] - shift, height, width)
        out["proposals"] = props[ok]
    return image[:, top:top + height, left:left + width], out


def random_crop(image: torch.Tensor, target: Target) -> tuple[torch.Tensor, Target]:
    """A random window, each side a fraction ~ U(``CROP_RANGE``) of the image's, kept at that size."""
    h, w = image.shape[-2:]
    ch, cw = (max(1, round(_uniform(*CROP_RANGE) * s)) for s in (h, w))
    return window(image, target, _randint(h - ch), _randint(w - cw), ch, cw)


def rescale(image: torch.Tensor, target: Target, scale: float) -> tuple[torch.Tensor, Target]:
    """Image and masks resized by ``scale`` (image bilinear, masks nearest at pixel centres), boxes times
    the exact per-axis factor of the rounded size."""
    h, w = image.shape[-2:]
    return resize_to(image, target, max(1, round(h * scale)), max(1, round(w * scale)), antialias=scale < 1)


def resize_to(image: torch.Tensor, target: Target, height: int, width: int, antialias: bool | None = None) -> tuple[
        torch.Tensor, Target]:
    """Image and masks resized to ``height x width`` (image bilinear, masks nearest at pixel centres),
    boxes and proposals times the per-axis factor.  ``antialias``: default, when either side shrinks."""
    h, w = image.shape[-2:]
    nh, nw = height, width
    if (nh, nw) == (h, w):  # bilinear at the same size is the identity
        return image, dict(target)
    out = dict(target)
    img = F.interpolate(image[None], size=(nh, nw), mode="bilinear", align_corners=False,
                        antialias=(nh < h or nw < w) if antialias is None else antialias)[0].clamp(0, 1)
    factor = torch.tensor([nw / w, nh / h, nw / w, nh / h], dtype=torch.float32)
    for key in ("boxes", "proposals"):
        if key in target:
            out[key] = target[key] * factor
    if "masks" in target:
        # "nearest-exact" samples each output pixel's centre, the same geometry as scaling the boxes.
        m = target["masks"][None].float()
        out["masks"] = F.interpolate(m, size=(nh, nw), mode="nearest-exact")[0].to(torch.uint8) if len(
            target["masks"]) else target["masks"].new_zeros((0, nh, nw))
    return img, out


def pad_to(image: torch.Tensor, target: Target, height: int, width: int, top: int, left: int) -> tuple[
        torch.Tensor, Target]:
    """Place the image at ``(top, left)`` on a ``height x width`` mid-grey canvas; boxes and masks follow."""
    h, w = image.shape[-2:]
    canvas = image.new_full((3, height, width), PAD_VALUE)
    canvas[:, top:top + h, left:left + w] = image
    out = dict(target)
    shift = torch.tensor([left, top, left, top], dtype=torch.float32)
    for key in ("boxes", "proposals"):
        if key in target:
            out[key] = target[key] + shift
    if "masks" in target:
        masks = target["masks"].new_zeros((len(target["masks"]), height, width))
        masks[:, top:top + h, left:left + w] = target["masks"]
        out["masks"] = masks
    return canvas, out


def scale_jitter(image: torch.Tensor, target: Target) -> tuple[torch.Tensor, Target]:
    """Rescale by s ~ U(``SCALE_RANGE``), then crop or pad (random offset) back to the original size."""
    h, w = image.shape[-2:]
    image, target = rescale(image, target, _uniform(*SCALE_RANGE))
    nh, nw = image.shape[-2:]
    if nh > h or nw > w:  # crop the larger axes (the window is the original size where it fits)
        ch, cw = min(h, nh), min(w, nw)
        image, target = window(image, target, _randint(nh - ch), _randint(nw - cw), ch, cw)
        nh, nw = ch, cw
    if nh < h or nw < w:
        image, target = pad_to(image, target, h, w, _randint(h - nh), _randint(w - nw))
    return image, target


def mosaic(items: Sequence[tuple[torch.Tensor, Target]], centre: tuple[int, int] | None = None) -> tuple[
        torch.Tensor, Target]:
    """Four ``(image [3, H_k, W_k], target)`` pairs -> one ``H_0 x W_0`` image and its target.

    A centre ``(cx, cy)`` ~ U(``MOSAIC_CENTRE_RANGE``) of the canvas splits it into four quadrants (top-left,
    top-right, bottom-left, bottom-right: items 0..3); item k is resized to ``H_0 x W_0`` and the window of it
    that touches the centre (its bottom-right part for the top-left quadrant, and so on) fills quadrant k.
    Boxes, masks and proposals move with their pixels; boxes are clipped to their quadrant and objects left
    under ``MIN_SIDE`` px dropped with their labels and masks.  Other target keys (``image_id``) are item 0's.
    ``centre``: ``(cx, cy)`` in canvas pixels instead of the random one.
    """
    if len(items) != 4:
        raise ValueError(f"mosaic combines 4 (image, target) pairs, got {len(items)}")
    with_masks = ["masks" in t for _, t in items]
    if any(with_masks) and not all(with_masks):
        raise ValueError("mosaic: either every target has masks or none does")
    h, w = items[0][0].shape[-2:]
    if centre is None:
        cy, cx = round(_uniform(*MOSAIC_CENTRE_RANGE) * h), round(_uniform(*MOSAIC_CENTRE_RANGE) * w)
    else:
        cx, cy = centre
        if not (0 <= cx <= w and 0 <= cy <= h):
            raise ValueError(f"mosaic: centre {centre} is outside the {w} x {h} canvas")
    canvas = items[0][0].new_empty((3, h, w))
    parts: list[Target] = []
    # (top, left, height, width) of each quadrant on the canvas.
    quadrants = [(0, 0, cy, cx), (0, cx, cy, w - cx), (cy, 0, h - cy, cx), (cy, cx, h - cy, w - cx)]
    for (image, target), (top, left, qh, qw) in zip(items, quadrants, strict=True):
        image, target = resize_to(image, target, h, w)
        # The window next to the centre: a quadrant above (left of) the centre shows the image's bottom
        # (right) part, one below (right of) it the top (left) part.
        win_top, win_left = (h - qh if top == 0 else 0), (w - qw if left == 0 else 0)
        image, target = window(image, target, win_top, win_left, qh, qw)
        image, target = pad_to(image, target, h, w, top, left)  # shift onto the canvas frame
        canvas[:, top:top + qh, left:left + qw] = image[:, top:top + qh, left:left + qw]
        parts.append(target)
    out = dict(items[0][1])
    for key in (*INSTANCE_KEYS, "proposals"):
        if key in out:
            out[key] = torch.cat([t[key] for t in parts])
    return canvas, out


def augment_detection(image: torch.Tensor, target: Target, ops: Sequence[str]) -> tuple[torch.Tensor, Target]:
    """Apply ``ops`` in order (see the module docstring); unknown ops are an error naming the valid ones."""
    from bench.tasks import DETECTION_AUGMENT

    for op in ops:
        if op == "hflip":
            if torch.rand(()) < 0.5:
                image, target = flip(image, target, horizontal=True)
        elif op == "vflip":
            if torch.rand(()) < 0.5:
                image, target = flip(image, target, horizontal=False)
        elif op == "scale_jitter":
            image, target = scale_jitter(image, target)
        elif op == "crop":
            image, target = random_crop(image, target)
        elif op == "color_shift":
            from bench.engine.data import augment

            image = augment(image, None, ("color_shift",))[0]
        elif op == "mosaic":
            raise ValueError("train.augment: mosaic combines four items, so the dataset applies it "
                             "(DetectionDataset draws them); call mosaic() with four (image, target) pairs")
        else:
            raise ValueError(f"train.augment: {op!r} is not a detection transform; "
                             f"valid: {', '.join(DETECTION_AUGMENT)}")
    return image, target
