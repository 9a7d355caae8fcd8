"""A detector that runs its backbone once per image and pools every proposal from the feature map.

The network shared by ``fast_rcnn`` (RoI max pooling) and ``spp_net`` (spatial pyramid pooling):

1. the image is scaled so its shorter side is ``min_size`` (Fast R-CNN's single-scale training
   and testing, sec. 5.1), normalised, and run once through a stride-16 convolutional backbone;
2. its selective-search proposals (``target["proposals"]``, image pixels; computed here from the
   image when absent) are scaled with it and pooled from the feature map by ``pool`` into one
   fixed-length vector each;
3. two fully connected layers (fc6, fc7: ReLU, dropout) feed a (K + 1)-way classifier and a
   per-class box regressor (4 (K + 1) outputs).

Training (Fast R-CNN sec. 2.3): ``rois_per_image`` RoIs per image, ``fg_fraction`` of them
foreground (IoU >= ``fg_iou`` with a ground-truth box), the rest background (IoU in ``bg_iou``),
ground-truth boxes added to the candidates; multitask loss ``L = L_cls + lambda [u >= 1] L_loc``
with cross-entropy (``loss_classifier``) and smooth L1 on the normalised targets of the true class
(``loss_box_reg``, summed over foreground RoIs and divided by all RoIs, lambda = 1).  Test:
softmax scores, per-class decoded boxes, per-class NMS (``bench.models.detection._region``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.engine.proposals import ProposalSettings, image_uint8, propose
from bench.models.detection._region import batch_images, postprocess, resize_images, sample_rois

# ImageNet statistics: the backbones are torchvision's, whose layers assume inputs on that scale.
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
STRIDE = 16
BACKBONES = ("vgg16", "alexnet", "resnet18", "resnet34", "resnet50")


def stride16_backbone(name: str) -> tuple[nn.Module, int]:
    """The convolutional trunk of ``name`` cut at stride 16, random init, and its output channels.

    ``vgg16``: conv1_1 ... conv5_3 (+ReLU), without pool5 (Fast R-CNN's VGG16, 512 channels);
    ``alexnet``: conv1 ... conv5 (+ReLU), without the last max-pool (torchvision's AlexNet, the
    5-conv, 256-channel layout ZF-5 also has; 256 channels); ``resnet18/34/50``: stem and stages
    conv2_x ... conv4_x, trainable BatchNorm (the C4 trunk of He et al.'s ResNet detectors;
    256/256/1024 channels).
    """
    from torchvision import models

    if name == "vgg16":
        return models.vgg16(weights=None).features[:30], 512  # index 30 is pool5
    if name == "alexnet":
        return models.alexnet(weights=None).features[:12], 256  # index 12 is the last max-pool
    if name in ("resnet18", "resnet34", "resnet50"):
        net = getattr(models, name)(weights=None)
        trunk = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3)
        return trunk, net.layer3[-1].conv1.in_channels
    raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")


class RegionHead(nn.Module):
    """fc6 -> fc7 -> (classifier ``[R, K + 1]``, per-class box regressor ``[R, 4 (K + 1)]``).

    Initialisation as Fast R-CNN (sec. 2.3 "Initializing"... and its reference code): classifier
    weights N(0, 0.01), box regressor N(0, 0.001), zero biases, so the classifier starts near the
    uniform distribution (loss ln(K + 1)) and the regressor near the proposals themselves.
    """

    def __init__(self, in_features: int, width: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_features, width)
        self.fc7 = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)
        self.cls_score = nn.Linear(width, num_classes + 1)
        self.bbox_pred = nn.Linear(width, 4 * (num_classes + 1))
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.dropout(F.relu(self.fc6(x.flatten(1))))
        x = self.dropout(F.relu(self.fc7(x)))
        return self.cls_score(x), self.bbox_pred(x)


class RoIMaxPool(nn.Module):
    """Fast R-CNN's RoI max pooling (sec. 2.1): each RoI projected onto the stride-``stride`` map
    (coordinates rounded) and max-pooled into ``size x size`` bins of about (h / size) x (w / size)
    cells (``torchvision.ops.roi_pool``); output ``[R, C * size * size]``."""

    def __init__(self, size: int, stride: int) -> None:
        super().__init__()
        self.size, self.stride = size, stride

    def forward(self, features: torch.Tensor, rois: torch.Tensor, batch_index: torch.Tensor) -> torch.Tensor:
        from torchvision.ops import roi_pool

        boxes = torch.cat([batch_index[:, None].to(rois.dtype), rois], dim=1)
        return roi_pool(features, boxes, self.size, 1.0 / self.stride).flatten(1)


class PooledRegionDetector(nn.Module):
    """Backbone once per image, every proposal pooled by ``pool``, fc6/fc7, classifier + regressor.

    ``pool(features [B, C, H, W], rois [R, 4] (resized-image pixels), batch_index [R]) -> [R, D]``.

    The torchvision detection contract: ``forward(images, targets)`` returns
    ``{"loss_classifier", "loss_box_reg"}`` in train mode and one
    ``{"boxes", "scores", "labels"}`` per image in eval mode.  ``targets[i]["proposals"]`` (``[P, 4]``
    xyxy, image pixels) are the regions; without them the model runs selective search itself
    (``proposal_settings``), which is what the detection task's cache holds.
    """

    uses_proposals = True

    def __init__(
        self, backbone: nn.Module, pool: nn.Module, head: RegionHead, *, proposal_settings: ProposalSettings,
        min_size: int, max_size: int | None, rois_per_image: int, fg_fraction: float, fg_iou: float,
        bg_iou: tuple[float, float], score_thresh: float, nms_thresh: float, detections_per_img: int,
    ) -> None:
        super().__init__()
        self.backbone, self.pool, self.head = backbone, pool, head
        self.proposal_settings = proposal_settings
        self.min_size, self.max_size = min_size, max_size
        self.sampling = {"batch_size": rois_per_image, "fg_fraction": fg_fraction, "fg_iou": fg_iou, "bg_iou": bg_iou}
        self.test = {"score_thresh": score_thresh, "nms_thresh": nms_thresh, "detections_per_img": detections_per_img}
        self.register_buffer("mean", torch.tensor(MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(3, 1, 1), persistent=False)

    def proposals_of(self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]] | None
                     ) -> list[torch.Tensor]:
        """Each image's proposals ``[P, 4]``: from its target, else selective search on the image."""
        if targets is not None and all("proposals" in t for t in targets):
            return [t["proposals"].to(images[0].device, torch.float32) for t in targets]
        return [torch.from_numpy(propose(image_uint8(im), self.proposal_settings)).to(im.device) for im in images]

    def forward(
        self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]] | None = None
    ) -> dict[str, torch.Tensor] | list[dict[str, torch.Tensor]]:
        if self.training and targets is None:
            raise ValueError("in training mode the detector needs targets (boxes, labels, proposals)")
        proposals = self.proposals_of(images, targets)
        sizes = [tuple(im.shape[-2:]) for im in images]
        resized, scales = resize_images([(im - self.mean) / self.std for im in images], self.min_size, self.max_size)
        features = self.backbone(batch_images(resized, STRIDE))
        if self.training:
            assert targets is not None
            return self._losses(features, [p * s for p, s in zip(proposals, scales, strict=True)], targets, scales)
        return self._detect(features, proposals, scales, sizes, [tuple(r.shape[-2:]) for r in resized])

    def _pooled(self, features: torch.Tensor, rois: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(class logits, box deltas)`` of the RoIs of every image (resized-image pixels)."""
        index = torch.cat([torch.full((len(r),), i, device=features.device) for i, r in enumerate(rois)])
        return self.head(self.pool(features, torch.cat(rois).to(features.dtype), index))

    def _losses(self, features: torch.Tensor, proposals: list[torch.Tensor],
                targets: list[dict[str, torch.Tensor]], scales: list[float]) -> dict[str, torch.Tensor]:
        from bench.models.detection._region import encode_boxes

        rois, labels, matched = [], [], []
        for props, tgt, s in zip(proposals, targets, scales, strict=True):
            r, lab, m = sample_rois(props, tgt["boxes"].float() * s, tgt["labels"], **self.sampling)
            rois.append(r)
            labels.append(lab)
            matched.append(m)
        logits, deltas = self._pooled(features, rois)
        rois_all, labels_all, matched_all = torch.cat(rois), torch.cat(labels), torch.cat(matched)
        loss_cls = F.cross_entropy(logits.float(), labels_all)
        fg = torch.nonzero(labels_all > 0).flatten()
        pred = deltas.float().reshape(len(labels_all), -1, 4)[fg, labels_all[fg]]
        target = encode_boxes(rois_all[fg].float(), matched_all[fg].float())
        # Smooth L1 with beta 1 (Fast R-CNN eq. 3), summed over foreground RoIs, averaged over all.
        loss_box = F.smooth_l1_loss(pred, target, beta=1.0, reduction="sum") / max(1, len(labels_all))
        return {"loss_classifier": loss_cls, "loss_box_reg": loss_box}

    def _detect(self, features: torch.Tensor, proposals: list[torch.Tensor], scales: list[float],
                sizes: list[tuple[int, int]], resized: list[tuple[int, int]]) -> list[dict[str, torch.Tensor]]:
        rois = [p * s for p, s in zip(proposals, scales, strict=True)]
        logits, deltas = self._pooled(features, rois)
        out = []
        for i, (lg, dl) in enumerate(zip(logits.split([len(r) for r in rois]), deltas.split([len(r) for r in rois]),
                                         strict=True)):
            det = postprocess(lg, dl, rois[i], resized[i], **self.test)
            h, w = sizes[i]
            boxes = det["boxes"] / scales[i]  # back to the image's own pixels
            det["boxes"] = torch.stack([boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h),
                                        boxes[:, 2].clamp(0, w), boxes[:, 3].clamp(0, h)], dim=1)
            out.append(det)
        return out


def pooled_detector(
    trunk: nn.Module, pool: nn.Module, head: RegionHead, *, image_size: int, max_size: int | None,
    proposals: ProposalSettings, rois_per_image: int, fg_fraction: float, fg_iou: float, bg_iou_low: float,
    bg_iou_high: float, score_thresh: float, nms_thresh: float, detections_per_img: int,
) -> PooledRegionDetector:
    """A :class:`PooledRegionDetector` from a builder's keyword arguments (fast_rcnn's and spp_net's).

    Images are scaled so the shorter side is ``image_size`` and the longer at most ``max_size``
    (default ``image_size`` x 1000/600, the papers' ratio); ``proposals``: the builder's selective-search
    settings (``bench.engine.proposals.ProposalSettings``).
    """
    from bench.engine.proposals import resolve_settings

    return PooledRegionDetector(
        trunk, pool, head, proposal_settings=resolve_settings(proposals), min_size=image_size,
        max_size=max_size if max_size is not None else round(image_size * 1000 / 600),
        rois_per_image=rois_per_image, fg_fraction=fg_fraction, fg_iou=fg_iou, bg_iou=(bg_iou_low, bg_iou_high),
        score_thresh=score_thresh, nms_thresh=nms_thresh, detections_per_img=detections_per_img,
    )
