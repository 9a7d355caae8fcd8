"""EfficientNet-B0 ... B7 (Tan & Le 2019, arXiv:1905.11946) from torchvision, random init.

One architecture family: B0 (MBConv blocks with squeeze-and-excitation, found by NAS) scaled by
the compound coefficient phi, depth alpha^phi, width beta^phi, resolution gamma^phi with
alpha = 1.2, beta = 1.1, gamma = 1.15.  The width and depth coefficients are part of each bN, so
there is no width knob here: a profile scales a model only through its input size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import Builder, register_model
from bench.models.classification._common import fan_in_head

if TYPE_CHECKING:
    from torch import nn

# bN -> (reference resolution, parameters in Table 2 of the paper)
VARIANTS = {
    0: (224, 5.3e6),
    1: (240, 7.8e6),
    2: (260, 9.2e6),
    3: (300, 12e6),
    4: (380, 19e6),
    5: (456, 30e6),
    6: (528, 43e6),
    7: (600, 66e6),
}


def _register(b: int) -> Builder:
    resolution, params = VARIANTS[b]
    name = f"efficientnet_b{b}"

    @register_model(
        name,
        task="classification",
        source="torchvision",
        paper="Tan & Le 2019, EfficientNet: Rethinking Model Scaling for CNNs (arXiv:1905.11946), Tables 1-2",
        description=f"EfficientNet-B{b}: MBConv + squeeze-excite, compound scaling (reference {resolution} px)",
        published_params=params,
        published_ref=f"Tan & Le 2019 (arXiv:1905.11946) Table 2: EfficientNet-B{b} {params / 1e6:g}M parameters",
        ref_image_size=resolution,
    )
    def build(
        num_classes: int, image_size: int, stochastic_depth: float = 0.2, dropout: float | None = None
    ) -> nn.Module:
        """torchvision's EfficientNet-BN; any image_size.

        ``stochastic_depth``: the largest drop probability (the last block's; the paper's 0.2, i.e.
        survival 0.8, linear in depth); ``dropout`` before the classifier (None: the variant's, 0.2 for
        B0 to 0.5 for B7).  Both are training regularisers of the paper's ImageNet recipe, exposed so a
        profile can state them.
        """
        import torchvision.models as tvm

        if not 0 <= stochastic_depth < 1 or (dropout is not None and not 0 <= dropout < 1):
            raise ValueError(f"{name}: params.stochastic_depth and params.dropout are probabilities in [0, 1)")
        extra = {"stochastic_depth_prob": stochastic_depth, **({} if dropout is None else {"dropout": dropout})}
        model = getattr(tvm, name)(weights=None, num_classes=num_classes, **extra)
        # The reference head init (uniform +-1/sqrt(num_classes)) is scaled for 1000 classes; with 3 or
        # 10 it starts at logits of +-40 on 1280 features and AdamW diverges (measured: loss 5-13 on 3
        # classes after 25 steps).
        fan_in_head(model.classifier[1])
        model.bench_head = "classifier.1"
        # features.0 is the stem conv, 1..7 the seven MBConv stages of Table 1, 8 the final 1x1 conv.
        model.bench_stages = tuple(f"features.{i}" for i in range(len(model.features)))
        return model

    build.__name__ = build.__qualname__ = f"build_{name}"
    return build


for _b in VARIANTS:
    _register(_b)
