"""Global thresholding at Otsu's threshold (Otsu 1979), the classical baseline for binary segmentation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn


@register_model(
    "threshold_otsu",
    task="semantic_segmentation",
    source="bench",
    paper="Otsu 1979, A Threshold Selection Method from Gray-Level Histograms, IEEE Trans. SMC 9(1), Sec. II",
    description="per image: BT.709 grey levels, the 256-bin histogram's Otsu threshold (max between-class "
    "variance), foreground on the side fitted from the training data (the polarity, one parameter)",
    published_ref="none: Otsu's method has no trained parameters (the threshold is computed per image); the one "
    "parameter here is the polarity, which side of the threshold is foreground",
    ref_num_classes=2,
    ref_image_size=64,
    # No batch can be fitted by choosing one side of a per-image threshold: the contract's overfitting check
    # does not apply; tests/models/test_threshold_otsu.py checks instead that training fits the polarity.
    contract_exempt={"overfits_fixed_batch": "a fixed per-image threshold whose only fitted parameter is the "
                     "polarity (one bit) cannot fit a batch; the polarity fit is tested in "
                     "tests/models/test_threshold_otsu.py"},
)
def build_threshold_otsu(num_classes: int, image_size: int) -> nn.Module:
    """Otsu thresholding for a binary view (``num_classes`` = 2: background and one foreground class); the
    output is ``[B, 2, S, S]`` scores at any ``image_size``.  See ``_threshold_otsu`` for the fit."""
    from bench.models.segmentation._threshold_otsu import ThresholdOtsu

    if num_classes != 2:
        raise ValueError(
            f"threshold_otsu separates one foreground class from the background (a binary view, `classes: "
            f"[foreground]` in the dataset YAML); this dataset has {num_classes - 1} classes. Run it on a binary "
            "dataset such as shapes_small (`bench run threshold_otsu --dataset shapes_small`)"
        )
    return ThresholdOtsu()
