"""Architecture facts of the Inception, Xception, MobileNet and EfficientNet models (zoo slice b).

Shape-only checks build on the ``meta`` device (no memory, no init cost); checks that need
numbers run tiny real inputs.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.engine.classification import classification_loss
from bench.models import MODELS, build_model

ZOO_B = [n for n in MODELS.names() if n.startswith(("inception", "xception", "mobilenet", "efficientnet"))]


def meta_model(name: str, image_size: int | None = None, num_classes: int = 10, **params: object) -> nn.Module:
    size = image_size or MODELS.get(name).meta.ref_image_size
    with torch.device("meta"):
        return build_model(name, num_classes, size, params)


def test_slice_is_registered() -> None:
    expected = {"inception_v1", "inception_v3", "xception", "mobilenet_v1", "mobilenet_v2",
                *(f"efficientnet_b{b}" for b in range(8))}
    assert set(ZOO_B) == expected


@pytest.mark.parametrize("name", ZOO_B)
def test_head_and_stages_cover_the_network(name: str) -> None:
    """Every parameter sits in the head, one backbone stage, or a train-only auxiliary head."""
    model = meta_model(name)
    spec = MODELS.get(name).meta
    parts = [model.bench_head, *model.bench_stages, *spec.train_only_modules]
    for path in parts:
        assert any(True for _ in model.get_submodule(path).parameters()), path
    for key, _ in model.named_parameters():
        owners = [p for p in parts if key.startswith(p + ".")]
        assert len(owners) == 1, (key, owners)
    assert isinstance(model.get_submodule(model.bench_head), nn.Linear)


def test_googlenet_aux_outputs_in_train_logits_in_eval() -> None:
    torch.manual_seed(0)
    model = build_model("inception_v1", 3, 64, {})
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([0, 2])
    out = model.train()(x)
    assert isinstance(out, tuple) and len(out) == 3  # (logits, aux2, aux1)
    assert all(o.shape == (2, 3) for o in out)
    expected = F.cross_entropy(out[0], y) + 0.3 * (F.cross_entropy(out[1], y) + F.cross_entropy(out[2], y))
    assert model.aux_loss_weight == 0.3
    assert torch.allclose(classification_loss(model, out, y), expected)
    with torch.no_grad():
        logits = model.eval()(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 3)


def test_googlenet_has_the_papers_5x5_branches() -> None:
    """torchvision uses 3x3 in the '5x5' branch (pytorch/vision#906); the paper's Table 1 has 5x5."""
    model = meta_model("inception_v1")
    modules = [m for n, m in model.named_children() if n.startswith("inception")]
    assert len(modules) == 9
    for m in modules:
        assert m.branch3[1].conv.kernel_size == (5, 5)
        assert m.branch3[0].conv.kernel_size == (1, 1)  # the 1x1 reduction


@pytest.mark.parametrize("size", [15, 32, 62, 63, 100])
def test_googlenet_4a_side_matches_the_network(size: int) -> None:
    from bench.models.classification._inception import googlenet_4a_side

    model = meta_model("inception_v1", 64, aux_logits=False).eval()
    seen: list[int] = []
    model.inception4a.register_forward_hook(lambda m, i, o: seen.append(o.shape[-1]))
    model(torch.empty(1, 3, size, size, device="meta"))
    assert seen == [googlenet_4a_side(size)]


def test_googlenet_aux_heads_need_63px() -> None:
    with pytest.raises(ValueError, match=r"image_size >= 63 .*aux_logits: false"):
        meta_model("inception_v1", 62)
    meta_model("inception_v1", 63)
    assert meta_model("inception_v1", 32, aux_logits=False).aux1 is None


def test_inception_v3_input_size_limits_are_real() -> None:
    """The builder's limits (75 px, 299 px with the aux head) are where torchvision's network breaks."""
    from torchvision.models.inception import Inception3

    with torch.device("meta"):
        net = Inception3(num_classes=10, aux_logits=True, init_weights=False).train()
        assert len(net(torch.empty(2, 3, 299, 299))) == 2
        with pytest.raises(RuntimeError):
            net(torch.empty(2, 3, 298, 298))
        net.eval()
        assert net(torch.empty(2, 3, 75, 75)).shape == (2, 10)
        with pytest.raises(RuntimeError):
            net(torch.empty(2, 3, 74, 74))


def test_inception_v3_rejects_small_inputs_clearly() -> None:
    with pytest.raises(ValueError, match=r"inception_v3 needs image_size >= 75"):
        meta_model("inception_v3", 74, aux_logits=False)
    with pytest.raises(ValueError, match=r"auxiliary classifier needs image_size >= 299.*aux_logits: false"):
        meta_model("inception_v3", 298)
    model = meta_model("inception_v3", 75, aux_logits=False)
    assert model.AuxLogits is None
    assert meta_model("inception_v3", 299).aux_loss_weight == 0.4


def test_mobilenet_v1_layers_and_width() -> None:
    model = meta_model("mobilenet_v1", 224)
    blocks = list(model.features)[1:]
    assert len(blocks) == 13
    for block in blocks:
        dw, pw = block.depthwise[0], block.pointwise[0]
        assert dw.groups == dw.in_channels == dw.out_channels and dw.kernel_size == (3, 3)
        assert pw.kernel_size == (1, 1) and pw.groups == 1
        for unit in (block.depthwise, block.pointwise):  # BN + ReLU after each conv
            assert isinstance(unit[1], nn.BatchNorm2d) and isinstance(unit[2], nn.ReLU)
    assert model.fc.in_features == 1024
    assert [b.depthwise[0].stride[0] for b in blocks].count(2) == 4  # + the stem: total stride 32
    half = meta_model("mobilenet_v1", 224, width=0.5)
    assert half.features[0][0].out_channels == 16 and half.fc.in_features == 512
    with pytest.raises(ValueError, match=r"width multiplier alpha in \(0, 1\]"):
        meta_model("mobilenet_v1", 224, width=1.5)


def test_mobilenet_v2_linear_bottleneck_and_width() -> None:
    from torchvision.models.mobilenetv2 import InvertedResidual

    model = meta_model("mobilenet_v2", 224)
    blocks = [m for m in model.modules() if isinstance(m, InvertedResidual)]
    assert len(blocks) == 17
    for block in blocks:
        last = list(block.conv)
        assert isinstance(last[-2], nn.Conv2d) and last[-2].kernel_size == (1, 1)
        assert isinstance(last[-1], nn.BatchNorm2d)  # no activation after the projection
    assert sum(b.use_res_connect for b in blocks) == 10  # stride-1 blocks with equal in/out channels
    thin = meta_model("mobilenet_v2", 224, width=0.5)
    assert thin.features[0][0].out_channels == 16 and model.features[0][0].out_channels == 32


def test_xception_separable_convs_have_nothing_between_depthwise_and_pointwise() -> None:
    from timm.models.xception import SeparableConv2d

    model = meta_model("xception", 299)
    seps = [m for m in model.modules() if isinstance(m, SeparableConv2d)]
    assert len(seps) == 2 * 3 + 3 * 8 + 2 + 2  # entry, middle, exit blocks, exit separable convs
    for sep in seps:
        assert [n for n, _ in sep.named_children()] == ["conv1", "pointwise"]
        assert sep.conv1.groups == sep.conv1.in_channels and sep.pointwise.kernel_size == (1, 1)
    # the forward is pointwise(depthwise(x)), with no activation in between
    torch.manual_seed(0)
    sep = SeparableConv2d(4, 6, 3, padding=1)
    x = torch.randn(1, 4, 5, 5)
    assert torch.allclose(sep(x), sep.pointwise(sep.conv1(x)))
    assert len(model.middle_flow) == 8 and all(b.skip is None for b in model.middle_flow)  # identity residuals
    assert all(b.skip is not None and b.skip.stride == (2, 2) for b in (*model.entry_flow, model.exit_flow[0]))


def test_efficientnet_compound_scaling() -> None:
    from torchvision.ops import SqueezeExcitation

    widths, depths = [], []
    for b in range(8):
        model = meta_model(f"efficientnet_b{b}")
        se = [m for m in model.modules() if isinstance(m, SqueezeExcitation)]
        depths.append(len(se))  # one squeeze-excite per MBConv block
        widths.append(model.classifier[1].in_features)
    assert depths == sorted(depths) and depths[0] == 16 and depths[-1] == 55
    assert widths[0] == 1280 and widths[-1] == 2560
