"""``bench``: train and evaluate every architecture of the catalog, track it, rank it.

Every subcommand imports its heavy dependencies (torch, ray, mlflow) inside the command body, so
``bench --help`` and ``bench list`` start fast.
"""

from __future__ import annotations

import typer

from bench.cli import compare_cmd, config_cmd, data_cmd, eval, list_cmd, report_cmd, run_cmd, runs_cmd, sync_cmd

HELP = """\
Benchmark computer-vision architectures on versioned data, on Ray, tracked in MLflow.

\b
Typical session:
  bench list                          what can run (models, datasets, suites, profiles)
  bench data pull                     fetch the DVC-pinned datasets
  bench data check                    every problem of every dataset (annotations, images, masks) at once
  bench config resnet18 --profile gpu the effective config of a trial, and where each value came from
  bench run all                       train + evaluate every model (profile: cpu, or gpu with CUDA)
  bench run unet --profile smoke      one model, plumbing-only schedule
  bench run detection --output r.json every detection model, records to a JSON file
  bench run all --seeds 3             three seeds each; finished trials are reused (cached)
  bench report                        leaderboard of the latest results -> reports/
  bench compare base.json HEAD        regressions between two runs (exit 1 when any)
  bench runs                          the runs in the results store
  bench sync                          push records MLflow missed
  bench eval detection --gt gt.json --pred dets.json --out m.json
                                      score saved predictions, no model needed
\b
On a cluster:
  ray job submit --working-dir . --runtime-env-json \\
    '{"env_vars": {"MLFLOW_TRACKING_URI": "http://HOST:5000"}}' -- bench run all
"""

app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False, rich_markup_mode=None)
app.command("list", help=list_cmd.HELP)(list_cmd.list_command)
app.command("run", help=run_cmd.HELP)(run_cmd.run_command)
app.command("report", help=report_cmd.HELP)(report_cmd.report_command)
app.command("compare", help=compare_cmd.HELP)(compare_cmd.compare_command)
app.command("sync", help=sync_cmd.HELP)(sync_cmd.sync_command)
app.command("runs", help=runs_cmd.HELP)(runs_cmd.runs_command)
app.command("config", help=config_cmd.HELP)(config_cmd.config_command)
app.add_typer(data_cmd.app, name="data")
app.add_typer(eval.app, name="eval")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # `python -m bench.cli.main` behaves like `bench`
    main()
