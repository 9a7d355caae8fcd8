"""The parts two-stage detectors share: ResNet trunks, the Region Proposal Network, single-map RoI
pooling and the assembly into torchvision's ``GeneralizedRCNN`` (transform -> backbone -> RPN -> RoI heads).

One place builds the RPN and its anchors (Ren et al. 2015, arXiv:1506.01497, Sec. 3.1): ``faster_rcnn``
and ``r_fcn`` both call :func:`region_proposal_network`.  Imported by the builders only (torch).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from functools import partial

import torch
from torch import Tensor, nn
from torchvision.models import resnet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import misc, roi_align, roi_pool

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")
NORMS = ("bn", "frozen_bn", "gn")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
C4_STRIDE = 16  # res4 (conv4_x) output stride: the paper's single feature map


def resnet_trunk(model: str, backbone: str, norm: str) -> resnet.ResNet:
    """A randomly initialised torchvision ResNet with the chosen normalisation.

    ``norm``: ``bn`` (trainable BatchNorm, needed from random init), ``gn`` (32 groups) or ``frozen_bn``
    (torchvision's default for detection, only sensible with pretrained weights).
    """
    if backbone not in BACKBONES:
        raise ValueError(f"{model}: unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    norms = {"bn": nn.BatchNorm2d, "frozen_bn": misc.FrozenBatchNorm2d, "gn": partial(nn.GroupNorm, 32)}
    if norm not in norms:
        raise ValueError(f"{model}: unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
    return getattr(resnet, backbone)(weights=None, norm_layer=norms[norm])


def stage_channels(trunk: resnet.ResNet) -> list[int]:
    """Output widths of res2..res5 (64/128/256/512 x the block expansion)."""
    return [trunk.inplanes // 8 * 2**i for i in range(4)]


class C4Body(nn.Module):
    """conv1 .. res4 of a ResNet: one stride-16 map ``{"res4": [B, C4, H/16, W/16]}``."""

    def __init__(self, trunk: resnet.ResNet) -> None:
        super().__init__()
        self.stem = nn.Sequential(trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool)
        self.layer1, self.layer2, self.layer3 = trunk.layer1, trunk.layer2, trunk.layer3
        self.out_channels = stage_channels(trunk)[2]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """x: [B, 3, H, W] normalised -> {"res4": [B, C4, H/16, W/16]}."""
        return OrderedDict(res4=self.layer3(self.layer2(self.layer1(self.stem(x)))))


def dilate_stage(stage: nn.Sequential) -> nn.Sequential:
    """Keep a ResNet stage at its input stride (the "hole algorithm", R-FCN Sec. 2 / DeepLab):
    the stride-2 convs (the first block's 3x3 or 1x1, and its shortcut) become stride 1, and every 3x3
    conv of the stage is dilated by 2 (padding 2), so its receptive field matches the strided original.
    Parameter count unchanged.  Works for Basic and Bottleneck blocks."""
    for m in stage.modules():
        if isinstance(m, nn.Conv2d):
            if m.stride == (2, 2):
                m.stride = (1, 1)
            if m.kernel_size == (3, 3):
                m.dilation, m.padding = (2, 2), (2, 2)
    return stage


class RPNHead(nn.Module):
    """The RPN's sliding window (Ren et al. Sec. 3.1): a 3x3 conv to ``mid_channels`` ("256-d for ZF,
    512-d for VGG") + ReLU, then sibling 1x1 convs: ``A`` objectness logits (torchvision's sigmoid form
    of the paper's 2A-way softmax) and ``4A`` box deltas per location.  Weights N(0, 0.01), biases 0
    (the paper's init; objectness then starts at BCE = ln 2)."""

    def __init__(self, in_channels: int, mid_channels: int, num_anchors: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, mid_channels, 3, padding=1)
        self.cls_logits = nn.Conv2d(mid_channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(mid_channels, 4 * num_anchors, 1)
        for layer in (self.conv, self.cls_logits, self.bbox_pred):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, x: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """x: per level [B, C, h, w] -> ([B, A, h, w] logits, [B, 4A, h, w] deltas) per level."""
        hidden = [torch.relu(self.conv(f)) for f in x]
        return [self.cls_logits(h) for h in hidden], [self.bbox_pred(h) for h in hidden]


class SingleMapRPN(RegionProposalNetwork):
    """An RPN that reads one named map of the backbone's output (``feature``) and ignores the others:
    R-FCN's backbone also returns res5, which the RPN must not take for a second pyramid level."""

    def __init__(self, feature: str, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.feature = feature

    def forward(self, images: ImageList, features: dict[str, Tensor],
                targets: list[dict[str, Tensor]] | None = None) -> tuple[list[Tensor], dict[str, Tensor]]:
        """-> (proposals per image [P_i, 4] xyxy, losses) from ``features[self.feature]`` alone."""
        return super().forward(images, {self.feature: features[self.feature]}, targets)


def region_proposal_network(
    in_channels: int,
    mid_channels: int,
    anchor_sizes: Sequence[int] | Sequence[Sequence[int]],
    aspect_ratios: Sequence[float],
    top_n: dict[str, int],
    feature: str | None = None,
) -> RegionProposalNetwork:
    """The RPN as Ren et al. train it: positives IoU > 0.7 (and each GT's best anchor, torchvision's
    ``allow_low_quality_matches``), negatives < 0.3, 256 anchors per image at 1:1, NMS 0.7 on proposals.

    anchor_sizes: ``(s1, s2, ...)`` for one map (every size x every ratio at each location: 3 x 3 = 9
    in the paper), or one tuple per pyramid level (FPN).  ``top_n``: pre/post-NMS proposal counts,
    keys ``pre_train, post_train, pre_test, post_test``.  ``feature``: read only that map (see
    :class:`SingleMapRPN`); ``None`` reads every map the backbone returns.
    """
    levels = [tuple(s) for s in anchor_sizes] if isinstance(anchor_sizes[0], Sequence) else [tuple(anchor_sizes)]
    anchors = AnchorGenerator(sizes=tuple(levels), aspect_ratios=(tuple(aspect_ratios),) * len(levels))
    head = RPNHead(in_channels, mid_channels, anchors.num_anchors_per_location()[0])
    args = (anchors, head, 0.7, 0.3, 256, 0.5,
            {"training": top_n["pre_train"], "testing": top_n["pre_test"]},
            {"training": top_n["post_train"], "testing": top_n["post_test"]}, 0.7)
    return SingleMapRPN(feature, *args) if feature else RegionProposalNetwork(*args)


class SingleMapRoIPool(nn.Module):
    """RoI pooling of proposals on one stride-``stride`` map: ``pool`` is Fast R-CNN's RoI max pooling
    (bins quantised to the map's cells), ``align`` is RoIAlign (bilinear, ``sampling_ratio`` points per
    bin side).  Called as torchvision's ``RoIHeads`` calls its ``box_roi_pool``."""

    def __init__(self, feature: str, output_size: int, stride: int, op: str = "pool", sampling_ratio: int = 2) -> None:
        super().__init__()
        if op not in ("pool", "align"):
            raise ValueError(f"RoI op must be 'pool' (Fast R-CNN) or 'align' (RoIAlign), got {op!r}")
        self.feature, self.output_size, self.scale = feature, output_size, 1.0 / stride
        self.op, self.sampling_ratio = op, sampling_ratio

    def forward(self, features: dict[str, Tensor], proposals: list[Tensor], image_shapes: list) -> Tensor:
        """proposals: per image [P_i, 4] xyxy (image px) -> [sum P_i, C, output_size, output_size]."""
        x = features[self.feature]
        if self.op == "pool":
            return roi_pool(x, proposals, self.output_size, self.scale)
        return roi_align(x, proposals, self.output_size, self.scale, self.sampling_ratio)


def roi_heads(
    box_roi_pool: nn.Module,
    box_head: nn.Module,
    box_predictor: nn.Module,
    batch_size_per_image: int,
    score_thresh: float,
    detections_per_img: int,
) -> RoIHeads:
    """Fast R-CNN's detection stage (Girshick 2015): RoIs with IoU >= 0.5 to a GT are foreground (25% of
    the sampled ``batch_size_per_image``), [0, 0.5) background; (K+1)-way softmax cross-entropy plus smooth
    L1 on the GT class's box deltas; per-class NMS 0.5 at test."""
    return RoIHeads(box_roi_pool, box_head, box_predictor, 0.5, 0.5, batch_size_per_image, 0.25, None,
                    score_thresh, 0.5, detections_per_img)


def two_stage_detector(backbone: nn.Module, rpn: RegionProposalNetwork, heads: RoIHeads,
                       image_size: int) -> GeneralizedRCNN:
    """torchvision's ``GeneralizedRCNN``: normalise (ImageNet statistics), keep images at ``image_size``
    (torchvision would otherwise resize them to 800 px) padded to a multiple of 32, backbone, RPN, heads."""
    transform = GeneralizedRCNNTransform(image_size, image_size, list(IMAGENET_MEAN), list(IMAGENET_STD))
    return GeneralizedRCNN(backbone, rpn, heads, transform)


def init_normal(*layers: nn.Module, std: float = 0.01) -> None:
    """N(0, std) weights and zero biases for new prediction layers (logits start near 0)."""
    for layer in layers:
        nn.init.normal_(layer.weight, std=std)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


def box_predictor(in_features: int, num_classes: int) -> nn.Module:
    """The Fast R-CNN head's (K+1)-way classifier and per-class box layer (``num_classes`` includes the
    background), drawn as the Faster R-CNN paper's code draws new layers: N(0, 0.01), 0.001 for the box
    deltas, so the classifier starts near ln(K+1) whatever the scale of the features."""
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

    predictor = FastRCNNPredictor(in_features, num_classes)
    init_normal(predictor.cls_score, std=0.01)
    init_normal(predictor.bbox_pred, std=0.001)
    return predictor


def kaiming(*layers: nn.Conv2d) -> None:
    """He init (fan-out, ReLU) for new hidden convs, zero biases."""
    for layer in layers:
        nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)



class Res5Head(nn.Module):
    """He et al. 2016's per-RoI head for Faster R-CNN with a ResNet ("C4"): the RoI-pooled res4 features go
    through the whole res5 stage (its first block strides 2: 14x14 -> 7x7), then global average pooling,
    "playing the roles of VGG-16's fc layers"."""

    def __init__(self, res5: nn.Sequential) -> None:
        super().__init__()
        self.res5 = res5

    def forward(self, x: Tensor) -> Tensor:
        """x: [N, C4, s, s] pooled RoIs -> [N, C5] (C5 = 2 x C4)."""
        return self.res5(x).mean(dim=(2, 3))
