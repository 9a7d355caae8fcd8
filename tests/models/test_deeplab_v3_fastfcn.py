"""DeepLab v3, DeepLab v3+ and FastFCN: the parts that make each the paper's model, checked on tiny inputs.

* the ResNet trunk (``_resnet_trunk``): at width 1 exactly torchvision's ResNet (less ``fc``); dilated stages keep
  the map at stride 8, also for BasicBlock trunks (dilated here, torchvision refuses);
* DeepLab v3: torchvision's own builder at the reference configuration; ASPP rates 12/24/36 at output stride 8;
  the image-pooling branch is global average pooling + 1x1 conv + BN, broadcast over the map; ``{"out", "aux"}``
  in training, a tensor in eval without running the aux head;
* DeepLab v3+ (smp): builds offline; ASPP rates follow the output stride (6/12/18 at 16, 12/24/36 at 8, others
  rejected) and are separable; the decoder's 48-channel projection is fed the stride-4 encoder stage and its output
  reaches the logits; x4 upsampling;
* FastFCN: the JPU takes C3, C4, C5 (strides 8, 16, 32) from an undilated trunk; four parallel separable convs at
  dilations 1, 2, 4, 8 (depthwise: groups == channels); its output is at stride 8.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
import torch
import torchvision
from torch import nn

from bench.models import build_model
from bench.models.segmentation._resnet_trunk import ResNetTrunk

S = 64  # input side
K = 4  # classes + background


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def tiny(name: str, **params: Any) -> nn.Module:
    torch.manual_seed(0)
    small = {"deeplab_v3": {"backbone": "resnet18", "backbone_width": 0.25, "head_channels": 16},
             "fastfcn": {"backbone": "resnet18", "backbone_width": 0.25, "jpu_width": 16},
             "deeplab_v3plus": {"encoder_name": "tu-resnet18", "encoder_kwargs": {"channels": [8, 16, 32, 64]},
                                "decoder_channels": 16}}[name]
    return build_model(name, K, S, {**small, **params})


def image(batch: int = 2) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(batch, 3, S, S)


# ----------------------------------------------------------------------------------------------- ResNet trunk
@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_trunk_at_full_width_is_torchvisions_resnet(name: str) -> None:
    with torch.device("meta"):
        ours = ResNetTrunk(name)
        ref = getattr(torchvision.models, name)(weights=None)
    ref_state = {k: v.shape for k, v in ref.state_dict().items() if not k.startswith("fc.")}
    assert {k: v.shape for k, v in ours.state_dict().items()} == ref_state
    assert n_params(ours) == n_params(ref) - n_params(ref.fc)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_dilated_trunk_keeps_stride_8(name: str) -> None:
    trunk = ResNetTrunk(name, width=0.125, dilate=(False, True, True)).eval()
    with torch.no_grad():
        assert trunk(image(1)).shape[-2:] == (S // 8, S // 8)
        plain = ResNetTrunk(name, width=0.125).eval()
        assert plain(image(1)).shape[-2:] == (S // 32, S // 32)
    if name == "resnet18":  # BasicBlock: first block of a dilated stage at the previous dilation, the rest doubled
        assert [trunk.layer3[0].conv1.dilation, trunk.layer3[1].conv2.dilation] == [(1, 1), (2, 2)]
        assert [trunk.layer4[0].conv1.dilation, trunk.layer4[1].conv1.dilation] == [(2, 2), (4, 4)]
        assert all(c.padding == c.dilation for b in trunk.layer4 for c in (b.conv1, b.conv2))


# ------------------------------------------------------------------------------------------------ DeepLab v3
def test_deeplab_v3_reference_is_torchvisions_builder() -> None:
    from torchvision.models.segmentation.deeplabv3 import DeepLabHead

    from bench.models.segmentation._deeplab_v3 import assemble

    with torch.device("meta"):
        model = build_model("deeplab_v3", 21, 520, {})
        body, head, aux = assemble(21, "resnet50", 1.0, True, 256)
        tv = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None, aux_loss=True)
    assert isinstance(model.classifier, DeepLabHead)
    assert n_params(model) == n_params(tv) == 42_004_074  # torchvision's documented count
    # the parts path (small profiles) builds the same network at the reference settings
    assembled = nn.ModuleDict({"backbone": body, "classifier": head, "aux_classifier": aux})
    assert {k: v.shape for k, v in assembled.state_dict().items()} == {k: v.shape for k, v in tv.state_dict().items()}
    assert model.output_stride == 8 and model.aux_weight == 0.5


def test_deeplab_v3_aspp_rates_and_image_pooling_branch() -> None:
    model = tiny("deeplab_v3").eval()
    aspp = model.classifier[0]
    assert [branch[0].dilation for branch in aspp.convs[1:4]] == [(12, 12), (24, 24), (36, 36)]
    pool = aspp.convs[-1]
    assert [type(m) for m in pool] == [nn.AdaptiveAvgPool2d, nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    assert pool[0].output_size in (1, (1, 1)) and pool[1].kernel_size == (1, 1)
    seen: dict[str, torch.Tensor] = {}
    pool.register_forward_hook(lambda m, i, o: seen.update(inp=i[0], out=o))
    with torch.no_grad():
        model(image())
    inp, out = seen["inp"], seen["out"]
    assert out.shape[-2:] == inp.shape[-2:] == (S // 8, S // 8)  # broadcast back to the map
    assert torch.allclose(out, out[..., :1, :1].expand_as(out))  # one value per image and channel
    # global: a change in one corner of the map moves the branch's output everywhere
    bumped = inp.clone()
    bumped[:, :, 0, 0] += 10.0
    with torch.no_grad():
        delta = (pool(bumped) - out).abs()
    assert bool((delta.amax(1) > 0).all())


def test_deeplab_v3_aux_in_training_only() -> None:
    model = tiny("deeplab_v3")
    calls = []
    model.aux_classifier.register_forward_hook(lambda *a: calls.append(1))
    model.train()
    out = model(image())
    assert set(out) == {"out", "aux"} and out["out"].shape == out["aux"].shape == (2, K, S, S)
    model.eval()
    with torch.no_grad():
        logits = model(image())
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, K, S, S)
    assert len(calls) == 1  # the eval forward did not run the aux head
    no_aux = tiny("deeplab_v3", aux_loss=False).train()
    assert isinstance(no_aux(image()), torch.Tensor) and no_aux.aux_classifier is None


# ------------------------------------------------------------------------------------------------ DeepLab v3+
def test_deeplab_v3plus_builds_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access while building deeplab_v3plus: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    with torch.device("meta"):
        model = build_model("deeplab_v3plus", 21, 512, {})  # the reference: smp's resnet101 encoder
    assert type(model.net.encoder).__name__ == "ResNetEncoder"
    assert tiny("deeplab_v3plus") is not None  # a timm encoder too


@pytest.mark.parametrize(("stride", "rates"), [(16, (6, 12, 18)), (8, (12, 24, 36))])
def test_deeplab_v3plus_rates_follow_output_stride(stride: int, rates: tuple[int, int, int]) -> None:
    model = tiny("deeplab_v3plus", output_stride=stride)
    aspp = model.net.decoder.aspp[0]
    assert tuple(branch[0][0].dilation[0] for branch in aspp.convs[1:4]) == rates
    for branch in aspp.convs[1:4]:  # atrous *separable*: depthwise 3x3 then pointwise 1x1
        depthwise, pointwise = branch[0]
        assert depthwise.groups == depthwise.in_channels == depthwise.out_channels
        assert depthwise.kernel_size == (3, 3) and pointwise.kernel_size == (1, 1)
    assert model.net.encoder.output_stride == stride


def test_deeplab_v3plus_rejects_other_strides() -> None:
    from bench.models.segmentation._deeplab_v3plus import DeepLabV3Plus

    with pytest.raises(ValueError, match="output_stride 32"):
        DeepLabV3Plus(K, encoder_name="resnet18", encoder_output_stride=32)
    with pytest.raises(ValueError, match="multiple of output_stride"):
        build_model("deeplab_v3plus", K, 72, {"encoder_name": "resnet18"})


def test_deeplab_v3plus_decoder_takes_stride4_features_through_48_channels() -> None:
    model = tiny("deeplab_v3plus").eval()
    dec = model.net.decoder
    assert dec.block1[0].kernel_size == (1, 1) and dec.block1[0].out_channels == 48
    assert dec.up.scale_factor == 4 and model.net.segmentation_head[1].scale_factor == 4
    seen: dict[str, Any] = {}
    model.net.encoder.register_forward_hook(lambda m, i, o: seen.update(features=o))
    dec.block1.register_forward_pre_hook(lambda m, i: seen.update(low=i[0]))
    with torch.no_grad():
        base = model(image())
    low = seen["low"]
    assert low.shape[-2:] == (S // 4, S // 4) and low is seen["features"][2]  # the stride-4 stage
    assert low.shape[1] == dec.block1[0].in_channels
    # the low-level path reaches the logits: silencing the projection changes them
    handle = dec.block1.register_forward_hook(lambda m, i, o: torch.zeros_like(o))
    with torch.no_grad():
        silenced = model(image())
    handle.remove()
    assert base.shape == (2, K, S, S) and not torch.allclose(base, silenced)


# ------------------------------------------------------------------------------------------------- FastFCN
def test_fastfcn_jpu_takes_the_last_three_stages() -> None:
    model = tiny("fastfcn").eval()
    trunk = model.backbone
    assert all(m.dilation == (1, 1) for m in trunk.modules() if isinstance(m, nn.Conv2d))  # undilated
    seen: dict[str, Any] = {}
    model.jpu.register_forward_pre_hook(lambda m, i: seen.update(inputs=i))
    model.jpu.register_forward_hook(lambda m, i, o: seen.update(out=o))
    with torch.no_grad():
        logits = model(image())
    assert [t.shape[-1] for t in seen["inputs"]] == [S // 8, S // 16, S // 32]
    assert [t.shape[1] for t in seen["inputs"]] == [32, 64, 128]  # layer2-4 of a 1/4-width ResNet-18
    assert seen["out"].shape == (2, 4 * 16, S // 8, S // 8) and model.output_stride == 8
    assert logits.shape == (2, K, S, S)


def test_fastfcn_jpu_has_four_dilated_separable_convs() -> None:
    model = tiny("fastfcn")
    jpu, width = model.jpu, 16
    assert len(jpu.dilations) == 4
    for branch, d in zip(jpu.dilations, (1, 2, 4, 8), strict=True):
        depthwise, bn, pointwise = branch[0]
        assert depthwise.dilation == (d, d) and depthwise.padding == (d, d) and depthwise.kernel_size == (3, 3)
        assert depthwise.groups == depthwise.in_channels == depthwise.out_channels == 3 * width
        assert isinstance(bn, nn.BatchNorm2d) and pointwise.kernel_size == (1, 1) and pointwise.out_channels == width
        assert isinstance(branch[1], nn.BatchNorm2d) and isinstance(branch[2], nn.ReLU)
    for conv in (jpu.conv3, jpu.conv4, jpu.conv5):
        assert conv[0].kernel_size == (3, 3) and conv[0].out_channels == width


def test_fastfcn_aux_in_training_only() -> None:
    model = tiny("fastfcn").train()
    out = model(image())
    assert set(out) == {"out", "aux"} and out["aux"].shape == (2, K, S, S) and model.aux_weight == 0.2
    with torch.no_grad():
        assert isinstance(model.eval()(image()), torch.Tensor)
