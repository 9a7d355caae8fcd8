"""RetinaNet's parts (Lin et al. 2017, arXiv:1708.02002): torchvision's ``RetinaNet`` with its heads' losses
taken from bench's losses module, so the focal loss's α and γ and the smooth-L1 β are real knobs
(torchvision's classification head hard-codes ``sigmoid_focal_loss``'s defaults and its regression head
uses L1).  Imported by the builder only (torch)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.retinanet import (
    RetinaNet,
    RetinaNetClassificationHead,
    RetinaNetHead,
    RetinaNetRegressionHead,
)
from torchvision.models.resnet import ResNet
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from bench.models.detection._losses import focal_loss, smooth_l1_loss

HEAD_NORMS = ("none", "gn")


class FocalClassificationHead(RetinaNetClassificationHead):
    """The classification subnet (4 x [3x3 conv 256, ReLU], 3x3 conv to ``A K`` sigmoid logits, the last bias
    ``-log((1 - π) / π)``) with the α-balanced focal loss at the configured ``alpha``, ``gamma``.  Output ``c``
    is label ``c + 1`` (no background output: each class is its own binary classifier)."""

    def __init__(self, in_channels: int, num_anchors: int, num_classes: int, prior_probability: float,
                 alpha: float, gamma: float, norm_layer: Callable[[int], nn.Module] | None = None) -> None:
        super().__init__(in_channels, num_anchors, num_classes, prior_probability, norm_layer=norm_layer)
        self.alpha, self.gamma = alpha, gamma

    def compute_loss(self, targets: list[dict[str, Tensor]], head_outputs: dict[str, Tensor],
                     matched_idxs: list[Tensor]) -> Tensor:
        """Per image: the focal loss summed over every non-ignored anchor and class, divided by the image's
        positive anchors (at least 1); then the mean over images.  cls_logits: ``[B, A, C]``; matched_idxs:
        per image ``[A]`` GT index, -1 (background) or -2 (ignored, IoU in [0.4, 0.5))."""
        losses = []
        for t, logits, match in zip(targets, head_outputs["cls_logits"], matched_idxs, strict=True):
            fg = match >= 0
            target = torch.zeros_like(logits, dtype=torch.float32)
            target[fg, t["labels"][match[fg]] - 1] = 1.0  # labels 1..K -> outputs 0..K-1
            valid = match != self.BETWEEN_THRESHOLDS
            loss = focal_loss(logits[valid].float(), target[valid], alpha=self.alpha, gamma=self.gamma)
            losses.append(loss / max(1, int(fg.sum())))
        return torch.stack(losses).sum() / len(targets)


class SmoothL1RegressionHead(RetinaNetRegressionHead):
    """The box subnet (4 x [3x3 conv, ReLU], 3x3 conv to ``4 A`` offsets) with the paper's smooth L1
    (``beta``; Detectron's 0.11) on the positives' encoded offsets."""

    def __init__(self, in_channels: int, num_anchors: int, beta: float,
                 norm_layer: Callable[[int], nn.Module] | None = None) -> None:
        super().__init__(in_channels, num_anchors, norm_layer=norm_layer)
        self.beta = beta

    def compute_loss(self, targets: list[dict[str, Tensor]], head_outputs: dict[str, Tensor],
                     anchors: list[Tensor], matched_idxs: list[Tensor]) -> Tensor:
        """Per image: sum over positives of smooth L1 (``[P, 4]`` offsets) / max(1, P); mean over images."""
        losses = []
        for t, deltas, anc, match in zip(targets, head_outputs["bbox_regression"], anchors, matched_idxs,
                                         strict=True):
            fg = torch.where(match >= 0)[0]
            encoded = self.box_coder.encode_single(t["boxes"][match[fg]], anc[fg])
            losses.append(smooth_l1_loss(deltas[fg].float(), encoded.float(), beta=self.beta) / max(1, fg.numel()))
        return torch.stack(losses).sum() / max(1, len(targets))


def head_group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm over ``channels`` with torchvision's 32 groups at its 256-channel head, and the same 8 channels
    per group in narrower heads (32 channels: 4 groups).  Why not 32 groups everywhere: at 64 px the P7 map is
    1x1, and a group of one channel there holds one value, which GroupNorm maps to its bias whatever the input
    (torch also refuses it at batch 1)."""
    return nn.GroupNorm(max(1, min(32, channels // 8)), channels)


class FocalHead(RetinaNetHead):
    """The two subnets, shared by every pyramid level.  ``head_norm``: ``none`` (the paper: plain convs drawn
    N(0, 0.01)) or ``gn`` (GroupNorm after each hidden conv, see ``head_group_norm``: torchvision's
    ``retinanet_resnet50_fpn_v2``; from random init the plain subnets shrink their input ~5x per conv, so
    the classifier takes ~30 steps to leave the prior)."""

    def __init__(self, in_channels: int, num_anchors: int, num_classes: int, *, prior_probability: float,
                 alpha: float, gamma: float, beta: float, head_norm: str = "none") -> None:
        nn.Module.__init__(self)  # RetinaNetHead's own __init__ would build the stock heads
        if head_norm not in HEAD_NORMS:
            raise ValueError(f"retinanet: unknown head_norm {head_norm!r}; choose one of {', '.join(HEAD_NORMS)}")
        norm = head_group_norm if head_norm == "gn" else None
        self.classification_head = FocalClassificationHead(in_channels, num_anchors, num_classes, prior_probability,
                                                           alpha, gamma, norm)
        self.regression_head = SmoothL1RegressionHead(in_channels, num_anchors, beta, norm)


class FocalRetinaNet(RetinaNet):
    """torchvision's ``RetinaNet`` whose train-mode losses are named ``loss_focal`` and ``loss_retina_box``."""

    def compute_loss(self, targets: list[dict[str, Tensor]], head_outputs: dict[str, Tensor],
                     anchors: list[Tensor]) -> dict[str, Tensor]:
        """-> {loss_focal, loss_retina_box}: the matching (torchvision's ``Matcher``) and both head losses."""
        losses = super().compute_loss(targets, head_outputs, anchors)
        return {"loss_focal": losses["classification"], "loss_retina_box": losses["bbox_regression"]}

    def postprocess_detections(self, head_outputs: dict[str, list[Tensor]], anchors: list[list[Tensor]],
                               image_shapes: list[tuple[int, int]]) -> list[dict[str, Tensor]]:
        """torchvision's decoding (top-k per level above the score threshold, per-class NMS), labels shifted
        from the outputs 0..K-1 to 1..K."""
        detections = super().postprocess_detections(head_outputs, anchors, image_shapes)
        for det in detections:
            det["labels"] = det["labels"] + 1
        return detections


def fpn_p3_p7(trunk: ResNet, channels: int) -> nn.Module:
    """ResNet-FPN on C3-C5 with P6, P7 by stride-2 3x3 convs (torchvision's v1: P6 from P5, P7 from ReLU(P6)):
    ``OrderedDict`` of 5 maps ``[B, channels, H/2^k, W/2^k]``, k = 3..7.  Every layer trainable (random init)."""
    from bench.models.detection._rpn import stage_channels

    return BackboneWithFPN(trunk, return_layers={"layer2": "0", "layer3": "1", "layer4": "2"},
                           in_channels_list=stage_channels(trunk)[1:], out_channels=channels,
                           extra_blocks=LastLevelP6P7(channels, channels))


def anchors(base_sizes: Sequence[float], scales: Sequence[float], ratios: Sequence[float]) -> AnchorGenerator:
    """On level ``l`` (P3..P7) anchors of side ``base_sizes[l] x s`` for every ``s`` in ``scales``, each at every
    ratio (h/w) in ``ratios``: ``len(scales) x len(ratios)`` per location (the paper's 3 x 3 = 9)."""
    sizes = tuple(tuple(b * s for s in scales) for b in base_sizes)
    return AnchorGenerator(sizes, (tuple(ratios),) * len(sizes))
