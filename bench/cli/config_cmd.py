"""``bench config``: the effective config of one trial, with the file and section of every value."""

from __future__ import annotations

from typing import Annotated

import typer

from bench.cli.common import catalog, console, user_errors

HELP = """\
Print the effective trial config of MODEL as YAML, each value annotated with the file and
section it came from (like `pip config debug` or Hydra's `--cfg job --info`).  This is the
config that runs and that is logged to MLflow (as params, and as `config.yaml`).

Precedence, lowest first: schema defaults < profile file `train` < the model's `reference`
(only under a `recipe: reference` profile, lr scaled linearly to the batch) < the model's
`train` < its `profiles.P` < its `profiles.P.datasets.D` < the suite's `profiles.P.MODEL` <
`--set`.  The input size is `image_size` (px) or `image_scale` x the dataset's native size.

\b
Examples:
  bench config efficientnet_b0 --profile gpu
  bench config resnet18 --dataset mnist --profile cpu --set train.lr=0.01
  bench config faster_rcnn --dataset my_coco.yaml
"""


def config_command(
    model: Annotated[str, typer.Argument(help="model config name")],
    dataset: Annotated[str | None, typer.Option(help="dataset name or YAML [default: the model's first]")] = None,
    profile: Annotated[str, typer.Option(help="profile name")] = "cpu",
    suite: Annotated[str | None, typer.Option(help="as run by this suite (its per-model train settings)")] = None,
    seed: Annotated[int, typer.Option(help="trial seed")] = 0,
    set_: Annotated[list[str] | None, typer.Option("--set", help="SECTION.KEY=VALUE, as for `bench run`")] = None,
    sources: Annotated[bool, typer.Option(help="annotate each value with its file and section")] = True,
) -> None:
    with user_errors():
        _, cat = catalog()
        from bench.config.catalog import config_yaml, parse_overrides, resolve_trial

        cfg = cat.model(model)
        data = cat.dataset(dataset or cfg.datasets[0])
        suite_cfg = cat.suite(suite) if suite else None
        resolved = resolve_trial(cfg, data, cat.profile(profile), seed, suite_cfg, parse_overrides(set_ or []))
        text = config_yaml(resolved, with_sources=sources)
    console.print(text, highlight=False, markup=False, soft_wrap=True)
