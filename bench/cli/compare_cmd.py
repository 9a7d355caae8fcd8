"""``bench compare BASE CAND``: regressions between two sets of trials."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bench.cli.common import console, err_console, user_errors

HELP = """\
Compare two sets of trials, one row per (model, dataset, profile, metric): base, candidate,
delta, the 95% CI of the delta, the tolerance and a verdict (improved, regressed, unchanged, new,
missing, failed), plus which inputs differ (config, dataset md5, metric spec, code, packages).

BASE and CAND each name a results file (`bench run --output FILE`), a run name, an MLflow
parent run id, or a git revision (SHA, HEAD, branch: the newest run made at that commit) in the
results store.

`regressed` needs the candidate to be worse beyond both the tolerance (configs/regression.yaml,
absolute and relative, per metric) and the noise: a paired bootstrap over the same test images
(seeds resampled too) when both sides kept per-image statistics, else the spread across seeds;
where a side has one seed, the seed-to-seed spread of that model is added, from --replicates
files or else the newest multi-seed run of the model in the results store.
Exit code: 1 when a row regressed or a candidate trial failed, 0 otherwise, 2 on bad input.

\b
Examples:
  bench compare base.json cand.json
  bench compare all-20261201-090000 all-20261202-090000 --json out/compare.json
  bench compare bd41b817b HEAD --md out/compare.md
  bench compare old.json new.json --replicates three_seeds.json
"""


def compare_command(
    base: Annotated[str, typer.Argument(help="results file, run name, MLflow parent run id or git revision")],
    cand: Annotated[str, typer.Argument(help="the same kinds as BASE")],
    md: Annotated[Path | None, typer.Option(help="also write the Markdown table to this file")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the rows as JSON to this file")] = None,
    only: Annotated[str | None, typer.Option(help="only rows whose verdict is this, e.g. regressed")] = None,
    replicates: Annotated[list[Path] | None, typer.Option(
        help="a results file with several seeds per model whose spread is the seed noise of one-seed rows "
             "(repeatable; before the results store's multi-seed runs)")] = None,
) -> None:
    with user_errors():
        from bench.cli.common import catalog, open_store
        from bench.results.compare import (
            compare,
            files_spread,
            gate_failed,
            resolve_side,
            store_spread,
            to_json,
            to_markdown,
        )

        root, cat = catalog()
        store = open_store(root)
        try:
            sides = [resolve_side(spec, store, root) for spec in (base, cand)]
            reps = [resolve_side(str(f), store, root) for f in replicates or []]
        except (LookupError, ValueError) as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        rows = compare(sides[0], sides[1], cat.regression(), files_spread(reps, store_spread(store)))
        shown = [r for r in rows if only is None or r.verdict == only]
        text = to_markdown(sides[0], sides[1], shown)
        console.print(text, markup=False, highlight=False, soft_wrap=True)
        for path, body in ((md, text), (json_out, to_json(sides[0], sides[1], shown))):
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(body)
        if gate_failed(rows):
            raise typer.Exit(1)
