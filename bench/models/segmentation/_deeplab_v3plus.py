"""DeepLab v3+ (Chen et al. 2018, arXiv:1802.02611), segmentation-models-pytorch 0.6's ``DeepLabV3Plus``.

Read in smp 0.6 (``decoders/deeplabv3/decoder.py``, ``model.py``, ``base/heads.py``):

* encoder: the named backbone with its last stage(s) dilated to ``encoder_output_stride`` (8 or 16);
* ``DeepLabV3PlusDecoder.aspp``: ASPP (1x1 conv; three 3x3 atrous convs, **depthwise-separable** when
  ``decoder_aspp_separable`` (the default, Sec. 3.2 "atrous separable convolution"); image pooling: global
  average pool, 1x1 conv, BN, ReLU, upsampled), each ``decoder_channels`` (256) with BN + ReLU; concatenated,
  1x1 projection + BN + ReLU + dropout 0.5; then a separable 3x3 conv + BN + ReLU (smp's addition);
* the decoder (Sec. 3.1, Fig. 2): the ASPP output upsampled bilinearly **x4** (at output stride 16; x2 at 8)
  to stride 4; ``block1``: the low-level features of the **stride-4 encoder stage** (``features[2]``: ResNet's
  layer1) through a 1x1 conv to **48 channels** + BN + ReLU (Table 1's best choice); concatenated; ``block2``:
  one separable 3x3 conv 256 + BN + ReLU (the paper uses two 3x3 convs here, Table 2: smp one);
* ``SegmentationHead``: 1x1 conv to the classes, bilinear x4 upsampling to the input.

The ASPP rates must match the output stride (the paper: 6/12/18 at 16, 12/24/36 at 8); smp's default
(12, 24, 36) does not follow ``encoder_output_stride``, so they are derived from it here.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

RATES = {16: (6, 12, 18), 8: (12, 24, 36)}


def atrous_rates(output_stride: int) -> tuple[int, int, int]:
    """The paper's ASPP rates at ``output_stride`` (16 or 8; anything else raises)."""
    if output_stride not in RATES:
        raise ValueError(f"deeplab_v3plus: output_stride {output_stride}: choose 16 (rates 6, 12, 18) or 8 "
                         "(rates 12, 24, 36), the paper's two settings")
    return RATES[output_stride]


class DeepLabV3Plus(nn.Module):
    """``x [B, 3, H, W] -> logits [B, num_classes, H, W]``, H and W multiples of ``encoder_output_stride``
    (smp checks).  ``net``: smp's model; ``output_stride`` (4): the stride of the map the logits are upsampled
    from, as the contract test reads it."""

    def __init__(self, num_classes: int, encoder_name: str = "resnet101", encoder_output_stride: int = 16,
                 decoder_channels: int = 256, encoder_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        import segmentation_models_pytorch as smp

        rates = atrous_rates(encoder_output_stride)
        if decoder_channels < 1:
            raise ValueError(f"deeplab_v3plus: decoder_channels must be >= 1, got {decoder_channels}")
        # encoder_weights=None: random init, nothing downloaded (the tests build it with HF_HUB_OFFLINE=1)
        self.net = smp.DeepLabV3Plus(encoder_name=encoder_name, encoder_weights=None,
                                     encoder_output_stride=encoder_output_stride, decoder_channels=decoder_channels,
                                     decoder_atrous_rates=rates, decoder_aspp_separable=True, classes=num_classes,
                                     **(encoder_kwargs or {}))
        self.encoder_output_stride = encoder_output_stride
        self.output_stride = 4  # the decoder's map; the final x4 bilinear upsampling draws from it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
