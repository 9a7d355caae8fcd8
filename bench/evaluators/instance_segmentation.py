"""Accumulator for instance segmentation: one results list, scored on boxes and on masks."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.evaluators import EVALUATORS, EvaluatorSpec
from bench.evaluators.detection import DetectionEvaluator
from bench.metrics import MetricInputError

#: Prefix of the mask (``segm``) metrics and samples; the box metrics keep the detection names.
MASK = "mask_"


def mask_records(preds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``segm`` view of COCO results: the records without ``bbox``.

    pycocotools takes every result's area from its ``bbox`` when the first result has one, which
    would put masks in the small/medium/large ranges by their box; Detectron2 drops the box for
    mask AP for the same reason, so mask areas decide the ranges here too.
    """
    return [{k: v for k, v in p.items() if k != "bbox"} for p in preds]


@EVALUATORS.register(
    "instance_segmentation",
    EvaluatorSpec("instance_segmentation", "COCO results with RLE masks; bbox metrics + mask_-prefixed segm metrics"),
)
class InstanceSegmentationEvaluator:
    """Two :class:`DetectionEvaluator` s over the same results: ``bbox`` and ``segm``.

    :meth:`compute` returns the box metrics under the detection names (``mAP``, ``mAP_50``, ...,
    ``per_class``) and the mask metrics prefixed ``mask_`` (``mask_mAP``, ``mask_mAP_50``, ...,
    ``mask_per_class``), so an instance-segmentation model ranks on the detection leaderboard by
    its boxes.  :meth:`samples` likewise: the box samples as detection's, the mask ones prefixed.
    """

    def __init__(self, gt: dict[str, Any], voc_iou: float = 0.5) -> None:
        self.gt = gt
        self.voc_iou = float(voc_iou)
        self.box = DetectionEvaluator(gt, "bbox", voc_iou)
        self.mask = DetectionEvaluator(gt, "segm", voc_iou)

    def reset(self) -> None:
        """Forget all predictions."""
        self.box.reset()
        self.mask.reset()

    def update(self, preds: list[dict[str, Any]]) -> None:
        """Add COCO results carrying both ``bbox [x, y, w, h]`` and a ``segmentation`` RLE."""
        missing = next((i for i, p in enumerate(preds) if "segmentation" not in p or "bbox" not in p), None)
        if missing is not None:
            raise MetricInputError(f"prediction #{missing} (image_id={preds[missing].get('image_id')}): an instance "
                                   "segmentation result needs both 'bbox' and a 'segmentation' RLE")
        self.box.update(preds)
        self.mask.update(mask_records(preds))

    def compute(self, voc_legacy_coords: bool = False) -> dict[str, Any]:
        """Box metrics (``DetectionEvaluator.compute`` keys) plus every mask metric prefixed ``mask_``."""
        out = self.box.compute(voc_legacy_coords)
        mask = self.mask.compute(voc_legacy_coords)
        out.update({MASK + k: v for k, v in mask.items() if k not in ("spec", "voc_iou", "voc_legacy_coords")})
        out["iou_type"] = "bbox+segm"
        return out

    def samples(self, voc_legacy_coords: bool = False) -> dict[str, np.ndarray]:
        """Box samples (``detection_samples`` keys) and the mask ones prefixed ``mask_``, sharing ``image_id``."""
        out = self.box.samples(voc_legacy_coords)
        mask = self.mask.samples(voc_legacy_coords)
        out.update({MASK + k: v for k, v in mask.items() if k != "image_id"})
        return out

    def per_image_ap(self, iou_thr: float = 0.5, kind: str = "segm") -> np.ndarray:
        """Each GT image's VOC AP at ``iou_thr`` on masks (``segm``) or boxes (``bbox``): ``[I]``."""
        return (self.mask if kind == "segm" else self.box).per_image_ap(iou_thr)

    def merge(self, other: InstanceSegmentationEvaluator) -> InstanceSegmentationEvaluator:
        """Append ``other``'s predictions after this evaluator's (in place); returns self."""
        self.box.merge(other.box)
        self.mask.merge(other.mask)
        return self

    def state(self) -> dict[str, Any]:
        """Plain picklable state: the two detection states (the GT is not included)."""
        return {"voc_iou": self.voc_iou, "box": self.box.state(), "mask": self.mask.state()}

    @classmethod
    def from_state(cls, state: dict[str, Any], gt: dict[str, Any]) -> InstanceSegmentationEvaluator:
        """Inverse of :meth:`state`, given the split's GT dict."""
        ev = cls.__new__(cls)  # not __init__: from_state parses the GT itself, once per evaluator
        ev.gt, ev.voc_iou = gt, float(state["voc_iou"])
        ev.box = DetectionEvaluator.from_state(state["box"], gt)
        ev.mask = DetectionEvaluator.from_state(state["mask"], gt)
        return ev
