"""DeepLab v1 (LargeFOV) and DeepLab v2 (ResNet-101 + ASPP-L), written here (``_deeplab_v1_v2.py``), each with
the fully connected CRF of both papers as post-processing (``model.postprocess``, ``bench.engine.dense_crf``).

``crf: true`` (the default, as the papers evaluate) sets ``model.postprocess`` to a ``CrfPostprocessor``:
prediction is then softmax -> dense CRF (mean-field) per image -> argmax.  ``crf: false`` leaves no
``postprocess`` (plain argmax): the named variants ``deeplab_v1_nocrf`` / ``deeplab_v2_nocrf`` put both on the
leaderboard.  ``crf_params`` overrides fields of ``bench.engine.dense_crf.CrfParams`` (weights, bandwidths in
pixels and 0..255 colour, iterations); it is checked either way but only used with ``crf: true`` (so a
no-CRF variant can include its CRF sibling's YAML unchanged).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn

# DeepLab-CRF-LargeFOV's CRF on PASCAL VOC (v1 paper Sec. 4.1 / its released settings): bi_w 4, bi_xy_std 121,
# bi_rgb_std 5, pos_w 3, pos_xy_std 3, 10 mean-field iterations (CrfParams' defaults).
V1_CRF: dict[str, Any] = {}
# DeepLab v2 (ResNet-101) on VOC: the paper fixes w2 = 3, σγ = 3 and cross-validates w1, σα, σβ (Sec. 4.1) without
# printing the result; these are the released values its re-implementations use (e.g. kazuto1011/deeplab-pytorch:
# bi_w 4, bi_xy_std 67, bi_rgb_std 3, pos_w 3, pos_xy_std 1).
V2_CRF: dict[str, Any] = {"w_app": 4.0, "theta_alpha": 67.0, "theta_beta": 3.0, "w_smooth": 3.0, "theta_gamma": 1.0}


def crf_settings(name: str, defaults: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> Any:
    """``CrfParams`` from the model's ``defaults`` and the YAML's ``crf_params`` (unknown keys and bad types raise
    a ``ValueError`` that names them)."""
    from dataclasses import fields

    from pydantic import TypeAdapter, ValidationError

    from bench.engine.dense_crf import CrfParams

    valid = [f.name for f in fields(CrfParams)]
    unknown = sorted(set(overrides or {}) - set(valid))
    if unknown:
        raise ValueError(f"{name}: unknown crf_params key(s) {unknown}; valid keys: {', '.join(valid)}")
    try:
        return TypeAdapter(CrfParams).validate_python({**defaults, **(overrides or {})})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"{name}: crf_params.{first['loc'][0]}: {first['msg']}") from None


def attach_crf(model: nn.Module, name: str, crf: bool, defaults: Mapping[str, Any],
               crf_params: Mapping[str, Any] | None) -> nn.Module:
    """``model`` with ``postprocess`` = the dense CRF where ``crf`` (the engine's prediction hook), else without."""
    settings = crf_settings(name, defaults, crf_params)
    if crf:
        from bench.engine.dense_crf import CrfPostprocessor

        model.postprocess = CrfPostprocessor(settings)
    return model


@register_model(
    "deeplab_v1",
    task="semantic_segmentation",
    source="bench",
    paper="Chen et al. 2015, Semantic Image Segmentation with Deep Convolutional Nets and Fully Connected CRFs "
          "(arXiv:1412.7062), Sec. 3-4, Table 2 (DeepLab-CRF-LargeFOV)",
    description="DeepLab-LargeFOV: VGG16, pool4/pool5 at stride 1, conv5 dilation 2, fc6 3x3 dilation 12 (1024), "
                "fc7 1x1 1024, fc8; output stride 8, bilinear up; dense CRF post-processing (crf: true)",
    # Counted here at 21 classes: VGG16's convs 14.71M + fc6 4.72M + fc7 1.05M + fc8 21.5K = 20.50M.
    published_params=20.5e6,
    published_ref="Chen et al. 2015, Table 2: DeepLab-CRF-LargeFOV, 20.5M parameters (PASCAL VOC, 21 classes)",
    ref_num_classes=21,
    ref_image_size=321,
)
def build_deeplab_v1(num_classes: int, image_size: int, width: float = 1.0, fc_dim: int = 1024,
                     batch_norm: bool = False, dropout: float = 0.5, crf: bool = True,
                     crf_params: dict[str, Any] | None = None) -> nn.Module:
    """``[B, 3, S, S] -> [B, num_classes, S, S]`` logits (``_deeplab_v1_v2.DeepLabV1``), S >= 8.

    ``width`` scales the VGG convs and ``fc_dim`` the fc6/fc7 channels (small profiles); ``batch_norm`` adds BN
    after each VGG conv (not in the paper, which fine-tunes ImageNet VGG16: it makes random-init training
    possible at small batch).
    """
    from bench.models.segmentation._deeplab_v1_v2 import DeepLabV1

    if image_size < 8:
        raise ValueError(f"deeplab_v1: image_size must be >= 8 (output stride 8), got {image_size}")
    if width <= 0 or fc_dim < 1 or not 0 <= dropout < 1:
        raise ValueError(f"deeplab_v1: width > 0, fc_dim >= 1 and dropout in [0, 1), got {width}, {fc_dim}, "
                         f"{dropout}")
    model = DeepLabV1(num_classes, width=width, fc_dim=fc_dim, batch_norm=batch_norm, dropout=dropout)
    return attach_crf(model, "deeplab_v1", crf, V1_CRF, crf_params)


@register_model(
    "deeplab_v2",
    task="semantic_segmentation",
    source="bench",
    paper="Chen et al. 2017, DeepLab: Semantic Image Segmentation with Deep Convolutional Nets, Atrous "
          "Convolution, and Fully Connected CRFs (arXiv:1606.00915), Sec. 3.1-3.3, Fig. 4, Sec. 4",
    description="ResNet-101 at output stride 8 (layer3/layer4 dilated 2/4), ASPP-L (3x3 class-score convs at rates "
                "6/12/18/24, summed), bilinear up; dense CRF post-processing (crf: true)",
    # Counted here at 21 classes: ResNet-101 without its fc, 42.50M (torchvision's resnet101 is 44,549,160
    # with the 2,049,000 of its fc), plus ASPP-L 4 x (2048 x 9 x 21 + 21) = 1.55M: 44.05M
    # (tests/models/test_pspnet_deeplab.py checks that sum).
    published_params=None,
    published_ref="none published: the DeepLab v2 paper gives no parameter count for its ResNet-101 model "
                  "(only the VGG-16 LargeFOV has one, 20.5M, v1 Table 2); third-party tables quote about 44M, which we "
                  "could not check in a stored source",
    ref_num_classes=21,
    ref_image_size=321,
)
def build_deeplab_v2(num_classes: int, image_size: int, block: Literal["bottleneck", "basic"] = "bottleneck",
                     layers: list[int] | None = None, width: int = 64, rates: list[int] | None = None,
                     crf: bool = True, crf_params: dict[str, Any] | None = None) -> nn.Module:
    """``[B, 3, S, S] -> [B, num_classes, S, S]`` logits (``_deeplab_v1_v2.DeepLabV2``), S >= 8.

    ``layers``: blocks per stage (default ``[3, 4, 23, 3]``, ResNet-101); ``width``: the first stage's channels
    (64); ``rates``: the ASPP-L rates (default ``[6, 12, 18, 24]``; ASPP-S is ``[2, 4, 8, 12]``).
    """
    from bench.models.segmentation._deeplab_v1_v2 import ASPP_L_RATES, DeepLabV2

    layers = [3, 4, 23, 3] if layers is None else layers
    rates = list(ASPP_L_RATES) if rates is None else rates
    if image_size < 8:
        raise ValueError(f"deeplab_v2: image_size must be >= 8 (output stride 8), got {image_size}")
    if not rates or min(rates) < 1:
        raise ValueError(f"deeplab_v2: rates must be positive dilation rates, got {rates}")
    model = DeepLabV2(num_classes, block, layers, width, rates)
    return attach_crf(model, "deeplab_v2", crf, V2_CRF, crf_params)
