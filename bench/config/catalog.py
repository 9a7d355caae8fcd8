"""Find and load the YAML under ``configs/`` by name, and resolve ``bench run`` targets."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from bench.config.loader import SIZE_KEYS, ConfigError, leaves, load
from bench.config.schema import (
    DatasetConfig,
    LossConfig,
    ModelConfig,
    ProfileConfig,
    RegressionConfig,
    Resources,
    Strict,
    SuiteConfig,
    TaskName,
    TrainConfig,
    TrainOverride,
)
from bench.registry import unknown_name_message
from bench.tasks import TASKS


class TrialConfig(Strict):
    """The effective, fully merged configuration of one trial (what gets hashed and logged)."""

    model: str = Field(description="model config name")
    builder: str
    task: TaskName
    dataset: DatasetConfig
    profile: str
    seed: int
    device: str
    params: dict[str, Any]
    train: TrainConfig
    resources: Resources
    native_image_size: int | None = Field(None, description="the dataset's image side the input size scales")
    recipe: str = Field("shared", description="the profile's recipe: shared or reference")

    @property
    def trial_id(self) -> str:
        """Readable and unique within one invocation: ``unet@shapes#0``."""
        return f"{self.model}@{self.dataset.name}#{self.seed}"

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of the effective config (first 16 hex digits)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class Catalog:
    """The configs directory: models, datasets, suites and profiles, by name."""

    root: Path

    def _names(self, kind: str) -> dict[str, Path]:
        folder = self.root / kind
        return {p.stem: p for p in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}

    @cached_property
    def model_files(self) -> dict[str, Path]:
        return self._names("models")

    @cached_property
    def dataset_files(self) -> dict[str, Path]:
        return self._names("datasets")

    @cached_property
    def suite_files(self) -> dict[str, Path]:
        return self._names("suites")

    @cached_property
    def profile_files(self) -> dict[str, Path]:
        return self._names("profiles")

    def _pick(self, kind: str, files: dict[str, Path], name: str) -> Path:
        if name not in files:
            raise ConfigError(unknown_name_message(kind, name, list(files)))
        return files[name]

    def model(self, name: str) -> ModelConfig:
        """``configs/models/<name>.yaml`` validated; ``name`` defaults to the file stem."""
        return load(self._pick("model", self.model_files, name), ModelConfig, name=name)

    def profile(self, name: str) -> ProfileConfig:
        return load(self._pick("profile", self.profile_files, name), ProfileConfig, name=name)

    def suite(self, name: str) -> SuiteConfig:
        return load(self._pick("suite", self.suite_files, name), SuiteConfig, name=name)

    def target_suite(self, target: str) -> SuiteConfig | None:
        """The suite a ``bench run`` target names: a suite of ``configs/suites`` or a suite YAML path."""
        if target in self.suite_files:
            return self.suite(target)
        if target.endswith((".yaml", ".yml")):
            path = Path(target)
            if not path.is_file():
                raise ConfigError(f"suite file {target} does not exist")
            return load(path, SuiteConfig, name=path.stem)
        return None

    def regression(self) -> RegressionConfig:
        """``regression.yaml`` (tolerances of ``bench compare``); the schema defaults when absent."""
        path = self.root / "regression.yaml"
        return load(path, RegressionConfig) if path.is_file() else RegressionConfig()

    def dataset(self, name_or_yaml: str) -> DatasetConfig:
        """A dataset by config name, or by the path of a dataset YAML."""
        if name_or_yaml.endswith((".yaml", ".yml")):
            path = Path(name_or_yaml)
            return load(path, DatasetConfig, name=path.stem)
        return load(self._pick("dataset", self.dataset_files, name_or_yaml), DatasetConfig, name=name_or_yaml)

    def resolve_target(self, target: str) -> tuple[list[ModelConfig], str | None]:
        """Model configs named by ``target`` (model, task, suite or ``all``) and a suite dataset.

        ``all`` is the ``all`` suite when one exists, otherwise every model config.
        """
        if target in self.model_files:
            return [self.model(target)], None
        suite = self.target_suite(target)
        if suite is not None:
            return [self.model(m) for m in suite.models], suite.dataset
        if target == "all":
            return [self.model(m) for m in self.model_files], None
        if target in TASKS.names():
            models = [m for m in (self.model(n) for n in self.model_files) if target in model_tasks(m)]
            if not models:
                raise ConfigError(f"no model configs for task {target!r} under {self.root / 'models'}")
            return models, None
        choices = [*self.model_files, *self.suite_files, *TASKS.names(), "all"]
        raise ConfigError(unknown_name_message("run target", target, choices))


# The sections of a model YAML whose values feed a trial (the rest name and describe it).
RECIPE_SECTIONS = ("params", "reference", "train", "profiles")


def written_keys(cfg: ModelConfig | ProfileConfig | SuiteConfig) -> set[tuple[str, str]]:
    """``(file, dotted key)`` of every setting the file (and its include) writes."""
    raw = cfg.model_dump(exclude_unset=True, exclude_defaults=False)
    sections = RECIPE_SECTIONS if isinstance(cfg, ModelConfig) else ("train", "resources", "profiles")
    keys = leaves({k: v for k, v in raw.items() if k in sections})
    # A model's profiles.P.datasets/params/resources that are empty mappings state nothing.
    return {(cfg.origin(k), k) for k, v in keys.items() if v != {}}


def unused_settings(cat: Catalog, names: list[str] | None = None, own_file_only: bool = False) -> list[str]:
    """Settings that take effect in no trial: for each written key of the models ``names`` (all by
    default), every profile and every dataset of the model is resolved, and a key that never wins is
    reported as ``FILE: key (why)``.  With ``own_file_only`` only keys of the model files themselves
    are checked (include files serve many models; the whole-catalog walk checks those).
    """
    names = list(cat.model_files) if names is None else names
    profiles = [cat.profile(p) for p in cat.profile_files]
    written: set[tuple[str, str]] = set()
    used: set[tuple[str, str]] = set()
    suites = [cat.suite(s) for s in cat.suite_files]
    for name in names:
        model = cat.model(name)
        mine = written_keys(model)
        written |= {w for w in mine if not own_file_only or w[0] == model.source}
        unknown = sorted(set(model.profiles) - set(cat.profile_files))
        if unknown:
            raise ConfigError(unknown_name_message("profile", unknown[0], list(cat.profile_files))
                              + f" (in {model.source}: profiles.{unknown[0]})")
        for prof in profiles:
            for d in model.datasets:
                used |= resolve_trial(model, cat.dataset(d), prof, 0).used
            for suite in suites:
                if name in suite.profiles.get(prof.name, {}):
                    d = suite.dataset or model.datasets[0]
                    used |= resolve_trial(model, cat.dataset(d), prof, 0, suite=suite).used
    if names == list(cat.model_files) and not own_file_only:
        for cfg in (*profiles, *suites):
            written |= written_keys(cfg)
    return [f"{f}: {k} is overridden or unused under every profile and dataset; delete it or move it to the "
            "section that takes effect (see `bench config MODEL --profile P`)"
            for f, k in sorted(written - used)]


def model_task(cfg: ModelConfig) -> str:
    """The task of the registered builder behind ``cfg`` (lazy registry; no torch import)."""
    from bench.models import MODELS

    return MODELS.get(cfg.builder).meta.task


def model_tasks(cfg: ModelConfig) -> tuple[str, ...]:
    """The model's task and the tasks it also ranks on (``bench run classification`` includes Siamese)."""
    task = model_task(cfg)
    return (task, *TASKS.get(task).meta.also_ranks_on)


Layer = tuple[str, str, dict[str, Any]]  # (file, dotted prefix of the section in it, its keys)


@dataclass(frozen=True)
class ResolvedTrial:
    """A trial's effective config, where each value came from, and which written keys took effect.

    ``sources``: effective dotted key (``train.lr``) -> ``"FILE: section.key"`` (or ``default``,
    ``command line``).  ``used``: the ``(file, dotted key)`` pairs of the YAML that won.
    """

    config: TrialConfig
    sources: dict[str, str]
    used: frozenset[tuple[str, str]]


def train_layers(
    model: ModelConfig, dataset: DatasetConfig, profile: ProfileConfig, suite: SuiteConfig | None,
    overrides: dict[str, Any],
) -> list[Layer]:
    """The ``train`` layers of one trial, lowest precedence first (see ``resolve_trial``)."""
    per = model.profiles.get(profile.name)
    per_data = per.datasets.get(dataset.name) if per else None
    layers: list[Layer] = [("default", "TrainConfig", {}),
                           (profile.source, "train", profile.train.model_dump(exclude_none=True))]
    if profile.recipe == "reference":
        layers.append((model.source, "reference", model.reference.model_dump(exclude_none=True)))
    layers.append((model.source, "train", model.train.model_dump(exclude_none=True)))
    if per:
        layers.append((model.source, f"profiles.{profile.name}.train", per.train.model_dump(exclude_none=True)))
    if per_data:
        layers.append((model.source, f"profiles.{profile.name}.datasets.{dataset.name}.train",
                       per_data.train.model_dump(exclude_none=True)))
    mine = suite.profiles.get(profile.name, {}).get(model.name) if suite else None
    if suite and mine:
        layers.append((suite.source, f"profiles.{profile.name}.{model.name}", mine.model_dump(exclude_none=True)))
    if overrides.get("train"):
        layers.append(("command line", "--set train", dict(overrides["train"])))
    return layers


def merge_layers(
    layers: list[Layer], origin: Any, kind: str
) -> tuple[dict[str, Any], dict[str, str], dict[str, tuple[str, str]]]:
    """Merge ``layers`` leaf by leaf: values, ``sources`` labels and the winning (file, key) pairs.

    ``origin(file, dotted)`` names the file that really wrote a key (a model's include file).
    The two input-size keys replace each other: the highest layer that sets either decides.
    """
    values: dict[str, Any] = {}
    won: dict[str, tuple[str, str]] = {}
    for file, prefix, layer in layers:
        for key, val in leaves(layer).items():
            top = key.split(".")[0]
            if top in SIZE_KEYS:
                for other in SIZE_KEYS:
                    values.pop(other, None)
                    won.pop(other, None)
            values = _set_dotted(values, key, val)
            won = {k: v for k, v in won.items() if not (k.startswith(key + ".") or key.startswith(k + "."))}
            won[key] = (origin(file, f"{prefix}.{key}"), f"{prefix}.{key}")
    sources = {f"{kind}.{k}": f"{f}: {d}" for k, (f, d) in won.items()}
    return values, sources, won


def _set_dotted(d: dict[str, Any], dotted: str, val: Any) -> dict[str, Any]:
    out = dict(d)
    head, _, rest = dotted.partition(".")
    if rest:
        sub = out.get(head) if isinstance(out.get(head), dict) else {}
        out[head] = _set_dotted(sub, rest, val)
    else:
        out[head] = val
    return out


def native_image_size(dataset: DatasetConfig, task: str, project: Path | None = None) -> int:
    """The native side (px) of ``dataset``'s images for ``task``: the view's ``image_size``, else the
    first training image's (read from disk).  Raises ConfigError naming the key to add."""
    view = dataset.views[task]  # type: ignore[index]
    if view.image_size:
        return view.image_size
    from bench.config.native import probe_image_size

    where = dataset.source or dataset.name
    size = probe_image_size(dataset, task, project)
    if size is None:
        raise ConfigError(
            f"{where}: dataset {dataset.name!r} does not state its native image size and its training images "
            f"were not found to measure it; add `views.{task}.image_size: <px>` (the images' side) to {where}"
        )
    return size


def resolve_trial(
    model: ModelConfig, dataset: DatasetConfig, profile: ProfileConfig, seed: int,
    suite: SuiteConfig | None = None, overrides: dict[str, Any] | None = None,
) -> ResolvedTrial:
    """The one place the configs merge into a trial.  Precedence, lowest first (later layers win, key
    by key; nested ``params`` merge leaf by leaf):

    1. schema defaults (``TrainConfig``);
    2. the profile file's ``train`` (``configs/profiles/P.yaml``);
    3. the model's ``reference`` recipe, only under a ``recipe: reference`` profile;
    4. the model's ``train`` (every profile);
    5. the model's ``profiles.P`` (its ``include`` file first, then its own);
    6. the model's ``profiles.P.datasets.D``;
    7. the suite's ``profiles.P.MODEL`` (``bench run SUITE``);
    8. the command line (``--set train.KEY=V`` / ``--set params.KEY=V``).

    Under ``recipe: reference`` the learning rate that comes from the reference is scaled by the
    linear rule to the batch size that runs.  The input size is ``image_size`` (absolute px) or
    ``image_scale`` times the dataset's native size (default: scale 1); whichever the highest layer
    sets wins.  ``params`` layers: model, ``profiles.P``, ``profiles.P.datasets.D``, command line.
    """
    from bench.models import MODELS

    overrides = overrides or {}
    spec = MODELS.get(model.builder).meta
    if spec.task not in dataset.views:
        raise ConfigError(
            f"dataset {dataset.name!r} has no view for task {spec.task!r} (model {model.name!r}); "
            f"its views: {', '.join(dataset.views)}"
        )
    _check_view_format(dataset, spec.task)

    def origin(file: str, dotted: str) -> str:
        for cfg in (model, profile, suite):
            if cfg is not None and file == cfg.source:
                return cfg.origin(dotted)
        return file

    train, sources, won = merge_layers(train_layers(model, dataset, profile, suite, overrides), origin, "train")
    used = set(won.values())
    _scale_reference_lr(model, profile, train, sources, used)
    native = _resolve_size(train, sources, dataset, spec.task)
    per = model.profiles.get(profile.name)
    per_data = per.datasets.get(dataset.name) if per else None
    param_layers: list[Layer] = [(model.source, "params", model.params)]
    if per:
        param_layers.append((model.source, f"profiles.{profile.name}.params", per.params))
    if per_data:
        param_layers.append((model.source, f"profiles.{profile.name}.datasets.{dataset.name}.params", per_data.params))
    if overrides.get("params"):
        param_layers.append(("command line", "--set params", dict(overrides["params"])))
    params, psources, pwon = merge_layers(param_layers, origin, "params")
    used |= set(pwon.values())
    resources = profile.resources
    sources["resources"] = f"{profile.source}: resources"
    used_resources = {(profile.origin(f"resources.{k}"), f"resources.{k}") for k in resources.model_fields_set}
    if per and per.resources:
        resources = per.resources
        key = f"profiles.{profile.name}.resources"
        sources["resources"] = f"{model.origin(key)}: {key}"
        used_resources = {(model.origin(f"{key}.{k}"), f"{key}.{k}") for k in per.resources.model_fields_set}
    used |= used_resources
    try:
        train_cfg = TrainConfig(**train)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            key = f"train.{e['loc'][0]}"
            problems.append(f"{key} = {e.get('input')!r} from {sources.get(key, 'default')}: {e['msg']}")
        raise ConfigError(f"{model.name} under profile {profile.name} on {dataset.name}: " + "; ".join(problems)) \
            from None
    _check_augment(train_cfg.augment, spec.task, sources.get("train.augment", "default"), model.name)
    _check_loss(train_cfg.loss, spec.task, sources, model.name)
    config = TrialConfig(
        model=model.name, builder=model.builder, task=spec.task, dataset=dataset, profile=profile.name,
        seed=seed, device=profile.device, params=params, train=train_cfg, resources=resources,
        native_image_size=native, recipe=profile.recipe,
    )
    return ResolvedTrial(config, {**sources, **psources}, frozenset(used))


def _check_view_format(dataset: DatasetConfig, task: str) -> None:
    """The dataset's view for ``task`` must use a format that serves ``task`` (``bench.datasets``)."""
    from bench.datasets import DATASETS

    fmt = dataset.views[task].format
    serves = DATASETS.get(fmt).meta.tasks
    if task not in serves:
        raise ConfigError(f"{dataset.source}: views.{task} uses format {fmt!r}, which serves {', '.join(serves)}, "
                          f"not {task}; pick a format for {task}: "
                          + ", ".join(e.name for e in DATASETS.entries() if task in e.meta.tasks))


def _check_augment(ops: tuple[str, ...], task: str, source: str, model: str) -> None:
    """Every ``train.augment`` op must be one the task's datasets implement (``TaskSpec.augment_ops``)."""
    valid = TASKS.get(task).meta.augment_ops
    bad = [op for op in ops if op not in valid]
    if bad:
        raise ConfigError(f"{model}: train.augment = {list(ops)} from {source}: {', '.join(bad)} "
                          f"{'is' if len(bad) == 1 else 'are'} not a {task} transform; valid for {task}: "
                          f"{', '.join(valid)}")


def _check_loss(loss: LossConfig | None, task: str, sources: dict[str, str], model: str) -> None:
    """``train.loss`` only where the engine applies it (semantic segmentation), with a known name and its own
    parameters (checked against ``bench.engine.segmentation_losses``, imported only when a loss is set)."""
    if loss is None:
        return
    source = ", ".join(sorted({v for k, v in sources.items() if k.startswith("train.loss")})) or "default"
    if task != "semantic_segmentation":
        raise ConfigError(f"{model}: train.loss from {source} applies to semantic_segmentation models only; "
                          f"{model} is a {task} model, whose loss is part of the model (see its params)")
    from bench.engine.segmentation_losses import segmentation_loss

    try:
        segmentation_loss(loss.name, **loss.params)
    except ValueError as err:
        raise ConfigError(f"{model}: train.loss from {source}: {err}") from None


def _scale_reference_lr(
    model: ModelConfig, profile: ProfileConfig, train: dict[str, Any], sources: dict[str, str],
    used: set[tuple[str, str]],
) -> None:
    """Linear scaling rule: a reference lr is the paper's at the paper's batch; scale it to ours."""
    ref = model.reference
    if profile.recipe != "reference" or ref.lr is None or ref.batch_size is None:
        return
    if not sources.get("train.lr", "").endswith(": reference.lr"):
        return  # a higher layer set the lr itself
    batch = int(train.get("batch_size", TrainConfig.model_fields["batch_size"].default))
    train["lr"] = ref.lr * batch / ref.batch_size
    sources["train.lr"] += f" ({ref.lr:g} x {batch}/{ref.batch_size}, linear scaling rule)"
    used.add((model.origin("reference.batch_size"), "reference.batch_size"))


def _resolve_size(train: dict[str, Any], sources: dict[str, str], dataset: DatasetConfig, task: str) -> int | None:
    """Turn ``image_scale`` (or nothing) into an absolute ``image_size``; returns the native size used."""
    if "image_size" in train:
        return dataset.views[task].image_size  # type: ignore[index]
    native = native_image_size(dataset, task)
    scale = float(train.get("image_scale", 1.0))
    train["image_size"] = max(16, round(native * scale))
    where = f"{dataset.origin(f'views.{task}.image_size') or dataset.source}: views.{task}.image_size"
    if dataset.views[task].image_size is None:  # type: ignore[index]
        where = f"measured from the first training image of {dataset.name}"
    how = f"{sources['train.image_scale']} = {scale:g}" if "train.image_scale" in sources else "default scale 1"
    sources["train.image_size"] = f"{native} px native ({where}) x {how}"
    return native


def effective_trial(
    model: ModelConfig, dataset: DatasetConfig, profile: ProfileConfig, seed: int,
    suite: SuiteConfig | None = None, overrides: dict[str, Any] | None = None,
) -> TrialConfig:
    """The effective config of one trial (``resolve_trial`` without the provenance)."""
    return resolve_trial(model, dataset, profile, seed, suite, overrides).config


SETTABLE = ("train", "params")


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["train.time_limit_s=600", "params.width=0.5"]`` -> ``{"train": {...}, "params": {...}}``.

    Values are YAML (``600``, ``null``, ``[hflip]``, ``{mode: frozen}``); the keys are checked when the
    trial is resolved, against the same schema as the YAML files.
    """
    import yaml

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        section, _, rest = key.strip().partition(".")
        if not sep or section not in SETTABLE or not rest:
            raise ConfigError(f"--set {item!r}: expected SECTION.KEY=VALUE with SECTION one of "
                              f"{', '.join(SETTABLE)}, e.g. --set train.time_limit_s=600")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML: {exc}") from None
        out[section] = _set_dotted(out.get(section, {}), rest, value)
    if "train" in out:
        from bench.config.loader import validate

        validate(Path("--set"), TrainOverride, out["train"])
    return out


def config_yaml(resolved: ResolvedTrial, with_sources: bool = True) -> str:
    """The effective config as YAML; with ``with_sources`` each leaf ends in ``# FILE: section.key``.

    Keys without a recorded source are schema defaults.  The dataset block is the dataset YAML.
    """
    import yaml

    data = resolved.config.model_dump(mode="json")
    lines = yaml.safe_dump(data, sort_keys=False, width=10_000).splitlines()
    if not with_sources:
        return "\n".join(lines)
    out, stack = [], []  # stack: (indent, key) of the enclosing mappings
    for line in lines:
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        key = stripped.split(":", 1)[0] if ":" in stripped and not stripped.startswith("- ") else None
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if key is None:
            out.append(line)
            continue
        dotted = ".".join([k for _, k in stack] + [key])
        is_leaf = not stripped.endswith(":")
        if not is_leaf:
            stack.append((indent, key))
        src = _source_of(resolved, dotted) if is_leaf or dotted in resolved.sources else None
        out.append(f"{line}  # {src}" if src else line)
    return "\n".join(out)


def _source_of(resolved: ResolvedTrial, dotted: str) -> str | None:
    """The source label of an effective key (``train.lr``), or ``default`` for train/params leaves."""
    if dotted in resolved.sources:
        return resolved.sources[dotted]
    head = dotted.split(".")[0]
    if head == "dataset":
        return None
    if head == "train" and dotted.count(".") == 1:
        return "default (bench/config/schema.py: TrainConfig)"
    parent = dotted.rsplit(".", 1)[0]
    return resolved.sources.get(parent)
