"""The U-Net family's defining connections, on tiny inputs: U-Net's decoder convs see the encoder maps
concatenated (unchanged) with the upsampled ones; Res-U-Net's units are residual (a zeroed branch leaves the
shortcut); FC-DenseNet's dense blocks concatenate their input and every layer's k maps in the encoder, and in
the decoder pass on only the new maps.  Also the parameter counts that pin each network to its paper."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.models import build_model
from bench.models.segmentation._fc_densenet import VARIANTS, DenseBlock, FCDenseNet
from bench.models.segmentation._res_unet import ResidualUnit, ResUNet


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def capture(modules: dict[str, nn.Module]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Forward hooks recording each module's first input and its output (``(inputs, outputs)`` by name)."""
    inputs: dict[str, torch.Tensor] = {}
    outputs: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        def hook(_m: nn.Module, args: tuple, out: torch.Tensor, name: str = name) -> None:
            inputs[name], outputs[name] = args[0].detach().clone(), out.detach().clone()
        module.register_forward_hook(hook)
    return inputs, outputs


# ---------------------------------------------------------------------------------------------------- U-Net


def test_unet_decoder_convs_see_the_encoder_maps_concatenated() -> None:
    torch.manual_seed(0)
    model = build_model("unet", 4, 32, {"base_channels": 4}).eval()
    # decoders run deepest first: decoder i pairs with encoder 3 - i
    watched = {f"enc{i}": model.encoders[i] for i in range(4)}
    watched |= {f"dec{i}": model.decoders[i].conv for i in range(4)}
    watched |= {f"up{i}": model.decoders[i].up for i in range(4)}
    inputs, outputs = capture(watched)
    with torch.no_grad():
        model(torch.rand(2, 3, 32, 32))
    for i in range(4):
        skip, up, conv_in = outputs[f"enc{3 - i}"], outputs[f"up{i}"], inputs[f"dec{i}"]
        assert conv_in.shape[1] == skip.shape[1] + up.shape[1]  # skip + up channels
        assert torch.equal(conv_in, torch.cat([skip, up], dim=1))  # the encoder map itself, unchanged


def test_unet_output_depends_on_the_skip() -> None:
    torch.manual_seed(0)
    model = build_model("unet", 4, 32, {"base_channels": 4}).eval()
    dec = model.decoders[-1]  # the last decoder: 8 -> 4 channels at full resolution, skip from encoder 0
    x, skip = torch.rand(1, 8, 16, 16), torch.rand(1, 4, 32, 32)
    with torch.no_grad():
        base = dec(x, skip)
        bumped = skip.clone()
        bumped[..., 5, 7] += 1.0  # one skip pixel
        assert not torch.allclose(dec(x, bumped), base)


def test_unet_original_count_exact() -> None:
    """The paper's network (1 input channel, 2 classes, no BN; padding changes no kernel): 31,030,658."""
    with torch.device("meta"):
        model = build_model("unet", 2, 576, {"in_channels": 1, "batch_norm": False})
    assert n_params(model) == 31_030_658
    assert model.encoders[0][0].in_channels == 1


# ------------------------------------------------------------------------------------------------ Res-U-Net


@pytest.mark.parametrize("block", ["basic", "bottleneck"])
@pytest.mark.parametrize(("cin", "cout", "stride", "first"), [(8, 8, 1, False), (4, 8, 2, False), (3, 8, 1, True)])
def test_residual_unit_with_zeroed_branch_is_its_shortcut(block: str, cin: int, cout: int, stride: int,
                                                          first: bool) -> None:
    torch.manual_seed(0)
    unit = ResidualUnit(cin, cout, stride, block=block, first=first).eval()
    x = torch.randn(2, cin, 8, 8)
    last = unit.residual[-1]
    assert isinstance(last, nn.Conv2d) and last.out_channels == cout
    with torch.no_grad():
        assert not torch.allclose(unit(x), unit.shortcut(x))  # the branch contributes before zeroing
        last.weight.zero_()
        last.bias.zero_()
        assert torch.equal(unit(x), unit.shortcut(x))
    assert isinstance(unit.shortcut, nn.Identity) == (cin == cout and stride == 1)


def test_res_unet_pre_activation_and_units() -> None:
    model = ResUNet(3, 4, width=0.125)
    units = [m for m in model.modules() if isinstance(m, ResidualUnit)]
    assert len(units) == 7  # Table I: 3 encoder, 1 bridge, 3 decoder units
    assert isinstance(units[0].residual[0], nn.Conv2d)  # the first unit convolves the raw image first
    for unit in units[1:]:  # the others are pre-activation: BN-ReLU before each conv
        assert isinstance(unit.residual[0], nn.BatchNorm2d) and isinstance(unit.residual[1], nn.ReLU)


@pytest.mark.parametrize("block", ["basic", "bottleneck"])
def test_res_unet_whole_model_zeroed_branches(block: str) -> None:
    """Every unit of the built network is residual: with all branches zeroed, each unit returns its shortcut."""
    torch.manual_seed(0)
    model = build_model("res_unet", 4, 32, {"width": 0.125, "block": block}).eval()
    units = {f"u{i}": m for i, m in enumerate(m for m in model.modules() if isinstance(m, ResidualUnit))}
    with torch.no_grad():
        for unit in units.values():
            unit.residual[-1].weight.zero_()
            unit.residual[-1].bias.zero_()
    inputs, outputs = capture(units)
    with torch.no_grad():
        model(torch.rand(2, 3, 32, 32))
        for name, unit in units.items():
            assert torch.equal(outputs[name], unit.shortcut(inputs[name])), name


def test_res_unet_decoder_concatenates_upsampled_and_encoder_maps() -> None:
    torch.manual_seed(0)
    model = build_model("res_unet", 4, 32, {"width": 0.125}).eval()
    watched = {f"enc{i}": model.encoders[i] for i in range(3)}
    watched |= {f"dec{i}": model.decoders[i].unit for i in range(3)}
    watched |= {f"up{i}": model.decoders[i].up for i in range(3)}
    inputs, outputs = capture(watched)
    with torch.no_grad():
        model(torch.rand(2, 3, 32, 32))
    for i in range(3):
        assert torch.equal(inputs[f"dec{i}"], torch.cat([outputs[f"up{i}"], outputs[f"enc{2 - i}"]], dim=1))


def test_res_unet_counts_against_the_paper() -> None:
    """Table I's convs and BNs without the projection shortcuts are the paper's 7.8M (0.1%); the projections,
    needed because every unit changes shape, add 434,496 (res_unet.py)."""
    with torch.device("meta"):
        model = build_model("res_unet", 2, 224, {})
    total = n_params(model)
    shortcuts = sum(p.numel() for n, p in model.named_parameters() if ".shortcut." in n)
    assert total == 8_223_874
    assert shortcuts == 434_496
    assert abs(total - shortcuts - 7.8e6) / 7.8e6 < 0.002


# ---------------------------------------------------------------------------------------------- FC-DenseNet


def test_dense_block_concatenates_input_and_every_layers_maps() -> None:
    torch.manual_seed(0)
    cin, k, n = 5, 3, 4
    block = DenseBlock(cin, k, n, dropout=0.0, keep_input=True).eval()
    x = torch.randn(2, cin, 8, 8)
    inputs, outputs = capture({f"l{i}": layer for i, layer in enumerate(block.layers)})
    with torch.no_grad():
        out = block(x)
    assert out.shape[1] == cin + n * k == block.out_channels
    assert torch.equal(out[:, :cin], x)  # the input passes through unchanged
    for i in range(n):  # layer i's k maps sit after the input and the earlier layers' maps
        assert torch.equal(out[:, cin + i * k:cin + (i + 1) * k], outputs[f"l{i}"])
        assert torch.equal(inputs[f"l{i}"], out[:, :cin + i * k])  # and layer i saw everything before it

    new_only = DenseBlock(cin, k, n, dropout=0.0, keep_input=False).eval()
    new_only.load_state_dict(block.state_dict())
    with torch.no_grad():
        assert torch.equal(new_only(x), out[:, cin:])  # the decoder's blocks: only the n k new maps


def test_fc_densenet_encoder_keeps_input_decoder_passes_only_new_maps() -> None:
    torch.manual_seed(0)
    layers, k, first = (2, 3, 2, 3, 2), 4, 6  # two poolings: down 2, 3 | bottleneck 2 | up 3, 2
    model = FCDenseNet(3, 4, layers, k, first_filters=first, dropout=0.0).eval()
    watched = {"first": model.first, "down0": model.down_blocks[0], "down1": model.down_blocks[1],
               "bottleneck": model.bottleneck, "up0": model.ups[0], "up1": model.ups[1],
               "upblock0": model.up_blocks[0], "upblock1": model.up_blocks[1], "head": model.head}
    inputs, outputs = capture(watched)
    with torch.no_grad():
        model(torch.rand(2, 3, 16, 16))
    # encoder: a block's output starts with its input, unchanged
    assert outputs["down0"].shape[1] == first + 2 * k
    assert torch.equal(outputs["down0"][:, :first], outputs["first"])
    assert torch.equal(outputs["down1"][:, :first + 2 * k], inputs["down1"])
    # the bottleneck passes on only its 2 k new maps, which are all the first transition up sees
    assert outputs["bottleneck"].shape[1] == 2 * k
    assert inputs["up0"].shape[1] == 2 * k and model.ups[0].up.in_channels == 2 * k
    # transition up: the upsampled new maps, then the encoder skip, unchanged
    assert torch.equal(outputs["up0"][:, 2 * k:], outputs["down1"])
    assert torch.equal(outputs["up1"][:, 3 * k:], outputs["down0"])
    # decoder block 0 (not the last): only its 3 k new maps go on
    assert outputs["upblock0"].shape[1] == 3 * k and inputs["up1"].shape[1] == 3 * k
    assert not torch.equal(outputs["upblock0"], inputs["upblock0"][:, :3 * k])
    # the last block keeps its input (as the paper's code does) and the head reads input + new maps
    assert outputs["upblock1"].shape[1] == inputs["upblock1"].shape[1] + 2 * k
    assert torch.equal(outputs["upblock1"][:, :inputs["upblock1"].shape[1]], inputs["upblock1"])
    assert inputs["head"].shape[1] == model.head.in_channels == (3 * k + first + 2 * k) + 2 * k


def paper_count(layers: tuple[int, ...], k: int, classes: int, first: int = 48, cin: int = 3) -> int:
    """FC-DenseNet's parameters, layer by layer from the paper's spec (Tables 1-2; conv biases, BN scale and
    shift), written independently of the modules."""
    def dense(c: int, n: int) -> int:  # n BN-ReLU-3x3 conv layers on c, c + k, ... maps
        return sum(2 * (c + i * k) + 9 * (c + i * k) * k + k for i in range(n))

    pools = len(layers) // 2
    total, c, skips = 9 * cin * first + first, first, []
    for n in layers[:pools]:
        total += dense(c, n)
        c += n * k
        skips.append(c)
        total += 2 * c + c * c + c  # transition down: BN, 1x1 conv c -> c
    total += dense(c, layers[pools])
    new = layers[pools] * k
    for i, n in enumerate(layers[pools + 1:]):
        total += 9 * new * new + new  # transition up: 3x3 transposed conv on the new maps
        c = new + skips[-1 - i]
        total += dense(c, n)
        new = n * k if i < pools - 1 else c + n * k
    return total + new * classes + classes


@pytest.mark.parametrize(("depth", "expected"), [(56, 1_376_795), (67, 3_463_243), (103, 9_322_091)])
def test_fc_densenet_counts_follow_the_paper_spec(depth: int, expected: int) -> None:
    """At 11 classes (CamVid).  The paper prints 1.5M / 3.5M / 9.4M: 103 and 67 within 1.1%, 56 8.2% below
    (fc_densenet.py; only 103 and 67 are fidelity-checked against the printed figures)."""
    with torch.device("meta"):
        model = build_model("fc_densenet", 11, 224, {"depth": depth})
    layers, k = VARIANTS[depth]
    assert n_params(model) == paper_count(layers, k, 11) == expected
    n_convs = sum(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in model.modules())
    assert n_convs == depth  # the name counts the convs: first, dense layers, transitions down and up, head
