"""Typed, frozen schemas for the YAML under ``configs/``.

Every model rejects unknown keys (``extra="forbid"``) so a typo is an error that lists the valid
keys, never a silently ignored setting.  Loading and error formatting live in ``loader.py``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

# Train-time transforms: bench.engine.data.augment documents each one's range for images and label
# maps, bench.engine.detection_augment the box/mask-aware ones; which a task accepts is
# TaskSpec.augment_ops (bench.tasks), checked when a trial resolves.
Augment = Literal["hflip", "vflip", "rot90", "channel_shuffle", "crop", "rotate", "shear", "color_shift",
                  "scale_jitter", "mosaic"]


def _known_task(name: str) -> str:
    """A task name registered in ``bench.tasks`` (the one place task names are listed)."""
    from bench.registry import unknown_name_message
    from bench.tasks import TASKS

    if name not in TASKS:
        raise ValueError(unknown_name_message("task", name, TASKS.names()))
    return name


TaskName = Annotated[str, AfterValidator(_known_task)]


Optimizer = Literal["sgd", "adamw", "rmsprop"]
Recipe = Literal["shared", "reference"]


class Strict(BaseModel):
    """Base: frozen, unknown keys forbidden."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FileConfig(Strict):
    """A config read from a file: remembers which file set each leaf key (for ``bench config``).

    ``origins`` maps a dotted key (``profiles.cpu.train.lr``) to the file that wrote it: the file
    itself or the one it includes.  Filled by ``bench.config.loader.load``.
    """

    _source: str = PrivateAttr("")
    _origins: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def source(self) -> str:
        """The file this config was read from ('' when built in code)."""
        return self._source

    def origin(self, dotted: str) -> str:
        """The file that wrote ``dotted`` (the include, or this file)."""
        return self._origins.get(dotted, self._source)


class Resources(Strict):
    """What one trial asks Ray for.  Fractions are allowed (``num_gpus: 0.5`` packs two per GPU)."""

    num_cpus: float = Field(1.0, gt=0, description="CPU slots; also the torch thread count")
    num_gpus: float = Field(0.0, ge=0, description="GPU share; dropped to 0 when the cluster has none")
    memory_gb: float | None = Field(None, gt=0, description="Ray memory reservation, GiB")


class TransferConfig(Strict):
    """How a model starts (the guide's transfer-learning strategies).

    ``scratch``: random init, everything trains.  ``frozen``: the backbone is a fixed feature
    extractor and only a new head trains.  ``finetune``: the head and the last ``finetune_stages``
    backbone stages train, the earlier stages stay frozen.  ``weights`` is a local ``.pt``/``.pth``
    state dict (or a checkpoint with a ``model`` key) loaded before freezing; tensors whose name or
    shape does not match (the old head) are skipped.  Nothing is ever downloaded.
    """

    mode: Literal["scratch", "frozen", "finetune"] = "scratch"
    weights: str | None = Field(None, description="local state-dict path, relative to the project root")
    finetune_stages: int = Field(1, ge=0, description="backbone stages trained in `finetune` mode")


class LossConfig(Strict):
    """The training loss of a semantic segmentation model: a name of ``bench/engine/segmentation_losses.py``
    (ce, bce, focal, dice, jaccard, tversky, focal_tversky) and its keyword parameters, e.g. ``{name:
    tversky, params: {alpha: 0.3, beta: 0.7}}``.  Both are checked when the trial is resolved."""

    name: str = Field("ce", description="ce, bce, focal, dice, jaccard, tversky or focal_tversky")
    params: dict[str, float | bool | list[float]] = Field(
        default_factory=dict, description="the loss's keyword parameters (alpha, beta, gamma, smooth, ...)")


class TrainConfig(Strict):
    """The knobs of one training run.  Profiles override these, never the architecture."""

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(16, ge=1)
    eval_batch_size: int | None = Field(None, ge=1, description="defaults to batch_size")
    optimizer: Optimizer = Field("adamw", description="sgd (momentum), adamw, or rmsprop (decay 0.9, TF-style eps)")
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    eps: float | None = Field(None, gt=0, description="optimizer epsilon; None = torch's default (rmsprop: 1e-3)")
    scheduler: Literal["none", "cosine", "step"] = "cosine"
    warmup_iters: int = Field(0, ge=0)
    grad_clip: float | None = Field(None, gt=0)
    image_size: int = Field(ge=16, description="square input side, px (resolved: absolute or scale x native)")
    image_scale: float | None = Field(None, gt=0, description="when set, image_size = round(scale x native size)")
    max_train_images: int | None = Field(None, ge=1, description="subsample the train split")
    max_eval_images: int | None = Field(None, ge=1, description="subsample val/test splits")
    max_val_images: int | None = Field(None, ge=1, description="subsample val only (default max_eval_images)")
    amp: bool = Field(True, description="mixed precision; only ever used on CUDA")
    num_workers: int = Field(0, ge=0, description="DataLoader workers")
    checkpoint: bool = Field(True, description="save last and best weights each epoch")
    time_limit_s: float | None = Field(None, gt=0, description="stop training after this many seconds")
    precise_bn_batches: int = Field(0, ge=0, description="re-estimate BN statistics on N train batches before val")
    augment: tuple[Augment, ...] = Field(("hflip",), description="train-time transforms, applied in order")
    transfer: TransferConfig = TransferConfig()
    bootstrap_samples: int = Field(1000, ge=0, description="B of the 95% bootstrap CI of each test metric; 0 = none")
    shuffle_train_labels: bool = Field(
        False, description="permute the training labels (seeded; classification only): a planted break that "
                           "`bench compare` must flag, and a memorisation check")
    loss: LossConfig | None = Field(None, description="semantic segmentation only: the training loss; "
                                                      "None = cross-entropy")


class TrainOverride(Strict):
    """A partial ``TrainConfig``: only the keys given are applied."""

    epochs: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1)
    eval_batch_size: int | None = Field(None, ge=1)
    optimizer: Optimizer | None = None
    lr: float | None = Field(None, gt=0)
    weight_decay: float | None = Field(None, ge=0)
    momentum: float | None = Field(None, ge=0, lt=1)
    eps: float | None = Field(None, gt=0)
    scheduler: Literal["none", "cosine", "step"] | None = None
    warmup_iters: int | None = Field(None, ge=0)
    grad_clip: float | None = Field(None, gt=0)
    image_size: int | None = Field(None, ge=16, description="absolute input side, px (pins it for every dataset)")
    image_scale: float | None = Field(None, gt=0, description="input side as a multiple of the dataset's native size")
    max_train_images: int | None = Field(None, ge=1)
    max_eval_images: int | None = Field(None, ge=1)
    max_val_images: int | None = Field(None, ge=1)
    amp: bool | None = None
    num_workers: int | None = Field(None, ge=0)
    checkpoint: bool | None = None
    time_limit_s: float | None = Field(None, gt=0)
    precise_bn_batches: int | None = Field(None, ge=0)
    augment: tuple[Augment, ...] | None = None
    transfer: TransferConfig | None = None
    bootstrap_samples: int | None = Field(None, ge=0)
    shuffle_train_labels: bool | None = None
    loss: LossConfig | None = None


class ReferenceRecipe(Strict):
    """A model's published training recipe (``reference:`` in its YAML).

    It takes effect only under profiles with ``recipe: reference`` (gpu), where the learning rate is
    scaled by the linear rule (Goyal et al. 2017) to the batch size that runs:
    ``lr = reference.lr * batch_size / reference.batch_size``.
    """

    optimizer: Optimizer | None = None
    lr: float | None = Field(None, gt=0)
    weight_decay: float | None = Field(None, ge=0)
    momentum: float | None = Field(None, ge=0, lt=1)
    eps: float | None = Field(None, gt=0)
    batch_size: int | None = Field(None, ge=1, description="the paper's batch; the lr scales from it")
    epochs: int | None = Field(None, ge=1)
    warmup_iters: int | None = Field(None, ge=0)
    scheduler: Literal["none", "cosine", "step"] | None = None
    grad_clip: float | None = Field(None, gt=0)
    image_size: int | None = Field(None, ge=16, description="the paper's input side, px")


class ProfileConfig(FileConfig):
    """``configs/profiles/<name>.yaml``: how hard every model trains, and with what resources."""

    name: str
    description: str = ""
    recipe: Recipe = Field(
        description="shared: one protocol for every model (the profile and model-profile sections; a model's "
        "`reference:` is not used); reference: each model's `reference:` recipe, lr scaled to the batch that runs"
    )
    train: TrainOverride = TrainOverride()
    resources: Resources = Resources()
    device: Literal["auto", "cpu", "cuda"] = "auto"


class DatasetOverride(Strict):
    """Per-dataset tweaks inside a model profile (``profiles: {cpu: {datasets: {mnist: {...}}}}``)."""

    train: TrainOverride = TrainOverride()
    params: dict[str, Any] = Field(default_factory=dict)


class ModelProfileOverride(Strict):
    """Per-model tweaks for one profile (``profiles: {cpu: {...}}`` in a model YAML)."""

    train: TrainOverride = TrainOverride()
    params: dict[str, Any] = Field(default_factory=dict)
    resources: Resources | None = None
    datasets: dict[str, DatasetOverride] = Field(default_factory=dict, description="applied last, by dataset")


class ModelConfig(FileConfig):
    """``configs/models/<name>.yaml``: one registered model's configuration.

    ``reference`` is the paper's recipe (used under ``recipe: reference`` profiles); ``train``
    applies under every profile; ``profiles.<p>`` under profile ``p`` only.  The precedence is in
    ``bench.config.catalog.resolve_trial``.
    """

    name: str = Field(description="config name; also the name shown on leaderboards")
    model: str | None = Field(None, description="registered builder; defaults to `name`")
    datasets: list[str] = Field(["shapes"], min_length=1, description="one trial per dataset (name or YAML path)")
    description: str = ""
    params: dict[str, Any] = Field(default_factory=dict, description="builder keyword arguments")
    reference: ReferenceRecipe = ReferenceRecipe()
    train: TrainOverride = Field(TrainOverride(), description="applies under every profile")
    profiles: dict[str, ModelProfileOverride] = Field(default_factory=dict)

    @field_validator("datasets", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @property
    def builder(self) -> str:
        """The registry name of the builder."""
        return self.model or self.name


class DatasetView(Strict):
    """How one task reads a dataset: the format adapter and where its files are.

    ``annotations``/``images`` (``coco`` only) place the JSON and the images of any COCO-format
    folder, with ``{split}`` standing for the split's file name (see ``splits``).
    """

    format: Literal["imagefolder", "coco", "voc", "masks"]
    path: str = Field(description="relative to the dataset root")
    image_size: int | None = Field(
        None, ge=1, description="native image side, px (what `image_scale` multiplies); read from the first "
        "training image when not given"
    )
    tile: int | None = Field(
        None, ge=16, description="masks: for images larger than this at the input size (px), train on random tile x "
        "tile crops and predict by overlapping sliding windows (a quarter tile of overlap, logits averaged)"
    )
    annotations: str | None = Field(
        None, description="coco: a split's JSON relative to `path`, `{split}` = its name [annotations/{split}.json]"
    )
    images: str | None = Field(
        None, description="coco: the folder `file_name` is relative to, relative to `path` (may use `{split}`) [.]"
    )

    @model_validator(mode="after")
    def _layout_keys(self) -> DatasetView:
        given = [k for k in ("annotations", "images") if getattr(self, k) is not None]
        if given and self.format != "coco":
            raise ValueError(f"{', '.join(given)} only apply to format coco (a {self.format} view has a fixed layout)")
        if self.tile is not None and self.format != "masks":
            raise ValueError(f"tile applies to format masks (semantic segmentation), not to a {self.format} view")
        return self

    def adapter_options(self) -> dict[str, str]:
        """The layout keys given, as keyword arguments of the format adapter."""
        return {k: v for k in ("annotations", "images") if (v := getattr(self, k)) is not None}


class DatasetConfig(FileConfig):
    """``configs/datasets/<name>.yaml``."""

    name: str
    description: str = ""
    root: str = Field(description="dataset directory, relative to the project root (or absolute)")
    dvc_file: str | None = Field("datasets.dvc", description="pins the version; null = unversioned")
    classes: list[str]
    views: dict[TaskName, DatasetView]
    splits: dict[Literal["train", "val", "test"], str] = Field(
        default_factory=lambda: {"train": "train", "val": "val", "test": "test"},
        description="bench's split -> the dataset's split name (VOC2007: {train: trainval, val: val, test: test})",
    )


class SuiteConfig(FileConfig):
    """``configs/suites/<name>.yaml``: the models a named benchmark runs."""

    name: str
    description: str = ""
    models: list[str] = Field(min_length=1)
    dataset: str | None = Field(None, description="overrides each model's dataset")
    seeds: int | None = Field(None, ge=1, description="seeds per (model, dataset): 0..N-1 above --seed; "
                                                      "--seeds overrides")
    profiles: dict[str, dict[str, TrainOverride]] = Field(
        default_factory=dict,
        description="this suite's own train settings (its budget), by profile, then model: {cpu: {resnet18: {...}}}",
    )


class Tolerance(Strict):
    """How much worse a metric may get before it counts: ``max(abs, rel * |base|)``."""

    abs: float = Field(0.0, ge=0, description="absolute tolerance, in the metric's units")
    rel: float = Field(0.0, ge=0, description="relative tolerance, a fraction of the base value")
    higher_is_better: bool = True


class BootstrapSettings(Strict):
    """The paired bootstrap of ``bench compare``."""

    samples: int = Field(1000, ge=100, description="resamples B")
    level: float = Field(0.95, gt=0.5, lt=1, description="confidence level of the delta's interval")
    seed: int = 0


class RegressionConfig(Strict):
    """``configs/regression.yaml``: when ``bench compare`` calls a change a regression."""

    bootstrap: BootstrapSettings = BootstrapSettings()
    default: Tolerance = Tolerance(abs=0.01, rel=0.02)
    metrics: dict[str, Tolerance] = Field(default_factory=dict, description="per-metric tolerance (replaces default)")

    def tolerance(self, metric: str) -> Tolerance:
        return self.metrics.get(metric, self.default)
