"""Tiling of large segmentation images (``views.<task>.tile``): random tile crops in training, overlapping
sliding windows with averaged logits in prediction, the model built at the tile's size."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from bench.config.catalog import Catalog, effective_trial
from bench.config.schema import DatasetView
from bench.engine.data import window_starts
from bench.tasks import task_impl


def tiled_task(project: Path, tile: int | None):  # noqa: ANN201 - the SegmentationTask
    cat = Catalog(project / "configs")
    ds = cat.dataset("shapes")
    view = ds.views["semantic_segmentation"].model_copy(update={"tile": tile})
    ds = ds.model_copy(update={"views": {**ds.views, "semantic_segmentation": view}})
    cfg = effective_trial(cat.model("unet"), ds, cat.profile("smoke"), seed=0)
    return task_impl(cfg.task)(cfg, project / cfg.dataset.root)


@pytest.mark.parametrize(("size", "tile", "starts"), [(64, 32, [0, 24, 32]), (64, 64, [0]), (100, 40, [0, 30, 60]),
                                                      (40, 64, [0])])
def test_windows_cover_with_a_quarter_tile_of_overlap(size: int, tile: int, starts: list[int]) -> None:
    got = window_starts(size, tile)
    assert got == starts
    covered = torch.zeros(size, dtype=torch.bool)
    for s in got:
        covered[s:s + tile] = True
    assert covered.all()


def test_training_items_are_tiles_and_evaluation_items_whole(project: Path) -> None:
    task = tiled_task(project, 32)
    assert task.tile == 32 and task.cfg.train.image_size == 64
    x, y = task.dataset("train", train=True)[0]
    assert x.shape == (3, 32, 32) and y.shape == (32, 32)
    x, y = task.dataset("val", train=False)[0]
    assert x.shape == (3, 64, 64) and y.shape == (64, 64)
    assert tiled_task(project, 64).tile is None  # a tile as large as the image: no tiling


def test_sliding_window_prediction_matches_one_forward_for_a_pointwise_model(project: Path) -> None:
    """A 1x1 conv sees no context, so the windows' averaged logits equal the whole image's."""
    task = tiled_task(project, 32)
    torch.manual_seed(0)
    model = nn.Conv2d(3, 4, 1).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(task.logits(model, x), model(x), atol=1e-6)
        assert torch.equal(task.predict(model, (x, None), torch.device("cpu")), model(x).argmax(1))


def test_windows_see_only_their_tile(project: Path) -> None:
    """Each window's forward gets a tile-sized input (the model was built for it)."""
    task, seen = tiled_task(project, 32), []

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(tuple(x.shape[-2:]))
            return x.new_zeros(x.shape[0], 4, *x.shape[-2:])

    task.logits(Probe(), torch.zeros(1, 3, 64, 64))
    assert seen == [(32, 32)] * 9


def test_tile_is_for_masks_views() -> None:
    with pytest.raises(ValidationError, match="tile applies to format masks"):
        DatasetView(format="coco", path=".", tile=32)
