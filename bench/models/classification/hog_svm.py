"""HOG + linear SVM (Dalal & Triggs, CVPR 2005): the classic pre-deep-learning classifier.

A fixed HOG descriptor (no trainable parameters; batched torch ops, so it runs on CPU or GPU)
feeds a one-vs-rest linear SVM trained on LinearSVC's primal objective (squared hinge + L2)
through the same trainer as the deep models.  See ``_hog`` for every convention.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn


@register_model(
    "hog_svm",
    task="classification",
    source="bench",
    paper="Dalal & Triggs 2005, Histograms of Oriented Gradients for Human Detection, CVPR",
    description="HOG (8x8 cells, 9 unsigned bins with vote split, 2x2-cell L2-Hys blocks) + one-vs-rest linear SVM",
    published_ref=(
        "Dalal & Triggs 2005, Sec. 6: a 64x128 window gives a 3780-d descriptor (7x15 blocks x 36) and a "
        "3781-weight linear SVM; bench inputs are square, so no published figure applies (at 64 px the "
        "descriptor is 1764-d and the head has 1765 weights per class)"
    ),
    ref_image_size=64,
)
def build_hog_svm(
    num_classes: int,
    image_size: int,
    C: float = 300.0,
    cell_size: int = 8,
    bins: int = 9,
    block_size: int = 2,
    block_norm: Literal["L2-Hys", "L2", "L1", "L1-sqrt"] = "L2-Hys",
    colour: Literal["max", "grey"] = "max",
) -> nn.Module:
    """HOG + linear SVM for ``[B, 3, image_size, image_size]`` inputs.

    ``C``: inverse regularisation, ``LinearSVC``'s C times the number of training images (the
    loss is a mean over images; see ``_hog.HOGSVM``).  ``cell_size`` px cells, ``bins`` unsigned
    orientation bins over 180 degrees, ``block_size x block_size``-cell blocks with ``block_norm``;
    ``colour``: ``max`` keeps each pixel's strongest channel gradient (the paper), ``grey`` uses luma.
    """
    from bench.models.classification._hog import HOG, HOGSVM

    if cell_size < 1 or block_size < 1 or bins < 2:
        raise ValueError(f"hog_svm needs cell_size >= 1, block_size >= 1, bins >= 2; got {cell_size}, "
                         f"{block_size}, {bins}")
    if C <= 0:
        raise ValueError(f"hog_svm needs C > 0, got {C}")
    if image_size % cell_size or image_size < cell_size * block_size:
        raise ValueError(
            f"hog_svm needs image_size to be a multiple of the cell size {cell_size} and >= "
            f"{cell_size * block_size} (one {block_size}x{block_size}-cell block), got {image_size}"
        )
    hog = HOG(cell_size=cell_size, bins=bins, block_size=block_size, block_norm=block_norm, colour=colour)
    return HOGSVM(hog, image_size, num_classes, C)
