"""hog_detector: the sliding-window path against HOG computed directly, and the geometry of the pyramid.

* a window's descriptor taken from a pyramid level's block grid equals ``HOG`` of that window's
  pixels cut out of the level (with one pixel of context for the border derivatives), on a scale-1
  level and on a resized one; the convolution that scores all windows equals the SVM applied to
  those descriptors;
* a ground-truth box warped onto the window (the positive path) gives the same descriptor as the
  scanned window whose interior is that box;
* a box found on a level maps back to image coordinates: a template SVM finds two squares, one only
  on the 2x upsampled level and one on the scale-1 level of a non-square image, at their exact boxes;
* hard negative mining returns background windows only, among them each class's top scorers;
* at the reference configuration the descriptor and the SVM have OpenCV's sizes (3780, 3781).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

from bench.models import build_model
from bench.models.classification._hog import HOG

SMALL = {"cell_size": 4, "window": (6, 6), "margin": 1, "scale_step": 1.2, "max_upscale": 1.6}


def detector(**kw: object) -> torch.nn.Module:
    return build_model("hog_detector", 3, 64, {**SMALL, **kw}).eval()


def crop_with_context(level: torch.Tensor, r: int, c: int, model: torch.nn.Module) -> torch.Tensor:
    """Window ``(r, c)``'s pixels of a padded level image ``[1, 3, h, w]`` plus one pixel per side."""
    cs, (rows, cols) = model.hog.cell_size, model.window
    return level[..., r * cs - 1:(r + rows) * cs + 1, c * cs - 1:(c + cols) * cs + 1]


@pytest.mark.parametrize("level_index", [0, 2])
def test_window_descriptor_equals_hog_of_the_crop(level_index: int) -> None:
    torch.manual_seed(0)
    model = detector(max_upscale=1.0 if level_index == 0 else 1.6)
    x = torch.rand(1, 3, 40, 52)  # non-square: the per-axis scales differ
    level = model.pyramid(x)[level_index]
    size = model.level_sizes(40, 52)[level_index]
    img = model.level_image(x, size)
    if level_index == 0:  # scale 1: the level is the image itself, margin-padded by replication
        pad = model.margin * model.hog.cell_size
        torch.testing.assert_close(img, F.pad(x, (pad,) * 4, mode="replicate"))
    else:  # the documented resize: bilinear, antialiased, to whole cells
        assert size == (round(40 * 1.6 / 1.44 / 4) * 4, round(52 * 1.6 / 1.44 / 4) * 4)
        assert (level.scale_y, level.scale_x) == (size[0] / 40, size[1] / 52)
    nr, nc = model.grid_shape(level)
    assert (nr, nc) == (img.shape[-2] // 4 - 6 + 1, img.shape[-1] // 4 - 6 + 1)
    hog = HOG(cell_size=4)
    picks = [(r, c) for r in range(1, nr - 1) for c in range(1, nc - 1)][::7]  # away from the level border
    assert len(picks) >= 4
    b = torch.zeros(len(picks), dtype=torch.int64)
    r, c = (torch.tensor(v) for v in zip(*picks, strict=True))
    scanned = model.window_descriptors(level.blocks, b, r, c)
    direct = torch.cat([hog.block_grid(crop_with_context(img, ri, ci, model), context=True).flatten(1)
                        for ri, ci in picks])
    assert scanned.shape == (len(picks), 900)
    torch.testing.assert_close(scanned, direct, atol=1e-5, rtol=0)
    # The convolution scores every window as the SVM scores its descriptor.
    torch.nn.init.normal_(model.svm.weight)
    torch.nn.init.normal_(model.svm.bias)
    with torch.no_grad():
        maps = model.score_maps(level.blocks)[0]  # [K, nr, nc]
        torch.testing.assert_close(maps[:, r, c].T, model.svm(direct), atol=1e-4, rtol=1e-5)


def test_context_crop_differs_from_reflected_border() -> None:
    # The context pixel matters: without it the crop's border derivatives reflect, and the
    # descriptor of a textured crop differs (so the test above could fail).
    torch.manual_seed(1)
    img = torch.rand(1, 3, 26, 26)
    hog = HOG(cell_size=4)
    assert not torch.allclose(hog.block_grid(img, context=True).flatten(1), hog(img[..., 1:-1, 1:-1]), atol=1e-3)


def test_positive_warp_equals_the_scanned_window_it_aligns_with() -> None:
    torch.manual_seed(2)
    model = detector(max_upscale=1.0, flip_positives=False)
    x = torch.rand(1, 3, 48, 40)
    level = model.pyramid(x)[0]
    assert (level.scale_y, level.scale_x) == (1.0, 1.0)
    picks = [(0, 0), (3, 5), (8, 6)]  # (0, 0) overhangs the image by the margin (replicated pixels)
    b = torch.zeros(len(picks), dtype=torch.int64)
    r, c = (torch.tensor(v) for v in zip(*picks, strict=True))
    boxes = model.window_boxes(level)[r * model.grid_shape(level)[1] + c]
    torch.testing.assert_close(boxes[0], torch.tensor([0.0, 0.0, 16.0, 16.0]))
    warped = model.positive_descriptors(x[0], boxes)
    torch.testing.assert_close(warped, model.window_descriptors(level.blocks, b, r, c), atol=1e-4, rtol=0)
    # Mirrored positives follow, and are the descriptors of the mirrored crops.
    flipping = detector(max_upscale=1.0)
    both = flipping.positive_descriptors(x[0], boxes)
    mirrored = flipping.positive_descriptors(x[0].flip(-1), torch.stack([40 - boxes[:, 2], boxes[:, 1],
                                                                          40 - boxes[:, 0], boxes[:, 3]], 1))
    assert both.shape == (6, 900)
    torch.testing.assert_close(both[3:], mirrored[:3], atol=1e-4, rtol=0)


def squares_image() -> tuple[torch.Tensor, torch.Tensor]:
    """A 32x48 grey image with an 8 px square at (12, 4) and a 16 px square at (28, 12), xyxy."""
    x = torch.full((3, 32, 48), 0.8)
    boxes = torch.tensor([[12.0, 4.0, 20.0, 12.0], [28.0, 12.0, 44.0, 28.0]])
    for x1, y1, x2, y2 in boxes.int().tolist():
        x[:, y1:y2, x1:x2] = 0.2
    return x, boxes


def test_boxes_map_back_to_image_coordinates() -> None:
    # Levels at 2x (64x96) and 1x (32x48): the small square fills a window interior (16 px) only
    # on the 2x level, at level px (24, 8); the large one only at 1x.  A template SVM (the warped
    # descriptor of a dark square on a light ground, minus its mean) must report both squares at their
    # image coordinates, and no window elsewhere may beat them.
    model = detector(max_upscale=2.0, scale_step=2.0, flip_positives=False, nms_iou=0.3)
    x, boxes = squares_image()
    assert model.level_sizes(32, 48) == [(64, 96), (32, 48), (16, 24)]
    template = model.positive_descriptors(x, boxes[1:])[0]
    with torch.no_grad():
        model.svm.weight.copy_((template - template.mean()).expand(3, -1))
    det = model([x])[0]
    top = det["boxes"][det["labels"] == 1][:2]
    iou = box_iou(top, boxes)
    assert iou.amax(0).min() > 0.999, (top, boxes)
    levels = model.pyramid(x[None])
    lv2 = levels[0]
    assert (lv2.scale_x, lv2.scale_y) == (2.0, 2.0)
    # Window (2, 6) of the 2x level: level px interior (24, 8)-(40, 24) -> image (12, 4)-(20, 12).
    torch.testing.assert_close(model.window_boxes(lv2)[2 * model.grid_shape(lv2)[1] + 6], boxes[0])


def test_box_centres_on_anisotropic_levels() -> None:
    # An image whose channels hold each pixel's own centre coordinate (x + 0.5, y + 0.5): bilinear
    # resizing reproduces a linear ramp away from the border, so the mean over a window interior's
    # level pixels is the centre, in image px, of the region the interior covers: the box's centre.
    model = detector()
    h, w = 40, 52
    yy, xx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    x = torch.stack([xx, yy, xx])[None].float()
    cs, pad, (ih, iw) = 4, 4, model.interior_px
    checked = 0
    for size, level in zip(model.level_sizes(h, w), model.pyramid(x), strict=True):
        assert level.scale_y != level.scale_x or size == (h, w)
        img, boxes, (nr, nc) = model.level_image(x, size), model.window_boxes(level), model.grid_shape(level)
        for r in range(1, nr - 1, 3):
            for c in range(1, nc - 1, 3):
                interior = img[0, :2, pad + r * cs:pad + r * cs + ih, pad + c * cs:pad + c * cs + iw]
                box = boxes[r * nc + c]
                centre = torch.stack([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
                torch.testing.assert_close(interior.mean((1, 2)), centre, atol=0.05, rtol=0)
                checked += 1
    assert checked > 20


def test_hard_negatives_are_background_and_the_top_scorers() -> None:
    torch.manual_seed(3)
    model = detector(hard_negatives=5, random_negatives=7)
    torch.nn.init.normal_(model.svm.weight, std=0.1)
    x = torch.rand(1, 3, 64, 64)
    gt = torch.tensor([[10.0, 10.0, 30.0, 28.0], [35.0, 30.0, 60.0, 62.0]])
    levels = model.pyramid(x)
    torch.manual_seed(4)  # the same random negatives for both calls
    idx = model.negative_indices(levels, 0, gt)
    boxes = torch.cat([model.window_boxes(lv) for lv in levels])
    scores = torch.cat([model.score_maps(lv.blocks)[0].flatten(1) for lv in levels], 1).T.detach()
    background = box_iou(boxes, gt).amax(1) < 0.3
    assert background[idx].all() and (~background).sum() > 0
    assert len(idx) == len(set(idx.tolist())) and 5 <= len(idx) <= 3 * 5 + 7
    bg = background.nonzero()[:, 0]
    for k in range(3):
        assert set(bg[scores[bg, k].topk(5).indices].tolist()) <= set(idx.tolist())
    # The descriptors handed to the loss are those windows' (scores agree with the score maps).
    torch.manual_seed(4)
    with torch.no_grad():
        torch.testing.assert_close(model.svm(model.mine_negatives(levels, 0, gt)), scores[idx], atol=1e-4, rtol=1e-5)


def test_training_loss_counts_positives_and_negatives() -> None:
    model = detector(hard_negatives=4, random_negatives=4).train()
    x, boxes = squares_image()
    loss = model([x], [{"boxes": boxes, "labels": torch.tensor([1, 3])}])
    assert set(loss) == {"loss_svm"} and loss["loss_svm"].item() == pytest.approx(3.0)  # zero SVM: K
    loss["loss_svm"].backward()
    assert model.svm.weight.grad[0].abs().sum() > 0  # the positives of class 1 pull its SVM


def test_reference_configuration_has_opencvs_sizes() -> None:
    model = build_model("hog_detector", 1, 128, {})
    assert model.svm.in_features == 3780 and sum(p.numel() for p in model.parameters()) == 3781
    cv2 = pytest.importorskip("cv2")
    # OpenCV's HOGDescriptor defaults are the paper's detector (64x128, 16 px blocks at 8 px stride,
    # 8 px cells, 9 bins) and its default people detector is Dalal's SVM: weights + bias.
    assert cv2.HOGDescriptor().getDescriptorSize() == 3780
    assert len(cv2.HOGDescriptor_getDefaultPeopleDetector()) == 3781


@pytest.mark.parametrize(("params", "match"), [
    ({"window": (4, 4), "margin": 2}, "leave an interior"),
    ({"scale_step": 1.0}, "scale_step > 1"),
    ({"hard_negatives": 0, "random_negatives": 0}, "some negatives"),
])
def test_bad_configuration_is_a_clear_error(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_model("hog_detector", 3, 64, {**SMALL, **params})


def test_image_too_small_for_the_window_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="cannot hold one"):
        detector(max_upscale=0.2)([torch.rand(3, 64, 64)])
