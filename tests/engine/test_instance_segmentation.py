"""The instance_segmentation task on shapes, with a small torchvision Mask R-CNN built here.

Dataset masks decode from the COCO RLEs and sit exactly inside their boxes; predicted masks are
RLE-encoded and scored on boxes and masks (``mask_*``); per-image samples resample to the computed
metrics; ``bench eval detection --iou-type segm`` accepts the written results; one tiny epoch of
``train_and_test`` runs end to end (untrained baseline, bootstrap samples, efficiency).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from bench.config.catalog import Catalog, effective_trial
from bench.engine.instance_segmentation import InstanceSegmentationTask, encode_masks, to_coco_segm_results
from bench.evaluators.instance_segmentation import InstanceSegmentationEvaluator
from bench.metrics import MetricInputError
from bench.metrics.bootstrap import bootstrap_ci, resample_metrics
from bench.tasks import TASKS

HEADLINE = TASKS.get("instance_segmentation").meta.headline_metrics


def make_task(project: Path, **train: Any) -> InstanceSegmentationTask:
    """The task on shapes' instance_segmentation view, with faster_rcnn's smoke trial settings."""
    cat = Catalog(project / "configs")
    cfg = effective_trial(cat.model("faster_rcnn"), cat.dataset("shapes"), cat.profile("smoke"), seed=0,
                          overrides={"train": train} if train else None)
    cfg = cfg.model_copy(update={"task": "instance_segmentation"})
    return InstanceSegmentationTask(cfg, project / cfg.dataset.root)


def tiny_mask_rcnn(num_classes: int = 3) -> torch.nn.Module:
    """torchvision's Mask R-CNN on a 3-conv stride-8 backbone (one feature map), images kept at 64 px,
    narrow heads and few proposals (the method unchanged, the cost a few seconds)."""
    from torch import nn
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign

    torch.manual_seed(0)
    backbone = nn.Sequential(*(m for c_in, c_out in ((3, 16), (16, 32), (32, 32))
                               for m in (nn.Conv2d(c_in, c_out, 3, 2, 1), nn.ReLU())))
    backbone.out_channels = 32  # type: ignore[assignment]
    return MaskRCNN(
        backbone, num_classes=None, min_size=64, max_size=64, box_predictor=FastRCNNPredictor(64, num_classes + 1),
        rpn_anchor_generator=AnchorGenerator(((12, 24, 36),), ((0.5, 1.0, 2.0),)),
        box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2), mask_roi_pool=MultiScaleRoIAlign(["0"], 14, 2),
        mask_head=MaskRCNNHeads(32, [32, 32], 1), mask_predictor=MaskRCNNPredictor(32, 32, num_classes + 1),
        box_head=TwoMLPHead(32 * 7 * 7, 64), rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=100,
        rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=50, box_batch_size_per_image=64,
        box_detections_per_img=20,
    )


def batch_of(task: InstanceSegmentationTask, split: str, n: int) -> tuple[list[torch.Tensor], list[dict]]:
    ds = task.dataset(split, train=False)
    return task.collate([ds[i] for i in range(n)])


def perfect(targets: list[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
    """The ground truth as predictions (masks as probabilities ``[N, 1, H, W]``)."""
    return [{"boxes": t["boxes"], "labels": t["labels"], "scores": torch.linspace(1, 0.5, len(t["boxes"])),
             "masks": t["masks"][:, None].float()} for t in targets]


def test_dataset_masks_decode_inside_their_boxes(project: Path) -> None:
    task = make_task(project)
    ds = task.dataset("val", train=False)
    n_objects = 0
    for i in range(20):
        image, target = ds[i]
        masks = target["masks"]
        assert masks.dtype == torch.uint8 and masks.shape == (len(target["boxes"]), *image.shape[1:])
        assert set(masks.unique().tolist()) <= {0, 1}
        for box, mask in zip(target["boxes"], masks, strict=True):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            # shapes' boxes are the tight boxes of its masks: pixel-exact.
            assert box.tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
            n_objects += 1
    assert n_objects >= 20
    # The detection task's dataset does not pay for decoding.
    from bench.engine.detection import DetectionTask

    assert "masks" not in DetectionTask(task.cfg, task.dataset_root).dataset("val", False)[0][1]


def test_polygon_segmentations_decode(tmp_path: Path) -> None:
    from PIL import Image

    from bench.engine.data import DetectionDataset

    Image.new("RGB", (10, 8)).save(tmp_path / "a.png")
    gt = {"images": [{"id": 1, "file_name": "a.png", "width": 10, "height": 8}],
          "categories": [{"id": 5, "name": "x"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 5, "bbox": [2, 1, 4, 3], "area": 12, "iscrowd": 0,
                           "segmentation": [[2, 1, 6, 1, 6, 4, 2, 4]]}]}
    _, target = DetectionDataset(gt, tmp_path, masks=True)[0]
    ys, xs = torch.nonzero(target["masks"][0], as_tuple=True)
    assert (xs.min(), ys.min()) == (2, 1) and 3 <= xs.max() <= 6 and 2 <= ys.max() <= 4
    del gt["annotations"][0]["segmentation"]
    with pytest.raises(ValueError, match=r"a.png \(id=1\): annotation id=1 has no 'segmentation'"):
        DetectionDataset(gt, tmp_path, masks=True)[0]


def test_encode_masks_thresholds_at_half() -> None:
    from faster_coco_eval.core import mask as mask_utils

    probs = torch.zeros(2, 1, 6, 7)
    probs[0, 0, 1:3, 2:5] = 0.51
    probs[1, 0, 4:, :] = 0.5  # exactly 0.5 is background (torchvision pastes with > 0.5)
    rles = encode_masks(probs)
    assert all(isinstance(r["counts"], str) and r["size"] == [6, 7] for r in rles)
    assert mask_utils.area(rles).tolist() == [6, 0]
    assert json.loads(json.dumps(rles)) == rles
    with pytest.raises(ValueError, match=r"\[N, 1, H, W\]"):
        encode_masks(probs[:, 0])


def test_predictions_score_on_boxes_and_masks(project: Path) -> None:
    task = make_task(project)
    images, targets = batch_of(task, "val", 8)
    ev = task.evaluator("val", subset=range(8))
    task.update(ev, (images, targets), perfect(targets))
    m = ev.compute()
    assert {k: m[k] for k in HEADLINE} == dict.fromkeys(HEADLINE, 1.0)
    assert set(m["mask_per_class"]) == {"circle", "square", "triangle"}
    # Masks shifted by 3 px, boxes kept: the box metrics stay, the mask ones drop.
    shifted = [{**o, "masks": torch.roll(o["masks"], 3, dims=-1)} for o in perfect(targets)]
    ev = task.evaluator("val", subset=range(8))
    task.update(ev, (images, targets), shifted)
    m = ev.compute()
    assert m["mAP"] == 1.0 and m["mask_mAP"] < 0.5 and m["mask_mAP_50"] > m["mask_mAP_75"]
    # The per-image samples give back the computed headline metrics, and a bootstrap interval.
    s = ev.samples()
    assert resample_metrics("instance_segmentation", s, np.ones(len(s["image_id"]))) == {k: m[k] for k in HEADLINE}
    ci = bootstrap_ci("instance_segmentation", s, 50, seed=0)
    assert ci["mAP"] == (1.0, 1.0) and ci["mask_mAP"][0] <= m["mask_mAP"] <= ci["mask_mAP"][1]


def test_missing_masks_are_an_error(project: Path) -> None:
    task = make_task(project)
    images, targets = batch_of(task, "val", 2)
    no_masks = [{k: v for k, v in o.items() if k != "masks"} for o in perfect(targets)]
    with pytest.raises(ValueError, match="must return 'masks'"):
        task.update(task.evaluator("val"), (images, targets), no_masks)
    with pytest.raises(MetricInputError, match="needs both 'bbox' and a 'segmentation'"):
        InstanceSegmentationEvaluator(task.eval_gt("val")).update([{"image_id": 1, "category_id": 1, "score": 1.0,
                                                                    "bbox": [0, 0, 1, 1]}])


def test_mask_rcnn_outputs_evaluate_and_bench_eval_accepts_them(project: Path, tmp_path: Path) -> None:
    task = make_task(project)
    model = tiny_mask_rcnn()
    images, targets = batch_of(task, "train", 4)
    model.train()
    losses = model(images, targets)
    assert {"loss_mask", "loss_classifier"} <= set(losses) and all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        outputs = task.predict(model, (images, targets), torch.device("cpu"))
    for out, im in zip(outputs, images, strict=True):
        assert out["masks"].shape == (len(out["boxes"]), 1, *im.shape[1:])
    assert sum(len(o["boxes"]) for o in outputs) > 0  # an untrained RPN still proposes
    ev = task.evaluator("train", subset=range(4))
    task.update(ev, (images, targets), outputs)
    assert set(HEADLINE) <= set(ev.compute())
    # Written as JSON, the same results go through `bench eval detection` for boxes and for masks.
    results = to_coco_segm_results(targets, outputs, task.label_to_cat)
    (tmp_path / "gt.json").write_text(json.dumps(task.eval_gt("train", range(4))))
    (tmp_path / "pred.json").write_text(json.dumps(results))
    from bench.cli.eval import app

    for iou_type in ("bbox", "segm"):
        res = CliRunner().invoke(app, ["detection", "--gt", str(tmp_path / "gt.json"), "--pred",
                                       str(tmp_path / "pred.json"), "--iou-type", iou_type,
                                       "--out", str(tmp_path / f"{iou_type}.json")])
        assert res.exit_code == 0, res.output
        assert json.loads((tmp_path / f"{iou_type}.json").read_text())["iou_type"] == iou_type


def test_train_and_test_end_to_end(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.engine.trainer import train_and_test

    task = make_task(project, epochs=1, max_train_images=8, max_eval_images=6, batch_size=4,
                     augment=["hflip", "scale_jitter", "crop"], checkpoint=False, bootstrap_samples=20)
    monkeypatch.setattr(InstanceSegmentationTask, "build_model", lambda self: tiny_mask_rcnn())
    out = train_and_test(task.cfg, project / task.cfg.dataset.root, tmp_path / "run", progress=lambda e: None)
    assert set(HEADLINE) <= set(out.metrics) and out.test_images == 6
    assert out.baseline is not None and out.baseline.metric == "mask_mAP"
    assert out.samples is not None and "mask_coco_tp" in out.samples
    assert resample_metrics("instance_segmentation", out.samples, np.ones(len(out.samples["image_id"]))) == {
        k: out.metrics[k] for k in HEADLINE}
    assert "efficiency_error" not in out.extras, out.extras


def test_view_format_must_serve_the_task(project: Path) -> None:
    from bench.config.loader import ConfigError
    from bench.config.schema import DatasetView

    cat = Catalog(project / "configs")
    shapes = cat.dataset("shapes")
    assert shapes.views["instance_segmentation"].format == "coco"  # the COCO view serves both detection tasks
    wrong = shapes.model_copy(update={"views": {**shapes.views, "detection": DatasetView(format="masks", path=".")}})
    with pytest.raises(ConfigError, match="views.detection uses format 'masks', which serves semantic_segmentation, "
                                          "not detection; pick a format for detection: coco"):
        effective_trial(cat.model("faster_rcnn"), wrong, cat.profile("smoke"), seed=0)
