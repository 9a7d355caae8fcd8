"""Accumulator for detection: validated prediction arrays, evaluated once at the end."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.evaluators import EVALUATORS, EvaluatorSpec
from bench.metrics import MetricInputError
from bench.metrics.detection import (
    Detections,
    detection_samples,
    evaluate_parsed,
    parse_ground_truth,
    parse_predictions,
    per_image_ap,
)


@EVALUATORS.register(
    "detection",
    EvaluatorSpec("detection", "COCO results as arrays (concatenated); COCO + VOC metrics on compute"),
)
class DetectionEvaluator:
    """Collects predictions for one COCO split; :meth:`compute` runs ``evaluate_coco``'s engine.

    AP needs the global score ranking, so the state is the predictions themselves (as arrays,
    validated on :meth:`update` so a bad record fails in the worker that produced it).  The GT is
    not part of the state: every process already holds it, so ``from_state(state, gt)`` takes it.
    Merge concatenates in call order, which is the order exact score ties are broken in.
    """

    def __init__(self, gt: dict[str, Any], iou_type: str = "bbox", voc_iou: float = 0.5) -> None:
        self.gt = gt
        self.iou_type = iou_type
        self.voc_iou = float(voc_iou)
        self._gt = parse_ground_truth(gt, iou_type)
        self.reset()

    def reset(self) -> None:
        """Forget all predictions."""
        self._parts: list[Detections] = []
        self._batches = 0

    def update(self, preds: list[dict[str, Any]]) -> None:
        """Add COCO result dicts (``image_id, category_id, bbox [x, y, w, h], score``; plus a
        ``segmentation`` RLE for ``segm``).  Errors name the batch and the record in it."""
        try:
            self._parts.append(parse_predictions(preds, self._gt))
        except MetricInputError as e:
            raise MetricInputError(f"update batch #{self._batches}: {e}") from None
        self._batches += 1

    def detections(self) -> Detections:
        """All predictions so far, in update/merge order."""
        if not self._parts:
            return Detections.empty(self.iou_type)
        if len(self._parts) > 1:
            self._parts = [Detections.concat(self._parts)]
        return self._parts[0]

    def compute(self, voc_legacy_coords: bool = False) -> dict[str, Any]:
        """Same keys as :func:`bench.metrics.detection.evaluate_coco`."""
        return evaluate_parsed(self._gt, self.detections(), self.voc_iou, voc_legacy_coords)

    def samples(self, voc_legacy_coords: bool = False) -> dict[str, np.ndarray]:
        """Per-image statistics for resampling (``bench.metrics.bootstrap``): the GT images (COCO ids)
        and each detection's image, class, score and TP / ignored outcome, matched once; see
        :func:`bench.metrics.detection.detection_samples`.  Pass the ``compute`` argument."""
        return detection_samples(self._gt, self.detections(), self.voc_iou, voc_legacy_coords)

    def per_image_ap(self, iou_thr: float = 0.5) -> np.ndarray:
        """Each GT image's VOC AP at ``iou_thr`` (``[I]``, NaN without GT); see ``per_image_ap``."""
        return per_image_ap(self._gt, self.detections(), iou_thr)

    def merge(self, other: DetectionEvaluator) -> DetectionEvaluator:
        """Append ``other``'s predictions after this evaluator's (in place); returns self."""
        if other.iou_type != self.iou_type:
            raise MetricInputError(
                f"cannot merge {other.iou_type} predictions into a {self.iou_type} evaluator"
            )
        self._parts.append(other.detections())
        return self

    def state(self) -> dict[str, Any]:
        """Plain picklable state (arrays + RLE dicts); the GT is not included."""
        d = self.detections()
        return {"iou_type": self.iou_type, "voc_iou": self.voc_iou, "image_id": d.image_id.copy(),
                "category_id": d.category_id.copy(), "score": d.score.copy(), "bbox": d.bbox.copy(),
                "rle": list(d.rle), "mask_area": d.mask_area.copy()}

    @classmethod
    def from_state(cls, state: dict[str, Any], gt: dict[str, Any]) -> DetectionEvaluator:
        """Inverse of :meth:`state`, given the split's GT dict."""
        ev = cls(gt, state["iou_type"], state["voc_iou"])
        ev._parts = [Detections(
            np.asarray(state["image_id"], np.int64), np.asarray(state["category_id"], np.int64),
            np.asarray(state["score"], np.float64), np.asarray(state["bbox"], np.float64).reshape(-1, 4),
            list(state["rle"]), np.asarray(state["mask_area"], np.float64),
        )]
        return ev
