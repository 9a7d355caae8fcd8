"""The parts SSD300 and SSDLite share (Liu et al. 2016, arXiv:1512.02325): the default boxes, the
hard-negative-mined loss (from ``bench.models.detection._losses``) and the assembly into torchvision's ``SSD``.

torchvision's ``SSD`` does the rest as the paper does: matching (each GT's best default box, then every box
with IoU >= 0.5, ``SSDMatcher``), box encoding (centre/size offsets with variances 0.1 / 0.2, i.e. weights
10, 10, 5, 5), per-class NMS at test.  Imported by the builders only (torch).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.ssd import SSD

from bench.models.detection._losses import ce_loss, smooth_l1_loss


def default_boxes(aspect_ratios: Sequence[Sequence[float]], s_min: float, s_max: float,
                  scales: Sequence[float] | None = None) -> DefaultBoxGenerator:
    """The paper's default boxes (Sec. 2.2, "Choosing scales and aspect ratios for default boxes").

    Level ``k`` of ``m = len(aspect_ratios)`` has scale ``s_k = s_min + (s_max - s_min)(k - 1)/(m - 1)``
    (relative to the input side; torchvision's ``min_ratio`` / ``max_ratio``), boxes of ratios 1, each
    ``r`` and ``1/r`` for ``r`` in ``aspect_ratios[k]``, and one more square box of scale
    ``sqrt(s_k s_{k+1})`` (``s_{m+1} = 1``): 4 boxes per cell for ``[2]``, 6 for ``[2, 3]``.  ``scales``
    (``m + 1`` values) replaces the formula (torchvision's SSD300 uses its COCO ladder 0.07 ... 1.05).
    Centres ``((i + 0.5) / |f_k|, (j + 0.5) / |f_k|)``: the steps follow the feature maps, so any input
    size keeps the layout.
    """
    ratios = [list(r) for r in aspect_ratios]
    if scales is not None and len(scales) != len(ratios) + 1:
        raise ValueError(f"SSD: {len(ratios)} levels need {len(ratios) + 1} default-box scales (the last is "
                         f"s_(m+1) for the extra square box), got {list(scales)}")
    if not 0 < s_min < s_max:
        raise ValueError(f"SSD: need 0 < s_min < s_max, got s_min={s_min}, s_max={s_max}")
    return DefaultBoxGenerator(ratios, min_ratio=s_min, max_ratio=s_max,
                               scales=list(scales) if scales is not None else None)


def hard_negatives(loss: Tensor, positive: Tensor, neg_to_pos: float) -> Tensor:
    """Hard negative mining (Sec. 2.2, "Hard negative mining"): per image the ``neg_to_pos x #positives``
    negatives of highest confidence loss.

    loss: ``[B, A]`` per default box; positive: ``[B, A]`` bool -> ``[B, A]`` bool, the chosen negatives.
    """
    neg_loss = loss.detach().masked_fill(positive, -float("inf"))  # positives sort last
    rank = neg_loss.argsort(1, descending=True).argsort(1)  # rank 0 = the hardest negative
    return (rank < neg_to_pos * positive.sum(1, keepdim=True)) & ~positive


class MinedSSD(SSD):
    """torchvision's ``SSD`` with the paper's loss from bench's losses module and the configurable
    negative:positive ratio (the paper's 3:1):

    ``loss_ssd_conf = (sum_pos CE + sum_mined-neg CE) / N``, ``loss_ssd_loc = sum_pos smoothL1(l - g) / N``,
    ``N`` the matched default boxes of the whole batch (as torchvision normalises; the paper's Eq. 1 per
    image), ``CE`` the softmax cross-entropy over ``K + 1`` classes (0 = background).
    """

    def __init__(self, *args: object, neg_to_pos: float = 3.0, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        if neg_to_pos <= 0:
            raise ValueError(f"SSD: neg_to_pos must be > 0 (the paper's 3), got {neg_to_pos}")
        self.neg_to_pos_ratio = float(neg_to_pos)

    def compute_loss(self, targets: list[dict[str, Tensor]], head_outputs: dict[str, Tensor],
                     anchors: list[Tensor], matched_idxs: list[Tensor]) -> dict[str, Tensor]:
        """head_outputs: ``bbox_regression [B, A, 4]``, ``cls_logits [B, A, K+1]``; anchors: per image
        ``[A, 4]`` xyxy; matched_idxs: per image ``[A]`` GT index or -1 -> ``{loss_ssd_conf, loss_ssd_loc}``."""
        deltas, logits = head_outputs["bbox_regression"], head_outputs["cls_logits"]
        loc = deltas.new_zeros(())
        labels, num_pos = [], 0
        for t, reg, anc, match in zip(targets, deltas, anchors, matched_idxs, strict=True):
            fg = torch.where(match >= 0)[0]
            num_pos += fg.numel()
            encoded = self.box_coder.encode_single(t["boxes"][match[fg]], anc[fg])
            loc = loc + smooth_l1_loss(reg[fg].float(), encoded.float(), beta=1.0)
            cls = torch.zeros(len(match), dtype=torch.int64, device=match.device)
            cls[fg] = t["labels"][match[fg]]
            labels.append(cls)
        target = torch.stack(labels)
        ce = ce_loss(logits.flatten(0, 1).float(), target.flatten(), reduction="none").view_as(target)
        positive = target > 0
        negative = hard_negatives(ce, positive, self.neg_to_pos_ratio)
        n = max(1, num_pos)
        return {"loss_ssd_conf": (ce[positive].sum() + ce[negative].sum()) / n, "loss_ssd_loc": loc / n}


def quiet_classifier(head: nn.Module, std: float = 0.001) -> nn.Module:
    """Redraw the last conv of each level's class predictor N(0, ``std``), bias 0, so the (K+1)-way
    softmax starts near uniform (CE ~ ln(K+1) per box).  torchvision's Xavier (SSD300) and N(0, 0.03)
    (SSDLite) draws give logits of order one and more, and hard negative mining then picks the boxes the
    random head is most confidently wrong about: measured at init on 2 shapes images, K = 3,
    loss_ssd_conf 12.6 (SSD300) and 8.7 (SSDLite) against 4 ln 4 = 5.5.  std 0.001, not the 0.01 of the
    other detectors' classifiers (``_rpn.box_predictor``): conv4_3's L2 normalisation scales each location's
    feature vector to norm 20, so 0.01 still gives logits of std ~0.6 there (measured: 8.8 with BN at width
    0.25); 0.001 gives ~0.06."""
    for level in head.classification_head.module_list:
        last = [m for m in level.modules() if isinstance(m, nn.Conv2d)][-1]
        nn.init.normal_(last.weight, std=std)
        nn.init.zeros_(last.bias)
    return head


def ssd_detector(backbone: nn.Module, boxes: DefaultBoxGenerator, head: nn.Module, image_size: int,
                 num_classes: int, mean: Sequence[float], std: Sequence[float], *, neg_to_pos: float,
                 iou_thresh: float, score_thresh: float, nms_thresh: float, detections_per_img: int,
                 topk_candidates: int) -> MinedSSD:
    """A :class:`MinedSSD` whose transform resizes every image to ``image_size x image_size`` (any input
    size in, boxes back in image px out); ``num_classes`` includes the background; the head's class
    predictors start quiet (:func:`quiet_classifier`)."""
    return MinedSSD(backbone, boxes, (image_size, image_size), num_classes, image_mean=list(mean),
                    image_std=list(std), head=quiet_classifier(head), score_thresh=score_thresh, nms_thresh=nms_thresh,
                    detections_per_img=detections_per_img, iou_thresh=iou_thresh, topk_candidates=topk_candidates,
                    neg_to_pos=neg_to_pos)
