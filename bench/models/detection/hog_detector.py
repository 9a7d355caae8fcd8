"""HOG sliding-window detector (Dalal & Triggs, CVPR 2005): the pre-deep-learning detection baseline.

``hog_svm``'s fixed HOG descriptor (no trainable parameters) on dense windows over an image pyramid,
one linear SVM per class trained with hard negative mining, per-class NMS.  See
``_hog_detector`` for the geometry, the sampling and the loss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from bench.models import register_model

if TYPE_CHECKING:
    from torch import nn


@register_model(
    "hog_detector",
    task="detection",
    source="bench",
    paper="Dalal & Triggs 2005, Histograms of Oriented Gradients for Human Detection, CVPR",
    description="HOG (8x8 cells, 9 bins, 2x2-cell L2-Hys blocks) on dense windows over an image pyramid, "
                "one-vs-rest linear SVMs with hard negative mining, NMS",
    # The reference configuration is the paper's person detector: one class, a 64x128 window of
    # 8x8-px cells, 2x2-cell blocks at a one-cell stride (7 x 15 blocks x 36 = 3780 values), and a
    # linear SVM on them: 3780 weights + 1 bias.  OpenCV's HOGDescriptor::getDefaultPeopleDetector()
    # (Dalal's trained person SVM) is that 3781-value vector.  The image size plays no part.
    published_params=3781,
    published_ref=(
        "Dalal & Triggs 2005, Sec. 6 default detector: 64x128 window, 8x8 cells, 9 bins, 2x2-cell blocks "
        "(15x7 blocks x 36 = 3780-d descriptor) + linear SVM bias = 3781; OpenCV's getDefaultPeopleDetector() "
        "has 3781 coefficients"
    ),
    ref_num_classes=1,
    ref_image_size=128,
)
def build_hog_detector(
    num_classes: int,
    image_size: int,
    cell_size: int = 8,
    window: tuple[int, int] = (16, 8),
    margin: int = 2,
    bins: int = 9,
    block_size: int = 2,
    block_norm: Literal["L2-Hys", "L2", "L1", "L1-sqrt"] = "L2-Hys",
    colour: Literal["max", "grey"] = "max",
    scale_step: float = 1.05,
    max_upscale: float = 1.0,
    C: float = 100.0,
    loss: Literal["squared_hinge", "hinge"] = "squared_hinge",
    flip_positives: bool = True,
    hard_negatives: int = 16,
    random_negatives: int = 16,
    neg_iou: float = 0.3,
    score_thresh: float = -1.0,
    nms_iou: float = 0.3,
    detections_per_img: int = 100,
) -> nn.Module:
    """HOG detector for ``num_classes`` object classes (no background class: each class has its SVM).

    ``window = (rows, cols)`` in cells of ``cell_size`` px, of which ``margin`` cells per side are
    context around the object (the paper: 16x8 cells = 128x64 px, 2 cells = 16 px); ``scale_step``
    between pyramid levels (OpenCV's ``detectMultiScale`` default 1.05) starting from the image
    resized by ``max_upscale`` (> 1 finds objects smaller than the window interior).  SVM: ``C``
    (ours = SVMLight's C x samples per batch, the loss being a mean), ``loss`` (squared hinge as
    LinearSVC, or hinge as SVMLight).  Per image and step: the positives (and their mirror images
    with ``flip_positives``), ``hard_negatives`` top-scoring background windows per class and
    ``random_negatives`` random ones, background meaning IoU < ``neg_iou`` with every object.  At
    inference: scores above ``score_thresh``, per-class NMS at ``nms_iou``, ``detections_per_img``.
    ``image_size`` is unused: the pyramid adapts to each image.
    """
    from bench.models.classification._hog import HOG
    from bench.models.detection._hog_detector import HOGDetector

    rows, cols = window
    if cell_size < 1 or block_size < 1 or bins < 2:
        raise ValueError(f"hog_detector needs cell_size >= 1, block_size >= 1, bins >= 2; got {cell_size}, "
                         f"{block_size}, {bins}")
    if margin < 0 or min(rows, cols) - 2 * margin < 1 or min(rows, cols) < block_size:
        raise ValueError(f"hog_detector: window {window} cells must hold one {block_size}x{block_size}-cell block "
                         f"and leave an interior after a margin of {margin} cells per side")
    if scale_step <= 1 or max_upscale <= 0:
        raise ValueError(f"hog_detector needs scale_step > 1 and max_upscale > 0; got {scale_step}, {max_upscale}")
    if C <= 0 or not 0 < neg_iou <= 1 or not 0 < nms_iou <= 1:
        raise ValueError(f"hog_detector needs C > 0 and IoU thresholds in (0, 1]; got C={C}, neg_iou={neg_iou}, "
                         f"nms_iou={nms_iou}")
    if hard_negatives < 0 or random_negatives < 0 or hard_negatives + random_negatives == 0:
        raise ValueError(f"hog_detector needs some negatives per image; got hard_negatives={hard_negatives}, "
                         f"random_negatives={random_negatives}")
    hog = HOG(cell_size=cell_size, bins=bins, block_size=block_size, block_norm=block_norm, colour=colour)
    return HOGDetector(hog, num_classes, (rows, cols), margin, scale_step, max_upscale, C, loss, flip_positives,
                       hard_negatives, random_negatives, neg_iou, score_thresh, nms_iou, detections_per_img)
