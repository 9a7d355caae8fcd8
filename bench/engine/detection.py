"""Detection: torchvision-style detectors (loss dict in train mode), COCO results into the evaluator."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from bench.config.catalog import TrialConfig
from bench.engine import anchors
from bench.engine.base import Task
from bench.engine.data import DetectionDataset, list_collate
from bench.engine.proposals import SplitProposals, dataset_version, for_split, settings_of, split_tag
from bench.evaluators.detection import DetectionEvaluator
from bench.metrics.significance import BaselineTest, paired_baseline
from bench.models import MODELS, build_model


class DetectionTask(Task):
    collate = staticmethod(list_collate)
    untrained_baseline = True  # no trivial detector: the baseline is the architecture at initialisation
    with_masks = False  # the targets carry each object's mask (instance segmentation)
    baseline_metric, baseline_unit = "mAP", "AP@0.5"  # what the untrained baseline is scored and tested on

    def __init__(self, cfg: TrialConfig, dataset_root: Path) -> None:
        super().__init__(cfg, dataset_root)
        self.dataset_root = dataset_root
        # Proposal-based models (rcnn, spp_net, fast_rcnn): their builder's `proposals` settings.
        self.proposal_settings = settings_of(MODELS.get(cfg.builder).obj, cfg.params)
        self._proposals: dict[str, SplitProposals] = {}
        self._anchors: anchors.SplitAnchors | None = None

    def build_model(self) -> nn.Module:
        model = build_model(self.cfg.builder, self.num_classes, self.cfg.train.image_size,
                            {**self.cfg.params, **self.anchor_params()})
        if bool(getattr(model, "uses_proposals", False)) != (self.proposal_settings is not None):
            raise TypeError(
                f"model {self.cfg.builder!r}: `uses_proposals = True` and a builder parameter `proposals` "
                "(bench.engine.proposals.ProposalSettings) go together; it has only one of them"
            )
        return model

    def anchor_params(self) -> dict[str, Any]:
        """``{"anchors": k-means anchors}`` for a builder with an ``anchors`` parameter left unset (None);
        ``{}`` otherwise.

        The anchors are clustered on the training split's boxes at the model's input size, k = the builder's
        ``num_anchors`` (``bench.engine.anchors``); computed once per task (the untrained baseline and a
        checkpoint reload build the model again) and cached on disk.
        """
        builder = MODELS.get(self.cfg.builder).obj
        sig = inspect.signature(builder).parameters
        if "anchors" not in sig or self.cfg.params.get("anchors", sig["anchors"].default) is not None:
            return {}
        if self._anchors is None:
            k = int(self.cfg.params.get("num_anchors", sig["num_anchors"].default))
            view = self.cfg.dataset.views[self.cfg.task]
            version = dataset_version(self.dataset_root, self.cfg.dataset.dvc_file, self.cfg.dataset.root)
            tag = split_tag(view.format, view.path, self.cfg.dataset.splits["train"])
            size = self.cfg.train.image_size
            self._anchors = anchors.for_training_split(self.records("train").gt, k, size,
                                                       anchors.cache_file(version, tag, k, size))
        return {"anchors": self._anchors.anchors}

    def extras(self) -> dict[str, Any]:
        """The k-means anchors the model was built with (logged to MLflow by the driver)."""
        return {} if self._anchors is None else {"anchors": self._anchors.record()}

    def dataset(self, split: str, train: bool) -> Dataset:
        """The split's images and boxes; ``train.augment`` (box-aware ops) on the training split only."""
        rec = self.records(split)
        return DetectionDataset(rec.gt, rec.image_root, masks=self.with_masks,
                                ops=self.cfg.train.augment if train else (), proposals=self.split_proposals(split, rec))

    def split_proposals(self, split: str, rec: Any) -> Callable[[int], np.ndarray] | None:
        """Selective-search boxes by image id (cached on disk, ``bench.engine.proposals``) for a
        proposal-based model; None for the others."""
        if self.proposal_settings is None:
            return None
        if split not in self._proposals:  # once per task: validation builds its dataset every epoch
            images = [(im["id"], rec.image_root / im["file_name"]) for im in DetectionDataset.image_order(rec.gt)]
            self._proposals[split] = for_split(self.cfg, self.dataset_root, split, images, self.proposal_settings)
        return self._proposals[split].boxes

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        images, targets = batch
        images = [im.to(device, non_blocking=True) for im in images]
        targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
        losses = model(images, targets)
        return sum(losses.values())  # type: ignore[return-value]

    def predict(self, model: nn.Module, batch: Any, device: torch.device) -> list[dict[str, torch.Tensor]]:
        images = [im.to(device, non_blocking=True) for im in batch[0]]
        if getattr(model, "uses_proposals", False):
            # Their regions come in the targets, in eval too; only the proposals, never the ground truth.
            return model(images, [{"proposals": t["proposals"].to(device)} for t in batch[1]])
        return model(images)

    def evaluator(self, split: str, subset: Sequence[int] | None = None) -> DetectionEvaluator:
        return DetectionEvaluator(gt=self.eval_gt(split, subset), iou_type="bbox")

    def eval_gt(self, split: str, subset: Sequence[int] | None = None) -> dict[str, Any]:
        """The COCO ground truth of the evaluated images only: with a subsample, the images never run
        would otherwise count as missed objects and lower the mAP."""
        gt = self.records(split).gt
        if subset is not None:
            order = DetectionDataset.image_order(gt)
            ids = {order[i]["id"] for i in subset}
            gt = {**gt, "images": [im for im in gt["images"] if im["id"] in ids],
                  "annotations": [a for a in gt["annotations"] if a["image_id"] in ids]}
        return gt

    def update(self, evaluator: Any, batch: Any, outputs: list[dict[str, torch.Tensor]]) -> None:
        evaluator.update(to_coco_results(batch[1], outputs, self.label_to_cat))

    def baseline(self, test: Any, untrained: Any | None) -> BaselineTest | None:
        """The untrained model on the same test images; sign test over the images' AP at IoU 0.5 (mask AP
        for instance segmentation: the evaluator's ``per_image_ap``)."""
        if untrained is None:
            return None
        score = untrained.compute()[self.baseline_metric]
        return paired_baseline("untrained model", self.baseline_metric, score, test.per_image_ap(0.5),
                               untrained.per_image_ap(0.5), self.baseline_unit)

    @property
    def label_to_cat(self) -> dict[int, int]:
        """Contiguous label (1..K) -> COCO category id, the inverse of the dataset's mapping."""
        if not hasattr(self, "_label_to_cat"):
            cats = sorted(c["id"] for c in self.records("val").gt["categories"])
            self._label_to_cat = {k + 1: cid for k, cid in enumerate(cats)}
        return self._label_to_cat


def to_coco_results(
    targets: list[dict[str, torch.Tensor]], outputs: list[dict[str, torch.Tensor]], label_to_cat: dict[int, int]
) -> list[dict[str, Any]]:
    """Detector outputs (``boxes [N, 4] xyxy``, ``scores [N]``, ``labels [N]``) -> COCO results list."""
    results = []
    for tgt, out in zip(targets, outputs, strict=True):
        image_id = int(tgt["image_id"])
        boxes = out["boxes"].detach().float().cpu()
        xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()
        for box, score, label in zip(xywh, out["scores"].tolist(), out["labels"].tolist(), strict=True):
            results.append(
                {"image_id": image_id, "category_id": label_to_cat[int(label)], "bbox": box, "score": float(score)}
            )
    return results
