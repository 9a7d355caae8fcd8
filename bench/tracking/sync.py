"""Pushing stored records to MLflow: inline as trials land, or later with ``bench sync``.

Exactly once: a record is one child run, tagged with its ``bench run`` and trial key.  Pushing it
again (the server took it but the answer was lost, or an outage cut the logging short) first looks
for that run: a finished one is adopted, a half-written one is deleted and the record logged anew.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.results.record import TrialResult
from bench.results.store import ResultsStore


def trial_plots(result: TrialResult) -> list[Path]:
    """Plots attached to a trial's MLflow run: the training curve, plus PR curves (detection) or a
    confusion matrix (classification, segmentation), drawn from the record in a temp folder."""
    from bench.reports import plots
    from bench.tasks import TASKS

    if result.status != "ok":
        return []
    folder = Path(tempfile.mkdtemp(prefix="bench-plots-"))
    out = [plots.training_curve(result.history, TASKS.get(result.task).meta.primary_metric,
                                folder / "training_curve.png")]
    if result.task in ("detection", "instance_segmentation") and result.per_class:  # box PR curves
        out.append(plots.pr_curves(result.per_class, folder / "pr_curves.png"))
    cm = result.extras.get("confusion_matrix")
    if cm is not None:
        names = list(result.per_class) if len(result.per_class) == len(cm) else None
        out.append(plots.confusion_matrix_plot(cm, names, folder / "confusion_matrix.png"))
    return out


def log_record(writer: Any, result: TrialResult, annotated: str | None = None, run: str = "",
               again: bool = False) -> str:
    """One record as a child run of ``writer``'s current parent; returns the MLflow run id.

    ``again``: the record may have reached MLflow before (a retry): adopt its finished run if there
    is one, delete runs a cut-short logging left RUNNING, then log.
    """
    if again and result.key:
        done, partial = writer.find_trial(run, result.key)
        if done is not None:
            return done
        for rid in partial:
            writer.client.delete_run(rid)
    return writer.log_trial(result.model_copy(update={"samples": None}), trial_plots(result), annotated, run=run)


PARENT_STATUS = {"finished": "FINISHED", "failed": "FAILED", "killed": "KILLED"}


def sync_pending(store: ResultsStore, writer: Any, on_done: Callable[[str, str | None, str | None], None],
                 run: str | None = None, stop_at_error: bool = False) -> int:
    """Push every record that never reached MLflow (of ``run`` only, if given); returns how many are
    still unsynced.

    Records go under their run's parent run, which is created first when the run never reached
    MLflow either; a parent the outage left RUNNING gets its run's final status.
    ``on_done(trial_id, mlflow_run_id, error)`` reports each record.  ``stop_at_error``: the first
    failure ends the pass (the server is still down; the rest would each wait out the timeouts).
    """
    left = 0
    parents: dict[str, str] = {}
    pending = store.unsynced(run)
    for n, stored in enumerate(pending):
        info = store.run_info(stored.run)
        try:
            if stored.run not in parents:
                parent = info.mlflow_parent_id if info else None
                if not parent:
                    parent = writer.start_parent(
                        stored.run, tags={"target": info.target if info else "?", "profile": stored.record.profile,
                                          "git_sha": stored.record.provenance.git_sha, "synced_later": "true"},
                        params={"target": info.target if info else "?"})
                    writer.client.set_terminated(parent, "FINISHED")
                    store.set_parent(stored.run, parent)
                parents[stored.run] = parent
            writer.parent_id = parents[stored.run]
            rid = log_record(writer, stored.record, run=stored.run, again=True)  # MLflow gets no samples
        except Exception as exc:  # noqa: BLE001 - report and go on with the next record
            left += 1
            on_done(stored.record.trial_id, None, f"{type(exc).__name__}: {exc}")
            if stop_at_error:
                return left + len(pending) - n - 1
            continue
        store.set_synced(stored.id, rid)
        on_done(stored.record.trial_id, rid, None)
    for name, parent in parents.items():
        info = store.run_info(name)
        status = PARENT_STATUS.get(info.status) if info else None
        if status is not None:  # idempotent: the run's own end may have been lost to the outage
            try:
                writer.client.set_terminated(parent, status)
            except Exception as exc:  # noqa: BLE001 - the records are in; say so and go on
                on_done(f"run {name}", None, f"parent run not closed: {type(exc).__name__}: {exc}")
    return left
