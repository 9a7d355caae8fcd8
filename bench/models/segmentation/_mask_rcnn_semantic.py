"""Mask R-CNN (He et al. 2017) as a semantic segmenter: trained on instances cut from the label map, its
detections merged back into per-pixel class scores.

Training targets (``instance_targets``): every 8-connected component of every class of the label map
``y [B, H, W]`` (0 = background, 255 = ignored) is one object: its mask, its class, and its box, the
component's extent in pixel edges ``[x0, y0, x1 + 1, y1 + 1]`` (COCO's convention, as the instance views'
boxes).  Consequence: same-class objects that touch (8-connected) become one instance; objects of different
classes never merge.  Ignored pixels belong to no instance: Mask R-CNN's losses have no per-pixel ignore,
so they count as background in the mask targets (shapes has none).

Prediction (``merge_detections``): the detector's detections (box score ``s_i``, class ``c_i``, mask
probabilities ``m_i(p)`` pasted into the image by torchvision) become scores per pixel ``p`` and class:

    score(p, k) = max over detections i of class k of s_i x m_i(p)        (k = 1..K)
    score(p, 0) = 1 - max over k of score(p, k)                          (background)

so the argmax labels a pixel with the class of the detection whose ``s_i x m_i(p)`` (detection correct and
pixel in its mask, taken as independent) is highest, where that exceeds 0.5: the instance masks merged into
one label map, the more confident instance winning where masks overlap.  The scores are probabilities, not
logits (no softmax applies; they do not sum to 1): the segmentation evaluation takes only their argmax.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from bench.engine.data import MEAN, STD

#: 8-connectivity: a rasterised triangle's tip touches the rest of it only diagonally.
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def instance_targets(y: torch.Tensor, num_classes: int) -> list[dict[str, torch.Tensor]]:
    """torchvision's Mask R-CNN targets from label maps ``y [B, H, W]`` (classes ``1..num_classes - 1``;
    0 background, anything else, e.g. 255, in no instance): per image ``boxes [N, 4]`` (float, x0 y0 x1 y1),
    ``labels [N]`` (int64, the class) and ``masks [N, H, W]`` (uint8 0/1), one per connected component of
    each class (8-connected), on ``y``'s device.  N may be 0 (an all-background image: negatives only)."""
    if y.ndim != 3:
        raise ValueError(f"label maps must be [B, H, W], got {list(y.shape)}")
    targets = []
    for lab in y.cpu().numpy():
        boxes, labels, masks = [], [], []
        for k in range(1, num_classes):
            components, _ = ndimage.label(lab == k, structure=EIGHT_CONNECTED)
            for i, (rows, cols) in enumerate(ndimage.find_objects(components), start=1):
                boxes.append([cols.start, rows.start, cols.stop, rows.stop])
                labels.append(k)
                masks.append(components == i)
        height, width = lab.shape
        targets.append({
            "boxes": torch.tensor(boxes, dtype=torch.float32, device=y.device).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64, device=y.device),
            "masks": torch.from_numpy(np.array(masks, dtype=np.uint8).reshape(-1, height, width)).to(y.device),
        })
    return targets


def merge_detections(detections: list[dict[str, torch.Tensor]], num_classes: int,
                     size: tuple[int, int]) -> torch.Tensor:
    """``[B, num_classes, H, W]`` per-pixel class scores from B images' detections (``scores [N]``, ``labels
    [N]`` in 1..num_classes - 1, ``masks [N, 1, H, W]`` probabilities): the module docstring's merge rule."""
    device = detections[0]["scores"].device if detections else torch.device("cpu")
    out = torch.zeros(len(detections), num_classes, *size, device=device)
    for b, det in enumerate(detections):
        if len(det["scores"]):
            prob = det["scores"][:, None, None] * det["masks"][:, 0]  # [N, H, W]
            for k in range(1, num_classes):
                chosen = (det["labels"] == k)[:, None, None]
                out[b, k] = torch.where(chosen, prob, 0.0).amax(0)
        out[b, 0] = 1.0 - out[b, 1:].amax(0)
    return out


class MaskRCNNSemantic(nn.Module):
    """A torchvision ``MaskRCNN`` (``detector``, built by mask_rcnn's builder for ``num_classes - 1`` object
    classes) behind the segmentation interface.

    Train mode: ``segmentation_loss(x, y)`` -> Mask R-CNN's five losses on ``instance_targets(y)``.
    Eval mode: ``forward(x [B, 3, H, W]) -> [B, num_classes, H, W]`` scores (``merge_detections``).
    ``x`` is the segmentation view's normalised image; the detector gets it back in RGB [0, 1], as the
    detection views hand it, and normalises it itself.
    """

    def __init__(self, detector: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.detector = detector
        self.num_classes = num_classes  # background included

    def segmentation_loss(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Mask R-CNN's losses (``loss_objectness``, ``loss_rpn_box_reg``, ``loss_classifier``, ``loss_box_reg``,
        ``loss_mask``) on images ``x [B, 3, H, W]`` and label maps ``y [B, H, W]``; the task sums them."""
        if not self.training:
            raise RuntimeError("mask_rcnn_semantic: segmentation_loss needs train mode (the detector computes "
                               "its losses only while training)")
        return self.detector(list(x * STD + MEAN), instance_targets(y, self.num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, 3, H, W]`` -> ``[B, num_classes, H, W]`` per-pixel class probabilities (eval mode only)."""
        if self.training:
            raise RuntimeError("mask_rcnn_semantic trains on instance targets made from the labels: call "
                               "segmentation_loss(x, y) in train mode (SegmentationTask.loss does), forward in eval")
        detections = self.detector(list(x * STD + MEAN))
        return merge_detections(detections, self.num_classes, (x.shape[-2], x.shape[-1]))
