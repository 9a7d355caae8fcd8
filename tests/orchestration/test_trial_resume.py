"""Which checkpoint a started trial goes on from, and the attempts its record lists.

A killed process is stood for by a BaseException out of the progress callback (not caught as a
trial failure, so no record and no ``done.json``, as when the process dies).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.config.catalog import Catalog, TrialConfig, effective_trial
from bench.orchestration.trial import RunContext, checkpoint_dir, run_trial

KEY = "0123456789abcdef" * 4


class Killed(BaseException):
    pass


def _cfg(project: Path) -> TrialConfig:
    cat = Catalog(project / "configs")
    cfg = effective_trial(cat.model("simple_cnn"), cat.dataset("shapes"), cat.profile("smoke"), seed=0)
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": 2, "time_limit_s": None})})


def _ctx(project: Path, tmp_path: Path, run: str, resume_previous: bool = True) -> RunContext:
    return RunContext(str(project), run, "sha", checkpoint_root=str(tmp_path / "ckpt"),
                      keys={"simple_cnn@shapes#0": KEY}, resume_previous=resume_previous)


def _kill_after_epoch_1(event: dict) -> None:
    if event.get("event") == "epoch" and event["epoch"] == 1:
        raise Killed


def test_a_killed_drivers_trial_resumes_in_the_next_run_and_lists_both_attempts(
    project: Path, tmp_path: Path
) -> None:
    cfg = _cfg(project)
    folder = Path(checkpoint_dir(cfg, _ctx(project, tmp_path, "r1"), project).location)
    assert folder == tmp_path / "ckpt" / f"simple_cnn_shapes_0-{KEY[:16]}"  # no '#' or '@' in a URL path
    with pytest.raises(Killed):
        run_trial(cfg, _ctx(project, tmp_path, "r1"), _kill_after_epoch_1)
    assert not (folder / "done.json").exists()
    events: list[dict] = []
    rec = run_trial(cfg, _ctx(project, tmp_path, "r2"), events.append)
    assert rec.status == "ok", rec.traceback
    assert [(a.number, a.run, a.resumed_from_epoch) for a in rec.attempts] == [(1, "r1", None), (2, "r2", 1)]
    assert [e for e in events if e["event"] == "resumed"] == [{"event": "resumed", "epoch": 1, "epochs": 2}]
    assert [h.epoch for h in rec.history] == [1, 2]
    assert rec.checkpoint.startswith(str(folder))
    assert json.loads((folder / "done.json").read_text())["run"] == "r2"

    again = run_trial(cfg, _ctx(project, tmp_path, "r3"), lambda e: None)  # finished: starts afresh
    assert [(a.number, a.run, a.resumed_from_epoch) for a in again.attempts] == [(1, "r3", None)]


def test_force_does_not_resume_an_earlier_runs_checkpoint(project: Path, tmp_path: Path) -> None:
    cfg = _cfg(project)
    with pytest.raises(Killed):
        run_trial(cfg, _ctx(project, tmp_path, "r1"), _kill_after_epoch_1)
    rec = run_trial(cfg, _ctx(project, tmp_path, "r2", resume_previous=False), lambda e: None)
    assert [(a.number, a.run, a.resumed_from_epoch) for a in rec.attempts] == [(1, "r2", None)]


def test_a_key_trained_elsewhere_at_the_same_time_gets_a_folder_of_its_own(project: Path, tmp_path: Path) -> None:
    from filelock import FileLock

    from bench.orchestration.trial import claim

    ckpt = checkpoint_dir(_cfg(project), _ctx(project, tmp_path, "r1"), project)
    other = FileLock(ckpt.location + ".lock")
    other.acquire()  # another process trains this key in its folder now
    try:
        held: list = []
        mine = claim(ckpt, _ctx(project, tmp_path, "r2"), held)
        assert mine.location == ckpt.location + "-r2" and len(held) == 1
        held[0].release()
    finally:
        other.release()
    held = []
    assert claim(ckpt, _ctx(project, tmp_path, "r3"), held).location == ckpt.location
    held[0].release()
