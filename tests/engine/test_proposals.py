"""Selective search and its disk cache (bench.engine.proposals), and the detection task's plumbing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.engine import proposals as P


def scene() -> np.ndarray:
    """A 64 x 64 image with two flat rectangles on a dark background."""
    im = np.full((64, 64, 3), 20, np.uint8)
    im[8:30, 10:40] = (200, 40, 40)
    im[36:60, 30:58] = (40, 200, 40)
    return im


def test_selective_search_boxes_are_ranked_deduplicated_and_filtered() -> None:
    boxes = P.selective_search(scene(), "fast", 2000, 0)
    assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes) > 2
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 64).all() and (boxes[:, 3] <= 64).all()
    assert (boxes[:, 2:] > boxes[:, :2]).all()
    assert len(np.unique(boxes, axis=0)) == len(boxes)
    # Both rectangles are found exactly (x2 = x + w: pixel-edge coordinates).
    rows = {tuple(b) for b in boxes.tolist()}
    assert (10.0, 8.0, 40.0, 30.0) in rows and (30.0, 36.0, 58.0, 60.0) in rows
    # The cap keeps OpenCV's first boxes; min_size drops the thin ones.
    assert np.array_equal(P.selective_search(scene(), "fast", 2, 0), boxes[:2])
    big = P.selective_search(scene(), "fast", 2000, 25)
    assert ((big[:, 2:] - big[:, :2]) >= 25).all() and len(big) < len(boxes)


def test_propose_at_another_size_maps_boxes_back() -> None:
    boxes = P.propose(scene(), P.ProposalSettings(image_size=128, min_size=0))
    assert boxes.max() <= 64
    # The rectangles found on the 2x image land on the original pixels (within the resampling blur).
    for rect in ([10, 8, 40, 30], [30, 36, 58, 60]):
        assert np.abs(boxes - np.array(rect, np.float32)).max(axis=1).min() <= 1.0


def test_settings_validation_and_resolution() -> None:
    with pytest.raises(ValueError, match="mode"):
        P.ProposalSettings(mode="slow")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown key"):
        P.resolve_settings({"max_boxes": 3})
    s = P.resolve_settings({"max_proposals": 300}, P.ProposalSettings(image_size=128))
    assert s == P.ProposalSettings(max_proposals=300, image_size=128)
    assert s.key == "fast-n300-min2-s128"


def test_cache_miss_then_hit_and_one_computation_under_concurrency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from PIL import Image

    caplog.set_level(logging.INFO, logger=P.__name__)

    monkeypatch.setenv(P.CACHE_ENV, str(tmp_path / "cache"))
    files = []
    for i in range(3):
        f = tmp_path / f"im{i}.png"
        Image.fromarray(np.roll(scene(), 5 * i, axis=1)).save(f)
        files.append((i + 1, f))
    calls: list[int] = []
    real = P.propose

    def counting(image: np.ndarray, settings: P.ProposalSettings) -> np.ndarray:
        calls.append(1)
        time.sleep(0.05)  # both threads are inside load_or_compute at the same time
        return real(image, settings)

    monkeypatch.setattr(P, "propose", counting)
    settings = P.ProposalSettings(max_proposals=50)
    path = P.cache_path("md5:abc", P.split_tag("coco", ".", "train"), settings)
    assert path.is_relative_to(tmp_path / "cache") and path.name == "fast-n50-min2-native.npz"
    results: list[P.SplitProposals] = []
    threads = [threading.Thread(target=lambda: results.append(P.load_or_compute(path, files, settings)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 3, "the second caller must wait for the first one's file, not compute again"
    assert sorted(r.hit for r in results) == [False, True]
    assert not list(path.parent.glob("*.tmp"))  # written by rename, nothing half-written left
    err = capsys.readouterr().err + caplog.text  # stderr, or the log when logging is configured (pytest)
    assert "proposal cache miss: computed 3 images" in err and f"proposal cache hit: {path}" in err
    for image_id, f in files:
        want = real(np.asarray(Image.open(f).convert("RGB")), settings)
        assert all(np.array_equal(r.boxes(image_id), want) for r in results)
    # Other images under the same key (a changed split) are recomputed, not served stale boxes.
    again = P.load_or_compute(path, files[:2], settings)
    assert not again.hit and len(calls) == 5


def test_unversioned_dataset_version_follows_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(P.CACHE_ENV, str(tmp_path / "cache"))
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("one")
    first = P.dataset_version(data, None, str(data))
    assert first.startswith("unpinned-md5:") and first == P.dataset_version(data, None, str(data))
    (data / "a.txt").write_text("two")
    assert P.dataset_version(data, None, str(data)) != first


def test_detection_task_gives_proposal_models_their_cached_proposals(project: Path) -> None:
    """Targets carry target["proposals"] (the image's selective search) for fast_rcnn, not for
    faster_rcnn; predict hands them to the model in eval.  The train split, in the machine's cache
    (the contract tests of the proposal-based models use the same entry)."""
    from bench.config.catalog import Catalog, effective_trial
    from bench.datasets.versioning import read_pin
    from bench.tasks import task_impl

    cat = Catalog(project / "configs")

    def task_of(name: str):  # noqa: ANN202
        cfg = effective_trial(cat.model(name), cat.dataset("shapes"), cat.profile("smoke"), seed=0)
        return task_impl(cfg.task)(cfg, project / cfg.dataset.root)

    plain = task_of("faster_rcnn")
    assert plain.proposal_settings is None and "proposals" not in plain.dataset("train", train=False)[0][1]
    task = task_of("fast_rcnn")
    assert task.proposal_settings == P.ProposalSettings(image_size=128)  # configs/models/fast_rcnn.yaml
    ds = task.dataset("train", train=False)
    image, target = ds[3]
    want = P.propose(P.image_uint8(image), task.proposal_settings)
    assert torch.equal(target["proposals"], torch.from_numpy(want))
    version = read_pin(project / "datasets.dvc", "datasets/shapes", project).version
    entry = task._proposals["train"].path
    assert entry.is_relative_to(P.cache_root()) and entry.parts[-3] == version.replace(":", "-") and entry.is_file()

    seen: list = []

    class Recorder(torch.nn.Module):
        uses_proposals = True

        def forward(self, images, targets=None):  # noqa: ANN001, ANN202
            seen.append(targets)
            return [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}]

    task.predict(Recorder().eval(), ([image], [target]), torch.device("cpu"))
    assert torch.equal(seen[0][0]["proposals"], target["proposals"])
