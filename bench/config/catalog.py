"""Find and load the YAML under ``configs/`` by name, and resolve ``bench run`` targets."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field

from bench.config.loader import ConfigError, deep_merge, load
from bench.config.schema import (
    DatasetConfig,
    ModelConfig,
    ProfileConfig,
    Resources,
    Strict,
    SuiteConfig,
    TaskName,
    TrainConfig,
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
        if target in self.suite_files:
            suite = self.suite(target)
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


def model_task(cfg: ModelConfig) -> str:
    """The task of the registered builder behind ``cfg`` (lazy registry; no torch import)."""
    from bench.models import MODELS

    return MODELS.get(cfg.builder).meta.task


def model_tasks(cfg: ModelConfig) -> tuple[str, ...]:
    """The model's task and the tasks it also ranks on (``bench run classification`` includes Siamese)."""
    task = model_task(cfg)
    return (task, *TASKS.get(task).meta.also_ranks_on)


def effective_trial(
    model: ModelConfig, dataset: DatasetConfig, profile: ProfileConfig, seed: int
) -> TrialConfig:
    """Merge schema defaults < model.train < profile.train < model.profiles[profile]
    < model.profiles[profile].datasets[dataset] into a trial."""
    from bench.models import MODELS

    spec = MODELS.get(model.builder).meta
    if spec.task not in dataset.views:
        raise ConfigError(
            f"dataset {dataset.name!r} has no view for task {spec.task!r} (model {model.name!r}); "
            f"its views: {', '.join(dataset.views)}"
        )
    per = model.profiles.get(profile.name)
    per_data = per.datasets.get(dataset.name) if per else None
    train: dict[str, Any] = {}
    for layer in (model.train, profile.train, per.train if per else None, per_data.train if per_data else None):
        if layer is not None:
            train.update(layer.model_dump(exclude_none=True))
    params = deep_merge(model.params, per.params if per else {})
    params = deep_merge(params, per_data.params if per_data else {})
    resources = per.resources if per and per.resources else profile.resources
    return TrialConfig(
        model=model.name,
        builder=model.builder,
        task=spec.task,
        dataset=dataset,
        profile=profile.name,
        seed=seed,
        device=profile.device,
        params=params,
        train=TrainConfig(**train),
        resources=resources,
    )
