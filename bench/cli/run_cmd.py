"""``bench run``: resolve the target, fan the trials out on Ray, track them, rank them."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from bench.cli.common import catalog, console, err_console, open_store, open_tracking, user_errors

HELP = """\
Train and evaluate TARGET: a model name, a task name (classification, detection,
semantic_segmentation), a suite name (configs/suites/) or `all`.

Each (model, dataset, seed) is one trial and one Ray task. With RAY_ADDRESS set (as under
`ray job submit`) the trials go to that cluster, else to a local Ray using every core.

Every record goes first to the results store ($BENCH_RESULTS, else results/results.db), then to
MLflow as a child of one parent run ($MLFLOW_TRACKING_URI, else ./mlflow.db). While MLflow is
down the run goes on; the end of the run lists the trials waiting for `bench sync`.

Trials checkpoint every epoch (--checkpoint-dir). Ray restarts a trial whose worker or node died
(--max-retries) and it goes on from its last epoch; so does a half-done trial of a killed
`bench run` when the same command is run again.

A trial is keyed by the hash of its effective config, dataset md5, metric spec, code (the
bench/ sources) and seed: a key that already has an ok record is reused and shown as
`cached` (--force reruns it), so a killed `bench run` started again trains only what is missing.
The leaderboard (latest result of each model) is rewritten at the end. A failed trial is recorded
with its reason; the others go on. Exit code: 0 all ok, 1 some trial failed, 2 bad input.

\b
Examples:
  bench run all                              the embedded defaults
  bench run resnet18 --profile smoke         seconds: checks the plumbing
  bench run detection --seed 1 --output out/detection.json
  bench run all --seeds 3                    seeds 0, 1, 2: the leaderboard shows mean ± 95% CI
  bench run all --force                      retrain even what the results store already has
  bench run all --checkpoint-dir s3://bucket/bench-ckpt   checkpoints every node can reach
  bench run unet --dataset my_data.yaml      your own data (see configs/datasets/templates/)
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
    seed: Annotated[int, typer.Option(help="first random seed")] = 0,
    seeds: Annotated[int | None, typer.Option(help="seeds per (model, dataset): --seed .. --seed+N-1 "
                                                   "[default: the suite's `seeds:`, else 1]", min=1)] = None,
    force: Annotated[bool, typer.Option(help="rerun trials whose key already has an ok record in the results "
                                             "store (default: reuse them, shown as cached)")] = False,
    output: Annotated[Path | None, typer.Option(help="write the trial records (with per-image statistics) to "
                                                     "this JSON file, rewritten as each trial lands")] = None,
    report: Annotated[bool, typer.Option(help="rewrite reports/leaderboard.{md,html} at the end")] = True,
    verbose: Annotated[bool, typer.Option(help="forward Ray worker logs to this console")] = False,
    checkpoint_dir: Annotated[str | None, typer.Option(
        envvar="BENCH_CHECKPOINTS", help="where trials checkpoint every epoch: a folder, or an fsspec URL every "
                                         "node can reach on a cluster (s3://BUCKET/PATH, gs://...) [default: "
                                         "runs/ in the project, on each worker's node]")] = None,
    max_retries: Annotated[int, typer.Option(help="restarts of a trial whose worker or node died (it resumes "
                                                  "from its last checkpoint); errors are never retried",
                                             min=0)] = 3,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="SECTION.KEY=VALUE (SECTION: train or params; VALUE is YAML), repeatable; overrides every "
                      "config file, e.g. --set train.time_limit_s=600 --set train.epochs=12")] = None,
) -> None:
    from bench.orchestration.driver import Driver, default_profile, plan_run

    with user_errors():
        root, cat = catalog()
        from bench.config.catalog import parse_overrides

        overrides = parse_overrides(set_ or [])
        cluster = None
        if profile is None and os.environ.get("RAY_ADDRESS"):
            cluster = start_ray(verbose)  # a remote cluster must be joined to know whether it has GPUs
        name = profile or default_profile(lambda: cluster.gpus if cluster else 0.0)
        plan = plan_run(root, cat, target, dataset, name, seed, seeds, overrides)
    store = open_store(root)
    from bench.tracking.mlflow_writer import in_ray_job, job_tracking_warning

    warning = job_tracking_warning()
    if warning:
        err_console.print(f"[bold yellow]{warning}[/]", highlight=False)
    if in_ray_job() and not os.environ.get("BENCH_RESULTS"):
        err_console.print(f"[bold yellow]WARNING: running inside a Ray job without BENCH_RESULTS: the results store "
                          f"{store.path} is in the job's temporary working dir and goes with it. Pass "
                          "\"BENCH_RESULTS\": \"/persistent/path/results.db\" in --runtime-env-json env_vars.[/]",
                          highlight=False)
    writer = open_tracking(root, required=False)  # down: the run goes on, records wait in the store
    console.print(f"bench run {target}: {len(plan.trials)} trial(s) ({len(plan.seeds)} seed(s)), profile "
                  f"{plan.profile}, results store {store.path}")

    def join_cluster() -> Any:
        """Ray, started only when some trial is not cached."""
        info = cluster or start_ray(verbose)
        console.print(f"Ray {info.address} ({info.cpus:g} CPU, {info.gpus:g} GPU)")
        return info

    ckpt_root = checkpoint_dir or ""
    if ckpt_root and "://" not in ckpt_root:  # workers may run elsewhere (a Ray job's working-dir copy)
        ckpt_root = str(Path(ckpt_root).resolve())
    display = ProgressDisplay([p.config for p in plan.trials])
    driver = Driver(root, store, writer, display.finish, warn)
    with display:
        outcome = driver.run(plan, join_cluster, display.event, force=force, output=output,
                             checkpoint_root=ckpt_root, max_retries=max_retries)
    if writer is not None and writer.parent_id:
        console.print(f"MLflow: {writer.uri} (parent run {writer.parent_id})")
    if outcome.waiting:
        from bench.tracking.mlflow_writer import tracking_uri

        warn(f"{len(outcome.waiting)} trial(s) are waiting to be synced to MLflow ({tracking_uri(root)}): "
             f"{', '.join(outcome.waiting)}. Their records are safe in {store.path}; run `bench sync` once the "
             "tracking server is reachable.")
    if output:
        console.print(f"wrote {output}")
    if report:
        from bench.cli.report_cmd import write_latest

        for p in write_latest(store, root / "reports"):
            console.print(f"wrote {p}")
    summary(outcome.results, outcome.cached)
    if any(r.status != "ok" for r in outcome.results):
        raise typer.Exit(1)


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning: {message}[/]", highlight=False)


def start_ray(verbose: bool) -> Any:
    from bench.orchestration.ray_runner import init_ray

    return init_ray(verbose=verbose)


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
            if kind == "train" and ev.get("attempt", 1) > 1:
                status = f"restarted (attempt {ev['attempt']})"
            elif kind == "resumed":
                status = f"resumed after epoch {ev['epoch']}"
                if tid in self.ids:
                    self.progress.update(self.ids[tid], completed=ev["epoch"])
            if tid in self.ids:
                self.progress.update(self.ids[tid], status=status)
        if not self.live:
            print(f"[{time.strftime('%H:%M:%S')}] {tid}: {status}", file=sys.stderr, flush=True)

    def finish(self, result: Any, cached: bool = False) -> None:
        """A record came back (``cached``: reused from the results store, not trained)."""
        self.results.append(result)
        key = result.task and _primary(result.task)
        value = result.metrics.get(key)
        status = ("cached " if cached else "ok ") + (f"{key}={value:.4f}" if value is not None else "")
        if result.status != "ok":
            status = f"FAILED: {(result.error or '')[:60]}"
        self.progress.update(self.ids[result.trial_id], status=status)
        if not self.live:
            print(f"[{time.strftime('%H:%M:%S')}] {result.trial_id}: {status}", file=sys.stderr, flush=True)


def _primary(task: str) -> str:
    from bench.tasks import TASKS

    return TASKS.get(task).meta.primary_metric


def summary(results: list[Any], cached: set[str]) -> None:
    """A final table of every trial: status (``cached`` when reused), primary metric, time, error."""
    from rich.table import Table

    table = Table(title="trials")
    for col in ("trial", "status", "primary metric", "train s", "mlflow run", "error"):
        table.add_column(col)
    for r in results:
        key = _primary(r.task)
        val = r.metrics.get(key)
        status = "cached" if r.trial_id in cached else r.status
        table.add_row(r.trial_id, status, f"{key}={val:.4f}" if val is not None else "—",
                      f"{r.timings.train_s:.1f}", r.mlflow_run_id or "—", (r.error or "")[:100])
    console.print(table)
