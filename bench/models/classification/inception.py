"""GoogLeNet / Inception v1 (Szegedy et al. 2014) and Inception v3 (Szegedy et al. 2015), torchvision, random init.

Both train with auxiliary classifiers (``aux_logits``), whose outputs the engine adds to the loss
with ``model.aux_loss_weight`` and which eval mode drops.  The network code and the input-size
checks are in ``_inception.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn


@register_model(
    "inception_v1",
    task="classification",
    source="torchvision",
    paper="Szegedy et al. 2014, Going Deeper with Convolutions (arXiv:1409.4842), Table 1",
    description="GoogLeNet: 9 inception modules with 1x1 reductions; 2 auxiliary classifiers (loss weight 0.3) "
                "in training, dropped at eval",
    published_params=6.96e6,
    published_ref="Szegedy et al. 2014 (arXiv:1409.4842) Table 1, 'params' column summed: 6,798K with K = 1024 "
                  "(the rows say so: inception 3a = 163,328 weights, printed 159K) = 6.96M, auxiliary classifiers "
                  "excluded.  torchvision's googlenet has 6.62M because its '5x5' branches use 3x3 kernels "
                  "(pytorch/vision#906); this model uses 5x5 as the paper does.",
    ref_image_size=224,
    train_only_modules=("aux1", "aux2"),
)
def build_inception_v1(num_classes: int, image_size: int, aux_logits: bool = True) -> nn.Module:
    """GoogLeNet; ``aux_logits`` (the paper's two auxiliary heads) needs ``image_size >= 63``."""
    from bench.models.classification._inception import googlenet

    return googlenet(num_classes, image_size, aux_logits)


@register_model(
    "inception_v3",
    task="classification",
    source="torchvision",
    paper="Szegedy et al. 2015, Rethinking the Inception Architecture for Computer Vision (arXiv:1512.00567)",
    description="Inception v3: factorised convolutions (5x5 -> two 3x3, nxn -> 1xn + nx1), BN, auxiliary "
                "classifier (loss weight 0.4) in training",
    published_params=23_626_728,
    published_ref="Chollet 2017, Xception (arXiv:1610.02357) Table 3: Inception V3 23,626,728 parameters (ImageNet, "
                  "1000 classes, no auxiliary head); the Inception v3 paper prints no count.  With its auxiliary "
                  "head torchvision's model has 27.2M.",
    ref_image_size=299,
    train_only_modules=("AuxLogits",),
)
def build_inception_v3(num_classes: int, image_size: int, aux_logits: bool = True, dropout: float = 0.5) -> nn.Module:
    """Inception v3; needs ``image_size >= 75``, and ``>= 299`` with the auxiliary classifier.

    ``dropout``: before the classifier (the reference 0.5, a regulariser of the ImageNet recipe).
    """
    from bench.models.classification._inception import inception_v3

    if not 0 <= dropout < 1:
        raise ValueError(f"inception_v3: params.dropout is a probability in [0, 1), got {dropout}")
    return inception_v3(num_classes, image_size, aux_logits, dropout)
