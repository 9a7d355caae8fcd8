"""Architecture facts of the zoo-a classification models (simple_cnn, VGG, ResNet v1/v2, DenseNet, FPN).

The contract tests check that every model trains and evaluates; these check that each one is the
architecture its name says, on small random inputs (fast, no data).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.models import build_model


def build(name: str, classes: int = 3, size: int = 32, **params: object) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, classes, size, params)


def test_simple_cnn_layer_order() -> None:
    """Each block is conv -> ReLU -> pool -> BN -> dropout; then flatten -> dense -> ReLU -> dropout -> dense."""
    model = build("simple_cnn", classes=10, size=28)
    kinds = [type(m) for m in model.modules() if not isinstance(m, nn.Sequential | type(model))]
    block = [nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.BatchNorm2d, nn.Dropout]
    assert kinds == block * 2 + [nn.Flatten, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)] == [32, 64]
    assert model.fc1.in_features == 64 * 7 * 7 and model.fc1.out_features == 128  # 28 -> 14 -> 7
    assert model(torch.randn(2, 3, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize(("name", "convs"), [("vgg11", 8), ("vgg13", 10), ("vgg16", 13), ("vgg19", 16)])
def test_vgg_configuration(name: str, convs: int) -> None:
    """Paper Table 1: 3x3 convs in 5 blocks of 64..512 filters, a max-pool per block, no BN, 3 FC layers."""
    with torch.device("meta"):
        model = build_model(name, 1000, 224, {})
    layers = list(model.features)
    conv = [m for m in layers if isinstance(m, nn.Conv2d)]
    assert len(conv) == convs and all(m.kernel_size == (3, 3) for m in conv)
    assert sum(isinstance(m, nn.MaxPool2d) for m in layers) == 5
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    # filters of the conv before each pool: 64, 128, 256, 512, 512
    before_pool = [next(c for c in reversed(layers[:i]) if isinstance(c, nn.Conv2d)).out_channels
                   for i, m in enumerate(layers) if isinstance(m, nn.MaxPool2d)]
    assert before_pool == [64, 128, 256, 512, 512]
    fcs = [m for m in model.classifier if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in fcs] == [(512 * 7 * 7, 4096), (4096, 4096), (4096, 1000)]
    assert model.bench_head == "classifier.6" and len(model.bench_stages) == convs + 2


def test_vgg_accepts_32px() -> None:
    """The adaptive 7x7 pool lets 32 px through with the FC layers' 224 px shapes (meta: shapes only)."""
    with torch.device("meta"):
        model = build_model("vgg11", 3, 32, {}).eval()
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 3)
    with pytest.raises(ValueError, match="image_size >= 32"):
        build("vgg11", size=24)


@pytest.mark.parametrize(("name", "blocks", "block_type"), [
    ("resnet34", [3, 4, 6, 3], "BasicBlock"), ("resnet50", [3, 4, 6, 3], "Bottleneck")])
def test_resnet_v1_post_activation(name: str, blocks: list[int], block_type: str) -> None:
    """v1 units end with BN (no ReLU inside the residual branch's tail); the ReLU follows the addition."""
    with torch.device("meta"):
        model = build_model(name, 1000, 224, {})
    stages = [model.layer1, model.layer2, model.layer3, model.layer4]
    assert [len(s) for s in stages] == blocks
    unit = model.layer2[0]
    assert type(unit).__name__ == block_type
    last_bn = "bn3" if block_type == "Bottleneck" else "bn2"
    assert isinstance(getattr(unit, last_bn), nn.BatchNorm2d) and unit.downsample is not None
    assert model.bench_head == "fc"


def test_resnet_v1_relu_after_addition() -> None:
    """With an identity shortcut, v1's output is ReLU(F(x) + x): never negative."""
    model = build("resnet34").eval()
    unit = model.layer1[0]
    with torch.no_grad():
        out = unit(torch.randn(2, 64, 8, 8))
    assert out.min() >= 0


def test_resnet50_v2_pre_activation_units() -> None:
    """v2 unit: BN-ReLU before every conv, output F(x) + x with no ReLU after the addition."""
    model = build("resnet50_v2").eval()
    unit = model.stages[0].blocks[1]  # identity-shortcut unit
    for norm, conv in (("norm1", "conv1"), ("norm2", "conv2"), ("norm3", "conv3")):
        bn = getattr(unit, norm)
        assert isinstance(bn, nn.BatchNorm2d) and isinstance(bn.act, nn.ReLU)  # timm BatchNormAct2d = BN + ReLU
        assert isinstance(getattr(unit, conv), nn.Conv2d) and type(getattr(unit, conv)) is nn.Conv2d  # not StdConv
    names = [n for n, _ in unit.named_children()]
    assert names.index("norm1") < names.index("conv1") < names.index("norm2") < names.index("conv2")
    x = torch.randn(2, 256, 4, 4)
    with torch.no_grad():
        residual = unit.conv3(unit.norm3(unit.conv2(unit.norm2(unit.conv1(unit.norm1(x))))))
        assert torch.allclose(unit(x), x + residual, atol=1e-5)  # clean identity path
        assert unit(x).min() < 0  # no ReLU after the addition
    # the stem has no BN/ReLU of its own (the first unit pre-activates it); a final BN-ReLU closes the net
    assert [n for n, _ in model.stem.named_children()] == ["conv", "pool"]
    assert isinstance(model.norm, nn.BatchNorm2d) and isinstance(model.norm.act, nn.ReLU)


def test_densenet121_structure() -> None:
    """Dense blocks of 6/12/24/16 layers, growth rate 32, BN-ReLU-1x1-BN-ReLU-3x3, transitions halve channels."""
    with torch.device("meta"):
        model = build_model("densenet121", 1000, 224, {})
    f = model.features
    assert [len(getattr(f, f"denseblock{i}")) for i in range(1, 5)] == [6, 12, 24, 16]
    layer = f.denseblock1.denselayer1
    assert [type(m) for m in layer.children()][:6] == [nn.BatchNorm2d, nn.ReLU, nn.Conv2d] * 2
    assert layer.conv1.kernel_size == (1, 1) and layer.conv1.out_channels == 4 * 32
    assert layer.conv2.kernel_size == (3, 3) and layer.conv2.out_channels == 32
    t = f.transition1
    assert t.conv.in_channels == 64 + 6 * 32 and t.conv.out_channels == (64 + 6 * 32) // 2
    assert isinstance(t.pool, nn.AvgPool2d)


def test_fpn_top_down_nearest_2x_and_every_level_pooled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Top-down: 1x1 laterals, 2x nearest upsampling, 3x3 smoothing; P2..P5 all pooled into the classifier."""
    import torch.nn.functional as F

    model = build("fpn_classifier", size=64).eval()
    fpn = model.fpn
    assert [m.kernel_size for m in fpn.lateral] == [(1, 1)] * 4
    assert [m.kernel_size for m in fpn.smooth] == [(3, 3)] * 4
    assert model.fc.in_features == 4 * 256

    calls = []
    real = F.interpolate

    def spy(x: torch.Tensor, *args: object, **kw: object) -> torch.Tensor:
        out = real(x, *args, **kw)
        calls.append((kw.get("mode"), tuple(x.shape[-2:]), tuple(out.shape[-2:])))
        return out

    monkeypatch.setattr(F, "interpolate", spy)
    with torch.no_grad():
        pyramid = model.pyramid(torch.randn(1, 3, 64, 64))
    assert [tuple(p.shape[-2:]) for p in pyramid] == [(16, 16), (8, 8), (4, 4), (2, 2)]
    assert calls == [("nearest", (2, 2), (4, 4)), ("nearest", (4, 4), (8, 8)), ("nearest", (8, 8), (16, 16))]

    # Every level reaches the logits: zeroing the classifier weights of one level's 256 features
    # changes the output for each level in turn.
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        base = model(x)
        for level in range(4):
            w = model.fc.weight.clone()
            model.fc.weight[:, level * 256:(level + 1) * 256] = 0
            assert not torch.allclose(model(x), base)
            model.fc.weight.copy_(w)


def test_fpn_backbone_loads_torchvision_resnet_weights() -> None:
    """The bottom-up pathway keeps torchvision's names, so a ResNet-18 state dict loads into it."""
    import torchvision

    model = build("fpn_classifier")
    resnet = torchvision.models.resnet18(weights=None)
    state = {k: v for k, v in resnet.state_dict().items() if not k.startswith("fc.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected
    assert all(k.startswith(("fpn.", "fc.")) for k in missing)


@pytest.mark.parametrize("name", ["simple_cnn", "vgg11", "resnet34", "resnet50", "resnet50_v2", "densenet121",
                                  "fpn_classifier"])
def test_transfer_paths_exist(name: str) -> None:
    """``bench_head`` and ``bench_stages`` name real modules that hold parameters, stages input to output."""
    with torch.device("meta"):
        model = build_model(name, 1000, 64, {})
    modules = dict(model.named_modules())
    assert isinstance(modules[model.bench_head], nn.Linear | nn.Conv2d)
    stages = getattr(model, "bench_stages", ())
    assert all(any(True for _ in modules[s].parameters()) for s in stages)
    assert model.bench_head not in stages
