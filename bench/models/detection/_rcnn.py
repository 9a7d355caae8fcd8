"""R-CNN's network and its three trained stages (Girshick et al. 2014, arXiv:1311.2524).

Each selective-search proposal is dilated by ``context_padding`` pixels of context at the warped
scale, warped (anisotropically) to ``warp_size`` x ``warp_size`` and run through the CNN on its own,
one forward per region.  Three stages are trained:

1. **fine-tuning** (``loss_finetune``): the CNN with a (K+1)-way softmax on the warped regions,
   positives = regions with IoU >= 0.5 to a ground-truth box (that box's class), the rest background,
   mini-batches of 25% positives (the paper's 32 of 128);
2. **per-class linear SVMs** (``loss_svm``) on the fc7 features: positives are the ground-truth boxes
   only, negatives the regions with IoU < 0.3 to every instance of the class, hard negative mining
   (the highest-scoring negatives of each image's proposals), hinge + L2;
3. **class-specific box regression** (``loss_bbox``): ridge regression from pool5 features to the
   (dx, dy, dw, dh) offsets of regions with IoU >= 0.6 to a ground-truth box.

The SVMs and the regressors read *detached* features computed with dropout off (the deterministic
features used at test), so their losses never change the CNN: as in the paper, they are fit on the
CNN, not with it.  All three are trained in the same steps of the generic trainer (its loss is the
sum of the returned dict) rather than one after the other: the CNN's features keep moving while it
fine-tunes, so the SVMs and regressors track them and converge as the learning rate anneals.  At
test time the detections are scored by the SVMs, not by the softmax.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import box_iou, roi_align

from bench.models.detection._region import decode_boxes, encode_boxes, sample_rois, select_detections

# The CNN's input normalisation (ImageNet statistics, as torchvision's AlexNet expects).  Regions
# reaching outside the image sample zeros after it, i.e. the mean colour, which is the paper's fill.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
ALEXNET_WIDTHS = (64, 192, 384, 256, 256)  # torchvision's AlexNet conv1..conv5 ("one weird trick" variant)
UNNORMALISED = (1.0, 1.0, 1.0, 1.0)  # R-CNN regresses the raw t_x, t_y, t_w, t_h (appendix C), no target stds


@dataclass(frozen=True)
class RCNNConfig:
    """R-CNN's knobs (the builder's parameters; see ``bench/models/detection/rcnn.py``)."""

    num_classes: int  # K foreground classes; background is class 0 of the fine-tuning softmax
    warp_size: int = 227
    context_padding: int = 16
    width: float = 1.0
    fc_dim: int = 4096
    dropout: float = 0.5
    fg_iou: float = 0.5
    regions_per_image: int = 64
    positive_fraction: float = 0.25
    svm_neg_iou: float = 0.3
    svm_mining_pool: int = 2000
    svm_hard_negatives: int = 32
    svm_pos_weight: float = 2.0
    svm_l2: float = 1e-3
    bbox_iou: float = 0.6
    bbox_ridge: float = 5e-3
    feat_norm: float = 20.0
    feat_norm_momentum: float = 0.1
    nms_iou: float = 0.3
    score_thresh: float | None = None  # SVM margins are unbounded: None keeps every score
    detections_per_img: int = 100
    chunk: int = 256  # regions per CNN forward where no gradient is needed (memory bound)


def alexnet_features(width: float) -> tuple[nn.Sequential, int]:
    """torchvision's ``AlexNet.features`` (conv1 .. pool5) with each conv's channels times ``width``.

    The layer list, kernels, strides and paddings are torchvision's; at ``width`` 1.0 the module's
    state dict is key- and shape-identical to ``torchvision.models.alexnet().features``, so its
    ImageNet weights load directly.  Returns ``(module, conv5 channels)``.
    """
    c = [max(1, round(n * width)) for n in ALEXNET_WIDTHS]
    return nn.Sequential(
        nn.Conv2d(3, c[0], kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(c[0], c[1], kernel_size=5, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(c[1], c[2], kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(c[2], c[3], kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(c[3], c[4], kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    ), c[4]


def pool5_side(warp_size: int) -> int:
    """Side of AlexNet's pool5 map for ``warp_size`` px inputs: 6 at the paper's 227 px, 1 at 63 px.

    pool5 is the network's own map at the warp size, as in the paper's Caffe AlexNet; torchvision's
    adaptive 6x6 average pool (which copies a smaller map's cells into a 6x6 grid) is left out, as
    the copies would multiply the fc6 and regressor weights that read the same cell.
    """
    side = (warp_size + 2 * 2 - 11) // 4 + 1  # conv1: 11x11, stride 4, padding 2
    for _ in range(3):  # pool1, pool2, pool5: 3x3 stride 2 (conv2..conv5 keep the size)
        side = (side - 3) // 2 + 1
    if side < 1:
        raise ValueError(f"rcnn: warp_size {warp_size} is too small for AlexNet (pool5 would be empty); use >= 63")
    return side


def dilate_for_context(boxes: Tensor, warp_size: int, padding: int) -> Tensor:
    """``boxes [N, 4] xyxy`` grown so that, warped to ``warp_size`` px, ``padding`` px of context surround them.

    The box fills the central ``warp_size - 2 padding`` pixels of the warp, so each side grows by
    ``padding / (warp_size - 2 padding)`` of the box's own width (horizontally) or height
    (vertically): R-CNN's appendix A, p = 16 at 227 px.  -> ``[N, 4]``.
    """
    inner = warp_size - 2 * padding
    if inner <= 0:
        raise ValueError(f"rcnn: context_padding {padding} leaves no room in warp_size {warp_size} "
                         f"(need 2 x padding < warp_size); lower params.context_padding")
    wh = (boxes[:, 2:] - boxes[:, :2]) * (padding / inner)  # [N, 2]
    return torch.cat([boxes[:, :2] - wh, boxes[:, 2:] + wh], dim=1)


def warp_regions(image: Tensor, boxes: Tensor, warp_size: int, padding: int) -> Tensor:
    """Crop each of ``boxes [N, 4] xyxy`` with its context from ``image [3, H, W]`` -> ``[N, 3, S, S]``.

    Anisotropic warp (each axis scaled on its own, the aspect ratio is not kept), bilinear with 2x2
    samples per output pixel (``roi_align``, continuous coordinates).  Pixels beyond the image read
    zero: the mean colour once ``image`` is normalised.
    """
    rois = dilate_for_context(boxes.to(image.dtype), warp_size, padding)
    return roi_align(image[None], [rois], output_size=warp_size, spatial_scale=1.0, sampling_ratio=2, aligned=True)


@contextlib.contextmanager
def deterministic(module: nn.Module) -> Iterator[None]:
    """Dropout layers of ``module`` in eval mode for the block: the features the SVMs and regressors see
    are the test-time ones."""
    drops = [m for m in module.modules() if isinstance(m, nn.modules.dropout._DropoutNd) and m.training]
    for m in drops:
        m.eval()
    try:
        yield
    finally:
        for m in drops:
            m.train()


class RCNN(nn.Module):
    """R-CNN on an AlexNet (torchvision's layer list, channel ``width`` multiplier).

    train: ``forward(images: list[[3, H, W] in 0..1], targets)`` -> ``{loss_finetune, loss_svm, loss_bbox}``;
    eval: ``forward(images, targets)`` -> ``[{boxes [N, 4] xyxy, scores [N] (SVM margins), labels [N] in 1..K}]``.
    Every target holds ``proposals [P, 4] xyxy`` (the detection task adds them: ``uses_proposals``).
    """

    uses_proposals = True

    def __init__(self, cfg: RCNNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        k = cfg.num_classes
        self.features, conv5 = alexnet_features(cfg.width)
        pool5_dim = conv5 * pool5_side(cfg.warp_size) ** 2
        # torchvision's AlexNet classifier without fc8: dropout, fc6, ReLU, dropout, fc7, ReLU.
        self.fc = nn.Sequential(
            nn.Dropout(cfg.dropout), nn.Linear(pool5_dim, cfg.fc_dim), nn.ReLU(inplace=True),
            nn.Dropout(cfg.dropout), nn.Linear(cfg.fc_dim, cfg.fc_dim), nn.ReLU(inplace=True),
        )
        self.cls_score = nn.Linear(cfg.fc_dim, k + 1)  # the fine-tuning layer replacing fc8 (K + background)
        self.svm = nn.Linear(cfg.fc_dim, k)  # one binary linear SVM per class on fc7
        self.bbox_reg = nn.Linear(pool5_dim, 4 * k)  # one (dx, dy, dw, dh) ridge regressor per class on pool5
        # From random init (no ImageNet pre-training here), He initialisation of the ReLU layers keeps
        # the activations' scale through the eight layers; PyTorch's default (a third of He's variance
        # per layer, no BatchNorm to undo it) starts fc7 near zero and the fine-tuning on a plateau.
        for layer in [*self.features, *self.fc]:
            if isinstance(layer, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)
        # The fine-tuning layer: Gaussian std 0.01 (Caffe's fc8 initialisation, which R-CNN's fine-tuning
        # uses): near-uniform softmax at the start.
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.zeros_(self.cls_score.bias)
        for head in (self.svm, self.bbox_reg):  # the convex stages start at the origin
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        # Running mean L2 norms of fc7 and pool5 features: features are scaled to mean norm
        # ``feat_norm`` (20 in the paper's code) before the SVMs and regressors; 0 = not yet seen.
        self.register_buffer("fc7_norm", torch.zeros(()))
        self.register_buffer("pool5_norm", torch.zeros(()))
        self.register_buffer("mean", torch.tensor(MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(3, 1, 1), persistent=False)

    # -- features ---------------------------------------------------------------------------------

    def region_features(self, regions: Tensor) -> tuple[Tensor, Tensor]:
        """Warped regions ``[N, 3, S, S]`` -> ``(pool5 [N, D5], fc7 [N, Dfc])``."""
        pool5 = self.features(regions).flatten(1)
        return pool5, self.fc(pool5)

    def frozen_features(self, image: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
        """pool5 and fc7 of ``boxes [N, 4]`` with no gradient and dropout off, in chunks: what the SVMs
        and regressors are fit on and applied to."""
        cfg = self.cfg
        pool5, fc7 = [], []
        with torch.no_grad(), deterministic(self):
            for part in boxes.split(cfg.chunk):
                p5, f7 = self.region_features(warp_regions(image, part, cfg.warp_size, cfg.context_padding))
                pool5.append(p5)
                fc7.append(f7)
        if not pool5:
            return image.new_zeros(0, self.bbox_reg.in_features), image.new_zeros(0, self.svm.in_features)
        return torch.cat(pool5), torch.cat(fc7)

    def scaled(self, feats: Tensor, norm: Tensor, update: bool) -> Tensor:
        """``feats [N, D]`` times ``feat_norm / running mean norm``; ``update`` folds this batch into the mean."""
        batch = feats.norm(dim=1).mean() if len(feats) else norm
        if update and len(feats):
            m = self.cfg.feat_norm_momentum
            norm.copy_(torch.where(norm > 0, (1 - m) * norm + m * batch, batch))
        ref = torch.where(norm > 0, norm, batch)
        return feats * (self.cfg.feat_norm / ref.clamp_min(1e-6))

    # -- forward ----------------------------------------------------------------------------------

    def forward(self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None) -> (
            dict[str, Tensor] | list[dict[str, Tensor]]):
        if targets is None or any("proposals" not in t for t in targets):
            raise ValueError("rcnn: every target needs 'proposals' [P, 4] xyxy (selective search); the detection "
                             "task adds them for models with uses_proposals = True - pass targets in eval too")
        images = [(im - self.mean) / self.std for im in images]
        proposals = [t["proposals"].to(images[0].dtype) for t in targets]
        if self.training:
            return self.losses(images, targets, proposals)
        return [self.detect(im, p) for im, p in zip(images, proposals, strict=True)]

    def losses(self, images: list[Tensor], targets: list[dict[str, Tensor]], proposals: list[Tensor]) -> (
            dict[str, Tensor]):
        """The three stages' losses on one batch (see the module docstring)."""
        cfg = self.cfg
        # Fine-tuning regions: proposals and ground truth, IoU >= fg_iou a positive of the matched box's
        # class, everything else background (no lower IoU bound), at most positive_fraction positives.
        ft = [sample_rois(p, t["boxes"].to(p.dtype), t["labels"], batch_size=cfg.regions_per_image,
                          fg_fraction=cfg.positive_fraction, fg_iou=cfg.fg_iou, bg_iou=(0.0, cfg.fg_iou))
              for p, t in zip(proposals, targets, strict=True)]
        regions = torch.cat([warp_regions(im, boxes, cfg.warp_size, cfg.context_padding)
                             for im, (boxes, _, _) in zip(images, ft, strict=True)])
        pool5, fc7 = self.region_features(regions)
        labels = torch.cat([lab for _, lab, _ in ft])
        loss_finetune = F.cross_entropy(self.cls_score(fc7), labels)

        mined = [self.mining_set(im, p, t["boxes"], t["labels"]) for im, p, t in zip(images, proposals, targets,
                                                                                          strict=True)]
        fc7_m = self.scaled(torch.cat([m["fc7"] for m in mined]), self.fc7_norm, update=True)
        loss_svm = self.svm_loss(self.svm(fc7_m), mined)

        # Regression pairs: the fine-tuning regions (pool5 has no dropout: detached, it is the test
        # feature) and the mining set, wherever IoU >= bbox_iou.
        pool5_all = torch.cat([pool5.detach(), *[m["pool5"] for m in mined]])
        pool5_all = self.scaled(pool5_all, self.pool5_norm, update=True)
        boxes_all = torch.cat([*[b for b, _, _ in ft], *[m["boxes"] for m in mined]])
        match = [pair_match(boxes, gt, lab) for boxes, lab, gt in ft] + [m["match"] for m in mined]
        loss_bbox = self.bbox_loss(pool5_all, boxes_all, match)
        return {"loss_finetune": loss_finetune, "loss_svm": loss_svm, "loss_bbox": loss_bbox}

    def mining_set(self, image: Tensor, proposals: Tensor, gt: Tensor, gt_labels: Tensor) -> dict[str, Tensor]:
        """The SVM examples of one image, with frozen features.

        The ground-truth boxes (the only positives) followed by ``svm_mining_pool`` proposals drawn at
        random (all of them when fewer), from which the hard negatives are picked by score.
        ``cls_iou [M, K]``: IoU with the closest instance of each class; ``is_pos [M, K]``.
        """
        k = self.cfg.num_classes
        pool = proposals[torch.randperm(len(proposals), device=proposals.device)[: self.cfg.svm_mining_pool]]
        boxes = torch.cat([gt.to(pool.dtype), pool])
        pool5, fc7 = self.frozen_features(image, boxes)
        onehot = F.one_hot(gt_labels - 1, k).to(boxes.dtype) if len(gt) else boxes.new_zeros(0, k)  # [G, K]
        iou = box_iou(boxes, gt) if len(gt) else boxes.new_zeros(len(boxes), 0)  # [M, G]
        cls_iou = (iou[:, :, None] * onehot[None]).amax(1) if len(gt) else boxes.new_zeros(len(boxes), k)
        is_pos = torch.zeros(len(boxes), k, dtype=torch.bool, device=boxes.device)
        is_pos[: len(gt)] = onehot.bool()
        match = match_gt(boxes, gt, gt_labels)
        return {"boxes": boxes, "pool5": pool5, "fc7": fc7, "cls_iou": cls_iou, "is_pos": is_pos, "match": match}

    def svm_loss(self, scores: Tensor, mined: list[dict[str, Tensor]]) -> Tensor:
        """Per-class hinge with hard negative mining + L2; ``scores [M, K]`` of the concatenated mining sets.

        For class c, per image: the positives are its ground-truth boxes of class c (weight
        ``svm_pos_weight``, 2 in the paper's liblinear call), the negatives the
        ``svm_hard_negatives`` highest-scoring regions with IoU < ``svm_neg_iou`` to every instance of
        c (the margin violators the paper's mining adds to its cache).  Each class's hinge is a
        weighted mean over its examples; the loss is the sum over the K classes (K independent binary
        SVMs) plus ``svm_l2 / 2 ||w||^2``.  A zero-initialised SVM scores 0 everywhere, so every hinge
        term is exactly 1, each class's mean is 1 and the loss starts at exactly K.
        """
        k, hard = self.cfg.num_classes, self.cfg.svm_hard_negatives
        total, weight = scores.new_zeros(k), scores.new_zeros(k)
        for m, s in zip(mined, scores.split([len(m["boxes"]) for m in mined]), strict=True):
            pos = m["is_pos"]
            neg = (m["cls_iou"] < self.cfg.svm_neg_iou) & ~pos
            # Hard negatives: the top-scoring negatives of each class (scores detached: a selection).
            ranked = s.detach().masked_fill(~neg, float("-inf"))
            top, idx = ranked.topk(min(hard, len(s)), dim=0)  # [h, K]
            chosen = torch.isfinite(top).to(s.dtype)
            neg_hinge = F.relu(1 + s.gather(0, idx)) * chosen
            pos_w = pos.to(s.dtype) * self.cfg.svm_pos_weight
            total = total + (F.relu(1 - s) * pos_w).sum(0) + neg_hinge.sum(0)
            weight = weight + pos_w.sum(0) + chosen.sum(0)
        seen = weight > 0
        hinge = (total[seen] / weight[seen]).sum()
        return hinge + 0.5 * self.cfg.svm_l2 * self.svm.weight.pow(2).sum()

    def bbox_loss(self, pool5: Tensor, boxes: Tensor, match: list[Tensor]) -> Tensor:
        """Ridge regression of R-CNN's offsets ``t = (dx, dy, dw, dh)`` from the matched ground-truth box.

        Pairs: regions with IoU >= ``bbox_iou`` (0.6) to a ground-truth box, regressed by that box's
        class's regressor; squared error summed over the four offsets and averaged over pairs, plus
        ``bbox_ridge ||W||^2`` (the paper's lambda = 1000 is on a sum over pairs).
        """
        match_all = torch.cat(match)  # [N, 6], see match_gt
        labels = match_all[:, 5].long()
        keep = (match_all[:, 4] >= self.cfg.bbox_iou) & (labels > 0)
        ridge = self.cfg.bbox_ridge * self.bbox_reg.weight.pow(2).sum()
        if not bool(keep.any()):
            return ridge + 0 * self.bbox_reg.bias.sum()
        target = encode_boxes(boxes[keep], match_all[keep, :4], UNNORMALISED)  # [N, 4]
        pred = self.bbox_reg(pool5[keep]).view(-1, self.cfg.num_classes, 4)
        pred = pred[torch.arange(len(pred), device=pred.device), labels[keep] - 1]
        return (pred - target).pow(2).sum(1).mean() + ridge

    # -- test ---------------------------------------------------------------------------------------

    @torch.no_grad()
    def detect(self, image: Tensor, proposals: Tensor) -> dict[str, Tensor]:
        """One image's detections: SVM scores, class-specific box regression, per-class greedy NMS."""
        cfg = self.cfg
        pool5, fc7 = self.frozen_features(image, proposals)
        scores = self.svm(self.scaled(fc7, self.fc7_norm, update=False))  # [P, K]
        deltas = self.bbox_reg(self.scaled(pool5, self.pool5_norm, update=False))  # [P, 4K]
        boxes = decode_boxes(proposals, deltas, UNNORMALISED).view(len(proposals), cfg.num_classes, 4)
        thresh = float("-inf") if cfg.score_thresh is None else cfg.score_thresh
        return select_detections(boxes, scores, tuple(image.shape[-2:]), score_thresh=thresh, nms_thresh=cfg.nms_iou,
                                 detections_per_img=cfg.detections_per_img)


def pair_match(boxes: Tensor, matched: Tensor, labels: Tensor) -> Tensor:
    """``match_gt``'s layout for sampled regions ``boxes [R, 4]`` with their matched boxes and labels
    (0 = background) -> ``[R, 6]``: the matched box, the IoU with it, the label."""
    iou = box_iou(boxes, matched).diagonal() if len(boxes) else boxes.new_zeros(0)
    return torch.cat([matched, iou[:, None], labels[:, None].to(boxes.dtype)], dim=1)


def match_gt(boxes: Tensor, gt: Tensor, gt_labels: Tensor) -> Tensor:
    """Each of ``boxes [N, 4]``'s closest ground-truth box -> ``[N, 6]``: its box (4), the IoU, its label.

    With no ground truth (G = 0) the box is the region itself, the IoU 0 and the label 0 (background).
    """
    if len(gt) == 0:
        return torch.cat([boxes, boxes.new_zeros(len(boxes), 2)], dim=1)
    iou, best = box_iou(boxes, gt.to(boxes.dtype)).max(dim=1)
    return torch.cat([gt[best].to(boxes.dtype), iou[:, None], gt_labels[best, None].to(boxes.dtype)], dim=1)
