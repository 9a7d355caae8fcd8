"""Architecture facts of PSPNet, DeepLab v1 (LargeFOV) and DeepLab v2 (ASPP-L), and the DeepLab CRF switch.

The contract tests check that each model trains and evaluates; these check, on tiny inputs, that each one is the
architecture its paper describes: PSPNet pools its stride-8 dilated features at 1, 2, 3 and 6 bins; DeepLab v1
keeps output stride 8 with stride-1 pool4/pool5, conv5 at dilation 2 and fc6 at dilation 12; DeepLab v2's ASPP
has rates 6, 12, 18, 24 and sums its branches; ``crf`` switches the dense-CRF ``postprocess`` on and off, and with
it on, prediction runs through ``dense_crf``.  The no-CRF variants (named YAMLs, not registered builders, so the
registry-parametrised contract tests do not reach them) get the contract checks here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.config.catalog import Catalog, effective_trial
from bench.engine import dense_crf
from bench.engine.data import MEAN, STD
from bench.models import build_model
from bench.tasks import task_impl
from tests.models import test_contract as contract

ROOT = Path(__file__).resolve().parents[2]
CATALOG = Catalog(ROOT / "configs")
TINY_RESNET = {"block": "basic", "layers": [1, 1, 1, 1], "width": 8}


def build(name: str, classes: int = 4, size: int = 64, **params: object) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, classes, size, params)


def conv_dilations(stage: nn.Module) -> set[tuple[int, int, int]]:
    """``{(kernel, stride, dilation)}`` of the 3x3 convs in ``stage``."""
    return {(m.kernel_size[0], m.stride[0], m.dilation[0]) for m in stage.modules()
            if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)}


def spatial_outputs(model: nn.Module, kind: type[nn.Module], x: torch.Tensor) -> list[tuple[int, ...]]:
    """The output shapes of every ``kind`` module during ``model(x)`` (forward hooks), in call order."""
    shapes: list[tuple[int, ...]] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape)))
             for m in model.modules() if isinstance(m, kind)]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return shapes


# --------------------------------------------------------------------------------------------------- PSPNet


def test_pspnet_backbone_is_dilated_to_output_stride_8() -> None:
    """Sec. 3.2: layer3 / layer4 keep stride 1 with dilation 2 / 4 in every block; features at 1/8 of the input."""
    with torch.device("meta"):
        ref = build_model("pspnet", 21, 473, {})
    for stage, dilation in ((ref.backbone.layer3, 2), (ref.backbone.layer4, 4)):
        assert conv_dilations(stage) == {(3, 1, dilation)}
    assert conv_dilations(ref.backbone.layer2) == {(3, 2, 1), (3, 1, 1)}  # the last stride of the network
    assert [m.out_channels for m in ref.backbone.stem.modules() if isinstance(m, nn.Conv2d)] == [64, 64, 128]
    assert ref.backbone.out_channels == (1024, 2048) and ref.output_stride == 8
    model = build("pspnet", **TINY_RESNET).eval()
    c3, c4 = model.backbone(torch.randn(2, 3, 64, 64))
    assert c3.shape[-2:] == c4.shape[-2:] == (8, 8)


def test_pspnet_pyramid_pools_1_2_3_6_bins_of_the_stride_8_features() -> None:
    """Fig. 3: adaptive average pools to 1x1, 2x2, 3x3, 6x6 of the 8x8 (64 px / 8) features, each reduced by a
    1x1 conv to C/4, upsampled to 8x8 and concatenated with the features (2C channels)."""
    model = build("pspnet", **TINY_RESNET).eval()
    c4 = model.backbone.out_channels[1]
    pools = spatial_outputs(model, nn.AdaptiveAvgPool2d, torch.randn(2, 3, 64, 64))
    assert pools == [(2, c4, b, b) for b in (1, 2, 3, 6)]
    reduce = [stage[1] for stage in model.ppm.stages]
    assert all(m.kernel_size == (1, 1) and m.out_channels == c4 // 4 for m in reduce)
    with torch.no_grad():
        feats = model.backbone(torch.randn(2, 3, 64, 64))[1]
        out = model.ppm(feats)
    assert out.shape == (2, 2 * c4, 8, 8) and torch.equal(out[:, :c4], feats)
    with torch.device("meta"):
        ref = build_model("pspnet", 21, 473, {})
    assert [s[1].out_channels for s in ref.ppm.stages] == [512] * 4 and ref.head[0][0].in_channels == 4096


def test_pspnet_auxiliary_head_on_layer3_in_training_only() -> None:
    """Sec. 3.3: the auxiliary classifier reads layer3 (res4b22); training returns {out, aux}, eval the logits."""
    model = build("pspnet", **TINY_RESNET)
    assert model.aux_weight == 0.4
    seen: list[torch.Tensor] = []
    model.aux.register_forward_hook(lambda _m, inp, _o: seen.append(inp[0]))
    layer3: list[torch.Tensor] = []
    model.backbone.layer3.register_forward_hook(lambda _m, _i, out: layer3.append(out))
    x = torch.randn(2, 3, 64, 64)
    out = model.train()(x)
    assert set(out) == {"out", "aux"} and out["out"].shape == out["aux"].shape == (2, 4, 64, 64)
    assert seen[0] is layer3[0]
    assert isinstance(model.eval()(x), torch.Tensor) and len(seen) == 1  # eval does not run the head
    assert isinstance(build("pspnet", aux=False, **TINY_RESNET).train()(x), torch.Tensor)


# ----------------------------------------------------------------------------------------------- DeepLab v1


@pytest.mark.parametrize("size", [64, 96])
def test_deeplab_v1_is_atrous_at_output_stride_8(size: int) -> None:
    """LargeFOV: pool1-3 stride 2, pool4/pool5 stride 1 (3x3, pad 1), conv5 dilation 2, fc6 3x3 dilation 12
    (1024), fc7 1x1 (1024): the features are 1/8 of the input."""
    model = build("deeplab_v1", width=0.125, fc_dim=64, batch_norm=True, crf=False).eval()
    pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]
    assert [(m.kernel_size, m.stride, m.padding) for m in pools] == [(3, 2, 1)] * 3 + [(3, 1, 1)] * 2
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [m.dilation[0] for m in convs] == [1] * 10 + [2] * 3 and all(m.stride == (1, 1) for m in convs)
    fc6, fc7 = (m for m in model.fc if isinstance(m, nn.Conv2d))
    assert (fc6.kernel_size, fc6.dilation, fc6.padding) == ((3, 3), (12, 12), (12, 12))
    assert fc7.kernel_size == (1, 1)
    with torch.no_grad():
        x = torch.randn(2, 3, size, size)
        feats = model.fc(model.features(x))
        assert feats.shape == (2, 64, size // 8, size // 8)
        assert model(x).shape == (2, 4, size, size)
    with torch.device("meta"):
        ref = build_model("deeplab_v1", 21, 321, {})
    assert [m.out_channels for m in ref.fc if isinstance(m, nn.Conv2d)] == [1024, 1024]
    assert [m.out_channels for m in ref.features if isinstance(m, nn.Conv2d)][-1] == 512


# ----------------------------------------------------------------------------------------------- DeepLab v2


def test_deeplab_v2_aspp_rates_and_stride_8_backbone() -> None:
    """Sec. 3.2 / Fig. 4 (ASPP-L): four 3x3 class-score convs at rates 6, 12, 18, 24 on ResNet-101's layer4,
    itself at output stride 8 (layer3 / layer4 dilated 2 / 4)."""
    with torch.device("meta"):
        ref = build_model("deeplab_v2", 21, 321, {})
    convs = list(ref.aspp.branches)
    assert [(m.kernel_size, m.dilation[0], m.padding[0]) for m in convs] == [((3, 3), r, r) for r in (6, 12, 18, 24)]
    assert all(m.in_channels == 2048 and m.out_channels == 21 for m in convs)
    assert conv_dilations(ref.backbone.layer3) == {(3, 1, 2)} and conv_dilations(ref.backbone.layer4) == {(3, 1, 4)}
    assert [len(getattr(ref.backbone, f"layer{i}")) for i in range(1, 5)] == [3, 4, 23, 3]  # ResNet-101
    assert ref.backbone.stem[0].kernel_size == (7, 7)  # He et al.'s stem (the MSRA ResNet-101 of DeepLab)
    model = build("deeplab_v2", crf=False, **TINY_RESNET).eval()
    assert model.backbone(torch.randn(1, 3, 64, 64))[1].shape[-2:] == (8, 8)


def test_deeplab_v2_aspp_sums_its_branches() -> None:
    """With all but one branch zeroed, ASPP's output is that branch's; the full output is the sum of the four."""
    model = build("deeplab_v2", crf=False, **TINY_RESNET).eval()
    aspp = model.aspp
    for conv in aspp.branches:  # the N(0, 0.01) init would make every branch nearly zero anyway
        nn.init.normal_(conv.weight)
        nn.init.normal_(conv.bias)
    x = torch.randn(2, aspp.branches[0].in_channels, 8, 8)
    with torch.no_grad():
        singles = [conv(x) for conv in aspp.branches]
        assert torch.allclose(aspp(x), sum(singles), atol=1e-5)
        saved = [(c.weight.clone(), c.bias.clone()) for c in aspp.branches]
        for keep in range(4):
            for i, conv in enumerate(aspp.branches):
                conv.weight.copy_(saved[i][0] if i == keep else torch.zeros_like(conv.weight))
                conv.bias.copy_(saved[i][1] if i == keep else torch.zeros_like(conv.bias))
            assert torch.allclose(aspp(x), singles[keep], atol=1e-6)
            # the rates differ: each branch alone gives a different map
            assert not torch.allclose(singles[keep], singles[(keep + 1) % 4], atol=1e-3)


def test_deeplab_v2_count_is_resnet101_body_plus_aspp_l() -> None:
    """No published count exists (see the registration); the count is ResNet-101 without its fc (torchvision's
    documented 44,549,160 less the 2048 x 1000 + 1000 of the fc) plus four 3x3 2048 -> 21 convs with bias."""
    with torch.device("meta"):
        model = build_model("deeplab_v2", 21, 321, {})
    aspp_l = 4 * (2048 * 9 * 21 + 21)
    assert sum(p.numel() for p in model.parameters()) == 44_549_160 - (2048 * 1000 + 1000) + aspp_l


# ------------------------------------------------------------------------------------------------------ CRF


@pytest.mark.parametrize(("name", "params"), [("deeplab_v1", {"width": 0.125, "fc_dim": 16}),
                                              ("deeplab_v2", TINY_RESNET)])
def test_crf_switches_postprocess(name: str, params: dict[str, object]) -> None:
    """``crf: true`` (the default) sets a dense-CRF ``postprocess`` with the YAML's settings; ``false`` none."""
    on = build(name, crf_params={"theta_alpha": 16.0, "iterations": 3}, **params)
    assert isinstance(on.postprocess, dense_crf.CrfPostprocessor)
    assert (on.postprocess.params.theta_alpha, on.postprocess.params.iterations) == (16.0, 3)
    assert not hasattr(build(name, crf=False, **params), "postprocess")
    with pytest.raises(ValueError, match="unknown crf_params key.*'theta_a'"):
        build(name, crf_params={"theta_a": 1.0}, **params)
    with pytest.raises(ValueError, match="crf_params.iterations"):
        build(name, crf_params={"iterations": 2.5}, **params)


def smoke_task(name: str) -> object:
    cfg = effective_trial(CATALOG.model(name), CATALOG.dataset("shapes"), CATALOG.profile("smoke"), seed=0)
    return task_impl(cfg.task)(cfg, ROOT / cfg.dataset.root)


@pytest.mark.parametrize("name", ["deeplab_v1", "deeplab_v2"])
def test_prediction_runs_through_dense_crf(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the CRF, ``SegmentationTask.predict`` labels are the argmax of ``dense_crf``'s marginals, computed per
    image from the softmax and the RGB image; the ``_nocrf`` variant's are the plain argmax, without it."""
    calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    original = dense_crf.dense_crf

    def spy(probs: torch.Tensor, image: torch.Tensor, params: dense_crf.CrfParams | None = None) -> torch.Tensor:
        q = original(probs, image, params)
        calls.append((probs, image, q))
        return q

    monkeypatch.setattr(dense_crf, "dense_crf", spy)
    x = torch.randn(2, 3, 64, 64)
    task = smoke_task(name)
    model = task.build_model().eval()
    with torch.no_grad():
        logits = model(x)
        labels = task.predict(model, (x, None), torch.device("cpu"))
    assert len(calls) == 2
    assert torch.equal(labels, torch.stack([q.argmax(0) for _, _, q in calls]))
    for i, (probs, image, _) in enumerate(calls):
        assert torch.allclose(probs, F.softmax(logits[i], 0), atol=1e-6)
        assert torch.allclose(image, x[i] * STD + MEAN, atol=1e-6)
    calls.clear()
    plain = smoke_task(f"{name}_nocrf")
    assert plain.cfg.builder == name and plain.cfg.params["crf"] is False
    twin = plain.build_model().eval()
    twin.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(plain.predict(twin, (x, None), torch.device("cpu")), logits.argmax(1))
    assert not calls


def test_crf_relabels_an_isolated_pixel() -> None:
    """The post-processor does what a CRF is for: on a flat image, one pixel that mildly prefers another class
    than all its neighbours takes their label (plain argmax keeps it)."""
    model = build("deeplab_v1", width=0.125, fc_dim=16, crf_params={"theta_alpha": 8.0})
    logits = torch.zeros(1, 4, 16, 16)
    logits[0, 1] = 2.0
    logits[0, 2, 8, 8] = 2.5
    image = torch.full((1, 3, 16, 16), 0.5)
    assert logits.argmax(1)[0, 8, 8] == 2
    labels = model.postprocess(logits, image)
    assert labels.shape == (1, 16, 16) and bool((labels == 1).all())


# ------------------------------------------------------------------------------ the no-CRF variants' contract


@pytest.mark.parametrize("name", ["deeplab_v1_nocrf", "deeplab_v2_nocrf"])
def test_nocrf_variants_meet_the_contract(name: str, project: Path) -> None:
    """The contract checks (tests/models/test_contract.py) on the named variants, which that module's
    registry-parametrised fixture does not reach: shapes, metrics, checkpoint round trip and the initial loss.
    The overfitting check is the builder's (the train-mode network is the same; ``crf`` acts only in prediction)."""
    subject = contract.setup(name, project)
    assert subject.task.cfg.model == name and not hasattr(subject.model, "postprocess")
    contract.test_forward_shape(subject)
    contract.test_evaluates_to_task_metrics(subject, project / "unused")
    contract.test_checkpoint_round_trip(subject)
    contract.test_initial_loss_near_chance(subject)
