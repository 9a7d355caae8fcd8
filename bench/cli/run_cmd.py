"""``bench run``: resolve the target, fan the trials out on Ray, track them, rank them."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from bench.cli.common import catalog, console, err_console, user_errors
from bench.config.loader import ConfigError

HELP = """\
Train and evaluate TARGET: a model name, a task name (classification, detection,
semantic_segmentation), a suite name (configs/suites/) or `all`.

Each (model, dataset, seed) is one trial and one Ray task. With RAY_ADDRESS set (as under
`ray job submit`) the trials go to that cluster, else to a local Ray using every core. Every
trial becomes a child run of one MLflow parent run ($MLFLOW_TRACKING_URI, else ./mlflow.db), and
the leaderboard is rewritten at the end. A failed trial is recorded with its reason; the others
go on. Exit code: 0 all ok, 1 some trial failed, 2 bad input.

\b
Examples:
  bench run all                              the embedded defaults
  bench run resnet18 --profile smoke         seconds: checks the plumbing
  bench run detection --seed 1 --output out/detection.json
  bench run unet --dataset my_data.yaml      your own data (see configs/datasets/shapes.yaml)
  bench run mobilenet_v2 --profile cpu --set train.time_limit_s=600
                                             override any train/params key (highest precedence)

`bench config MODEL --profile P` shows the effective config of a trial and where each value
comes from; the README's "Configuration precedence" explains the order.
"""


def run_command(
    target: Annotated[str, typer.Argument(help="model, task, suite or `all`")],
    dataset: Annotated[str | None, typer.Option(help="dataset config name or path to a dataset YAML")] = None,
    profile: Annotated[str | None, typer.Option(help="smoke | cpu | gpu [default: gpu if the cluster has "
                                                     "GPUs, else cpu]")] = None,
    seed: Annotated[int, typer.Option(help="random seed of every trial")] = 0,
    output: Annotated[Path | None, typer.Option(help="write the trial records to this JSON file")] = None,
    report: Annotated[bool, typer.Option(help="rewrite reports/leaderboard.{md,html} at the end")] = True,
    verbose: Annotated[bool, typer.Option(help="forward Ray worker logs to this console")] = False,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="SECTION.KEY=VALUE (SECTION: train or params; VALUE is YAML), repeatable; overrides every "
                      "config file, e.g. --set train.time_limit_s=600 --set train.epochs=12")] = None,
) -> None:
    with user_errors():
        root, cat = catalog()
        from bench.config.catalog import parse_overrides, unused_settings

        overrides = parse_overrides(set_ or [])
        models, suite_dataset = cat.resolve_target(target)
        suite = cat.suite(target) if target in cat.suite_files else None
        problems = unused_settings(cat, [m.name for m in models], own_file_only=True)
        if problems:
            raise ConfigError("\n".join(problems))
        dataset_name = dataset or suite_dataset
        # One trial per (model, dataset): --dataset or the suite's dataset replaces a model's list.
        datasets = {m.name: [cat.dataset(d) for d in ([dataset_name] if dataset_name else m.datasets)]
                    for m in models}
        from bench.models import check_params

        for m in models:  # fail on a bad param before any worker starts
            check_params(m.builder, m.params, str(cat.model_files.get(m.name, m.name)))
        if profile is not None:
            cat.profile(profile)  # validate the name before starting Ray
    from bench.tracking.mlflow_writer import job_tracking_warning

    warning = job_tracking_warning()
    if warning:
        err_console.print(f"[bold yellow]{warning}[/]", highlight=False)
    writer = open_tracking(root)  # before Ray: an unreachable server is a bad-input error, not a crash
    from bench.orchestration.ray_runner import init_ray

    cluster = init_ray(verbose=verbose)
    with user_errors():
        prof = cat.profile(profile or ("gpu" if cluster.gpus > 0 else "cpu"))
        from bench.config.catalog import config_yaml, resolve_trial

        resolved = [resolve_trial(m, d, prof, seed, suite, overrides) for m in models for d in datasets[m.name]]
        trials = [r.config for r in resolved]
        # What MLflow gets as `config.yaml`: the effective config annotated with each value's source.
        annotated = {r.config.trial_id: config_yaml(r) for r in resolved}
        for t in trials:
            check_params(t.builder, t.params, f"{cat.model_files.get(t.model, t.model)} (profile {prof.name})")
    console.print(
        f"bench run {target}: {len(trials)} trial(s), profile {prof.name}, Ray {cluster.address} "
        f"({cluster.cpus:g} CPU, {cluster.gpus:g} GPU)"
    )
    results = execute(root, writer, target, prof.name, trials, cluster, output, annotated)
    if report:
        from bench.reports.leaderboard import ReportEntry, write_report

        entries = [ReportEntry(r, run=target) for r in results]
        for p in write_report(entries, root / "reports", title=f"Leaderboard: bench run {target}",
                              source=f"this run's {len(results)} trial record(s), profile {prof.name}"):
            console.print(f"wrote {p}")
    summary(results)
    if any(r.status != "ok" for r in results):
        raise typer.Exit(1)


def open_tracking(root: Path) -> Any:
    """The MLflow writer, or exit 2 with the URI when the tracking store cannot be reached."""
    from bench.tracking.mlflow_writer import MlflowWriter, tracking_uri

    try:
        return MlflowWriter(root)
    except Exception as exc:  # noqa: BLE001 - MLflow raises several unrelated types for "unreachable"
        err_console.print(f"[bold red]error:[/] cannot use MLflow at {tracking_uri(root)}: "
                          f"{type(exc).__name__}: {str(exc)[:300]}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def execute(
    root: Path, writer: Any, target: str, profile: str, trials: list[Any], cluster: Any, output: Path | None,
    annotated: dict[str, str] | None = None,
) -> list[Any]:
    """Run ``trials`` on Ray under one MLflow parent run, logging each trial as it finishes.

    ``output`` is rewritten after every trial, so a crash or Ctrl-C of the driver loses nothing
    that had finished; a trial MLflow refuses to log is kept (with a warning), not dropped.
    """
    from bench.orchestration.ray_runner import run_trials
    from bench.orchestration.trial import RunContext
    from bench.results.provenance import git_sha
    from bench.results.record import write_results

    sha = git_sha(root)
    run_name = f"{target}-{time.strftime('%Y%m%d-%H%M%S')}"
    writer.start_parent(
        run_name,
        tags={"target": target, "profile": profile, "git_sha": sha, "ray_address": cluster.address},
        params={"target": target, "profile": profile, "trials": ",".join(t.trial_id for t in trials)},
    )
    ctx = RunContext(project=str(root), run_name=run_name, git_sha=sha)
    display = ProgressDisplay(trials)

    def on_result(result: Any) -> None:
        try:
            rid = writer.log_trial(result, trial_plots(result), (annotated or {}).get(result.trial_id))
            result = result.model_copy(update={"mlflow_run_id": rid})
        except Exception as exc:  # noqa: BLE001 - keep the record whatever the tracking store says
            err_console.print(f"[yellow]warning: MLflow did not take {result.trial_id}: {exc}[/]", highlight=False)
        display.finish(result)
        if output:
            write_results(output, display.results)

    try:
        with display:
            run_trials(trials, ctx, display.event, on_result)
    except KeyboardInterrupt:
        writer.end_parent(len(trials) - sum(r.status == "ok" for r in display.results), len(trials), killed=True)
        err_console.print(f"interrupted; {len(display.results)} finished trial(s) kept"
                          + (f" in {output}" if output else ""))
        raise
    results = display.results
    writer.end_parent(sum(r.status != "ok" for r in results), len(results))
    console.print(f"MLflow: {writer.uri} (parent run {writer.parent_id})")
    if output:
        console.print(f"wrote {output}")
    return results


def trial_plots(result: Any) -> list[Path]:
    """Plots attached to a trial's MLflow run: the training curve, plus PR curves (detection) or a
    confusion matrix (classification, segmentation), drawn from the record in a temp folder."""
    import tempfile

    from bench.reports import plots
    from bench.tasks import TASKS

    if result.status != "ok":
        return []
    folder = Path(tempfile.mkdtemp(prefix="bench-plots-"))
    out = [plots.training_curve(result.history, TASKS.get(result.task).meta.primary_metric,
                                folder / "training_curve.png")]
    if result.task == "detection" and result.per_class:
        out.append(plots.pr_curves(result.per_class, folder / "pr_curves.png"))
    cm = result.extras.get("confusion_matrix")
    if cm is not None:
        names = list(result.per_class) if len(result.per_class) == len(cm) else None
        out.append(plots.confusion_matrix_plot(cm, names, folder / "confusion_matrix.png"))
    return out


class ProgressDisplay:
    """Live per-trial status: a rich progress table on a terminal, plain event lines otherwise."""

    def __init__(self, trials: list[Any]) -> None:
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.live = console.is_terminal and not os.environ.get("BENCH_PLAIN_PROGRESS")
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description:<28}"), BarColumn(),
            TextColumn("{task.completed}/{task.total} ep"), TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(), console=console, disable=not self.live,
        )
        self.ids = {t.trial_id: self.progress.add_task(t.trial_id, total=t.train.epochs, status="queued")
                    for t in trials}
        self.results: list[Any] = []

    def __enter__(self) -> ProgressDisplay:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def event(self, ev: dict[str, Any]) -> None:
        """A progress event from a worker (or the driver's own ``queued``)."""
        tid, kind = ev.get("trial_id", "?"), ev.get("event")
        if kind == "epoch":
            extra = " ".join(f"{k}={v:.4g}" for k, v in ev.items()
                             if k not in ("trial_id", "event", "epoch", "epochs") and isinstance(v, float))
            status = f"epoch {ev['epoch']}/{ev['epochs']} {extra}"
            self.progress.update(self.ids[tid], completed=ev["epoch"], status=status)
        else:
            status = {"queued": "queued", "data": "checking data", "train": "training",
                      "time_limit": "time limit reached"}.get(str(kind), str(kind))
            if tid in self.ids:
                self.progress.update(self.ids[tid], status=status)
        if not self.live:
            print(f"[{time.strftime('%H:%M:%S')}] {tid}: {status}", file=sys.stderr, flush=True)

    def finish(self, result: Any) -> None:
        """A record came back."""
        self.results.append(result)
        key = result.task and _primary(result.task)
        value = result.metrics.get(key)
        status = ("ok " + (f"{key}={value:.4f}" if value is not None else "")) if result.status == "ok" \
            else f"FAILED: {(result.error or '')[:60]}"
        self.progress.update(self.ids[result.trial_id], status=status)
        if not self.live:
            print(f"[{time.strftime('%H:%M:%S')}] {result.trial_id}: {status}", file=sys.stderr, flush=True)


def _primary(task: str) -> str:
    from bench.tasks import TASKS

    return TASKS.get(task).meta.primary_metric


def summary(results: list[Any]) -> None:
    """A final table of every trial: status, primary metric, time, error."""
    from rich.table import Table

    table = Table(title="trials")
    for col in ("trial", "status", "primary metric", "train s", "mlflow run", "error"):
        table.add_column(col)
    for r in results:
        key = _primary(r.task)
        val = r.metrics.get(key)
        table.add_row(r.trial_id, r.status, f"{key}={val:.4f}" if val is not None else "—",
                      f"{r.timings.train_s:.1f}", r.mlflow_run_id or "—", (r.error or "")[:100])
    console.print(table)
