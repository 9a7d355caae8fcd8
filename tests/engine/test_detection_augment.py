"""Detection augmentation moves boxes, masks and proposals with the pixels; ops are checked per task.

The scene: solid rectangles of distinct colours on black, each object's box and mask exactly its
rectangle.  After every op, each surviving object's mask must still be exactly the pixels of its
colour and its box their bounding box (exact for flips and crops; within a pixel for the rescale
of scale jitter, which resamples), and a dropped object takes its label and mask with it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.config.catalog import Catalog, effective_trial
from bench.config.loader import ConfigError
from bench.engine import detection_augment as da

# (x1, y1, x2, y2) of each object; label k + 1 is drawn in COLOURS[k].  Object 3 touches the right edge.
RECTS = [(4, 6, 20, 18), (30, 10, 41, 33), (8, 26, 18, 36), (44, 0, 50, 12)]
COLOURS = [0.2, 0.4, 0.6, 0.8]
H, W = 40, 50


def scene() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    image = torch.zeros(3, H, W)
    masks = torch.zeros(len(RECTS), H, W, dtype=torch.uint8)
    for k, (x1, y1, x2, y2) in enumerate(RECTS):
        image[:, y1:y2, x1:x2] = COLOURS[k]
        masks[k, y1:y2, x1:x2] = 1
    target = {"boxes": torch.tensor(RECTS, dtype=torch.float32), "labels": torch.arange(1, len(RECTS) + 1),
              "masks": masks, "image_id": torch.tensor(7),
              "proposals": torch.tensor(RECTS, dtype=torch.float32) + torch.tensor([1.0, 1.0, -1.0, -1.0])}
    return image, target


def mask_box(mask: torch.Tensor) -> list[float]:
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def check_exact(image: torch.Tensor, target: dict[str, torch.Tensor]) -> None:
    """Every object's mask is exactly its colour's pixels, and its box is the mask's bounding box."""
    n = len(target["boxes"])
    assert len(target["labels"]) == n and len(target["masks"]) == n
    assert target["masks"].shape[1:] == image.shape[1:]
    for box, label, mask in zip(target["boxes"], target["labels"], target["masks"], strict=True):
        colour = torch.isclose(image[0], torch.tensor(COLOURS[int(label) - 1]))
        assert torch.equal(colour, mask.bool()), f"label {int(label)}: mask and pixels differ"
        assert box.tolist() == mask_box(mask), f"label {int(label)}: box {box.tolist()} != mask's {mask_box(mask)}"


def test_flips_move_boxes_masks_and_proposals_exactly() -> None:
    for horizontal in (True, False):
        image, target = scene()
        out_img, out = da.flip(image, target, horizontal)
        check_exact(out_img, out)
        assert len(out["boxes"]) == len(RECTS)
        twice_img, twice = da.flip(out_img, out, horizontal)  # an involution
        assert torch.equal(twice_img, image) and torch.equal(twice["boxes"], target["boxes"])
        assert torch.equal(twice["proposals"], target["proposals"])
    _, out = da.flip(*scene(), horizontal=True)
    assert out["boxes"][0].tolist() == [W - 20, 6, W - 4, 18]
    assert out["proposals"][0].tolist() == [W - 19, 7, W - 5, 17]


def test_window_clips_and_drops_with_labels_and_masks() -> None:
    image, target = scene()
    # Window x in [10, 45), y in [5, 30): object 1 cut to x 10..20, object 2 cut to y ..30, object 3
    # (y 26..36, x 8..18) cut to a 8 x 4 piece, object 4 (x 44..50) left 1 px wide: all kept.
    out_img, out = da.window(image, target, top=5, left=10, height=25, width=35)
    assert out_img.shape == (3, 25, 35)
    check_exact(out_img, out)
    assert out["boxes"].tolist() == [[0, 1, 10, 13], [20, 5, 31, 25], [0, 21, 8, 25], [34, 0, 35, 7]]
    # A window that misses object 2 (x 30..41) and object 4 entirely: they go, with their labels and masks.
    out_img, out = da.window(image, target, top=0, left=0, height=40, width=25)
    check_exact(out_img, out)
    assert out["labels"].tolist() == [1, 3]
    assert len(out["proposals"]) == 2 and (out["proposals"][:, 2] <= 25).all()


def test_random_crop_and_scale_jitter_keep_pixels_and_targets_together() -> None:
    torch.manual_seed(0)
    dropped = 0
    for _ in range(30):
        img, out = da.random_crop(*scene())
        check_exact(img, out)
        dropped += len(RECTS) - len(out["boxes"])
    assert dropped > 0  # the crop range does cut objects out, and they were dropped consistently
    checked = 0
    for _ in range(30):
        img, out = da.scale_jitter(*scene())
        assert img.shape == (3, H, W) and out["masks"].shape[1:] == (H, W)
        for box, label, mask in zip(out["boxes"], out["labels"], out["masks"], strict=True):
            # Bilinear resampling blends the border pixels; nearest masks sample pixel centres, so the
            # mask's bounding box and the scaled box agree within a pixel.
            assert max(abs(a - b) for a, b in zip(box.tolist(), mask_box(mask), strict=True)) <= 1.0
            # The mask's interior (2 px in from its edge, beyond the antialiasing filter's reach) is the
            # object's own colour, unblended: the mask sits on the object's pixels.
            inner = (-torch.nn.functional.max_pool2d(-mask[None].float(), 5, stride=1, padding=2))[0].bool()
            checked += int(inner.any())
            deviation = (img[0][inner] - COLOURS[int(label) - 1]).abs()
            assert not len(deviation) or deviation.max() < 1e-3, f"label {int(label)}: mask not on its pixels"
    assert checked >= 30  # objects 1-3 keep an interior in most draws


def test_scale_jitter_changes_object_size_on_a_fixed_canvas() -> None:
    image, target = scene()
    img, out = da.rescale(image, target, 1.2)
    assert img.shape == (3, 48, 60)
    assert out["boxes"][0].tolist() == pytest.approx([4.8, 7.2, 24.0, 21.6])
    img, out = da.pad_to(*da.rescale(image, target, 0.8), height=H, width=W, top=3, left=5)
    assert img.shape == (3, H, W) and float(img[0, 0, 0]) == da.PAD_VALUE
    assert out["boxes"][0].tolist() == pytest.approx([4 * 0.8 + 5, 6 * 0.8 + 3, 20 * 0.8 + 5, 18 * 0.8 + 3])


def test_augment_detection_applies_ops_and_rejects_unknown() -> None:
    torch.manual_seed(1)
    img, out = da.augment_detection(*scene(), ("hflip", "vflip", "crop"))
    check_exact(img, out)
    assert int(out["image_id"]) == 7
    with pytest.raises(ValueError, match="'rot90' is not a detection transform; valid: hflip"):
        da.augment_detection(*scene(), ("rot90",))


def test_training_split_only(project: Path) -> None:
    cat = Catalog(project / "configs")
    cfg = effective_trial(cat.model("faster_rcnn"), cat.dataset("shapes"), cat.profile("smoke"), seed=0,
                          overrides={"train": {"augment": ["crop"]}})
    from bench.engine.detection import DetectionTask

    task = DetectionTask(cfg, project / cfg.dataset.root)
    assert task.dataset("train", train=True).ops == ("crop",)
    assert task.dataset("val", train=False).ops == ()


def test_ops_are_checked_against_the_task(project: Path) -> None:
    cat = Catalog(project / "configs")
    with pytest.raises(ConfigError, match=r"rot90 is not a detection transform; valid for detection: hflip, vflip, "
                                          r"scale_jitter, crop, color_shift"):
        effective_trial(cat.model("faster_rcnn"), cat.dataset("shapes"), cat.profile("smoke"), seed=0,
                        overrides={"train": {"augment": ["hflip", "rot90"]}})
    with pytest.raises(ConfigError, match="scale_jitter is not a classification transform; valid for classification"):
        effective_trial(cat.model("resnet18"), cat.dataset("shapes"), cat.profile("smoke"), seed=0,
                        overrides={"train": {"augment": ["scale_jitter"]}})


def one_square(k: int, x1: int, y1: int, size: int, height: int = H, width: int = W) -> tuple[
        torch.Tensor, dict[str, torch.Tensor]]:
    """A ``height x width`` black image with one square of COLOURS[k] (label k + 1), its box and mask."""
    image = torch.zeros(3, height, width)
    image[:, y1:y1 + size, x1:x1 + size] = COLOURS[k]
    masks = torch.zeros(1, height, width, dtype=torch.uint8)
    masks[0, y1:y1 + size, x1:x1 + size] = 1
    return image, {"boxes": torch.tensor([[x1, y1, x1 + size, y1 + size]], dtype=torch.float32),
                   "labels": torch.tensor([k + 1]), "masks": masks, "image_id": torch.tensor(k)}


def test_mosaic_boxes_and_masks_follow_the_pixels() -> None:
    """Four images, one square of its own colour each, at random centres: every kept square's box and mask
    are exactly its pixels, and a dropped square's pixels are gone from the canvas too."""
    torch.manual_seed(0)
    kept = dropped = 0
    for _ in range(40):
        items = [one_square(k, int(torch.randint(0, W - 14, ())), int(torch.randint(0, H - 14, ())), 14)
                 for k in range(4)]
        img, out = da.mosaic(items)
        assert img.shape == (3, H, W) and int(out["image_id"]) == 0
        check_exact(img, out)
        for k in range(4):
            if k + 1 not in out["labels"].tolist():
                assert not torch.isclose(img[0], torch.tensor(COLOURS[k])).any(), f"square {k} dropped, pixels kept"
        kept += len(out["labels"])
        dropped += 4 - len(out["labels"])
    assert kept > 40 and dropped > 0


def test_mosaic_hand_built_quadrants_and_drops() -> None:
    """Centre (x 25, y 20) on the 40 x 50 scene, four copies: each quadrant shows the copy's part next to the
    centre; objects outside that part are dropped with their labels and masks."""
    img, out = da.mosaic([scene() for _ in range(4)], centre=(25, 20))
    # Top-left shows the scene's rows 20..40, cols 25..50 (object 2 cut to y 20..33); top-right rows 20..40,
    # cols 0..25 moved right by 25 (object 3); bottom-left rows 0..20, cols 25..50 moved down by 20 (objects
    # 2 and 4); bottom-right rows 0..20, cols 0..25 moved by (25, 20) (object 1).
    assert out["labels"].tolist() == [2, 3, 2, 4, 1]
    assert out["boxes"].tolist() == [[5, 0, 16, 13], [33, 6, 43, 16], [5, 30, 16, 40], [19, 20, 25, 32],
                                     [29, 26, 45, 38]]
    assert out["masks"].shape == (5, H, W)
    for box, mask in zip(out["boxes"], out["masks"], strict=True):
        assert box.tolist() == mask_box(mask)
    # Proposals (each object's box shrunk by 1 px) move, clip and drop as the boxes do.
    assert out["proposals"].tolist() == [[6, 0, 15, 12], [34, 7, 42, 15], [6, 31, 15, 40], [20, 21, 24, 31],
                                         [30, 27, 44, 37]]
    assert float(img[0, 0, 5]) == pytest.approx(COLOURS[1]) and float(img[0, 39, 44]) == 0.0
    with pytest.raises(ValueError, match="mosaic combines 4"):
        da.mosaic([scene()] * 3)


def test_mosaic_resizes_each_image_to_the_canvas() -> None:
    """An item half the canvas size is upscaled 2x before its window is cut: its box doubles."""
    small = one_square(1, 2, 3, 6, height=H // 2, width=W // 2)  # box (2, 3, 8, 9) on 20 x 25
    items = [one_square(0, 0, 0, 4), small, one_square(2, 0, 0, 4), one_square(3, 0, 0, 4)]
    _, out = da.mosaic(items, centre=(0, 40))  # the whole canvas is the top-right quadrant: item 1, uncut
    assert out["labels"].tolist() == [2]
    assert out["boxes"].tolist() == [[4, 6, 16, 18]]
    assert mask_box(out["masks"][0]) == [4, 6, 16, 18]


def test_dataset_mosaic_draws_three_items_with_torchs_generator(tmp_path: Path) -> None:
    from PIL import Image

    from bench.engine.data import DetectionDataset

    # Eight 16 x 20 images, each one colour with one whole-image box of its own category.
    gt: dict = {"images": [], "annotations": [], "categories": [{"id": c, "name": str(c)} for c in range(8)]}
    for i in range(8):
        Image.new("RGB", (20, 16), (30 * i, 0, 0)).save(tmp_path / f"{i}.png")
        gt["images"].append({"id": i, "file_name": f"{i}.png", "width": 20, "height": 16})
        gt["annotations"].append({"id": i, "image_id": i, "category_id": i, "bbox": [0, 0, 20, 16], "area": 320,
                                  "iscrowd": 0})
    ds = DetectionDataset(gt, tmp_path, ops=("mosaic", "hflip"))
    torch.manual_seed(3)
    others = torch.randint(0, 8, (3,)).tolist()
    torch.manual_seed(3)
    img, target = ds[5]
    assert img.shape == (3, 16, 20) and int(target["image_id"]) == 5
    # Every quadrant keeps its item's whole-image box (the centre stays inside), in quadrant order.
    assert target["labels"].tolist() == [6, *(j + 1 for j in others)]
    reds = {round(float(v) * 255) for v in img[0].unique()}
    assert reds == {30 * j for j in [5, *others]}
    with pytest.raises(ValueError, match="mosaic combines four items"):
        da.augment_detection(*scene(), ("mosaic",))
    # A training subset (max_train_images) draws the partners from itself, not from the whole split.
    from bench.engine.data import subsample

    sub = subsample(ds, 2, seed=0)
    members = {ds.images[i]["id"] for i in ds.pool}
    assert len(members) == 2
    for k in range(10):
        assert {label - 1 for label in sub[k % 2][1]["labels"].tolist()} <= members


def test_mosaic_is_a_detection_op_in_config(project: Path) -> None:
    cat = Catalog(project / "configs")
    cfg = effective_trial(cat.model("faster_rcnn"), cat.dataset("shapes"), cat.profile("smoke"), seed=0,
                          overrides={"train": {"augment": ["mosaic", "hflip"]}})
    assert tuple(cfg.train.augment) == ("mosaic", "hflip")
    with pytest.raises(ConfigError, match="mosaic is not a classification transform"):
        effective_trial(cat.model("resnet18"), cat.dataset("shapes"), cat.profile("smoke"), seed=0,
                        overrides={"train": {"augment": ["mosaic"]}})
