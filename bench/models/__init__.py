"""The model registry.

A model is a builder function registered with ``@register_model`` next to its definition::

    @register_model("unet", task="semantic_segmentation", source="bench", paper="arXiv:1505.04597")
    def build_unet(num_classes: int, image_size: int, base_channels: int = 64) -> nn.Module: ...

Builders receive ``num_classes`` and ``image_size`` from the engine and the rest from the model
YAML's ``params``.  ``num_classes`` is the number of dataset classes for classification and
detection (detectors add their own background class) and classes + 1 (background = 0) for semantic
segmentation.

What the engine expects of a classification network (``nn.Module``):

* eval mode: ``forward(x [B, 3, S, S]) -> logits [B, num_classes]``;
* train mode may return a tuple ``(logits, aux_1, ...)``; each auxiliary head's loss is added with
  weight ``model.aux_loss_weight`` (Inception's auxiliary classifiers); eval never uses them;
* ``model.training_loss(logits, y)``, when defined, replaces cross-entropy (``hog_svm``);
* ``model.bench_head`` (module path of the classifier, e.g. ``"fc"``) and optionally
  ``model.bench_stages`` (module paths of the backbone stages, input to output) drive the transfer
  modes in ``bench.engine.transfer``; without ``bench_stages`` the top-level children that hold
  parameters, other than the head, are the stages.

Modules here never import torch at module level, so ``bench list`` stays fast; the
network code lives in underscore modules imported inside the builders.
"""

from __future__ import annotations

import builtins
import inspect
import os
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from bench.registry import Registry

ENGINE_ARGS = ("num_classes", "image_size")


@dataclass(frozen=True)
class RefVariant:
    """A further configuration of a model with its own published parameter count, checked by the
    fidelity test like the reference (e.g. Faster R-CNN's FPN option beside its C4 reference)."""

    label: str
    params: Mapping[str, Any]  # builder params over the defaults
    published_params: float
    published_ref: str
    num_classes: int | None = None  # None: the spec's ref_num_classes
    image_size: int | None = None  # None: the spec's ref_image_size


@dataclass(frozen=True)
class ModelSpec:
    """Typed metadata of a registered model."""

    task: str
    source: str  # where the network comes from: torchvision, timm, smp or bench (written here)
    paper: str = ""
    description: str = ""
    # Architecture fidelity: the parameter count the paper (or the reference implementation it
    # names) publishes for the reference configuration, and where that figure is printed.  The
    # fidelity test builds the model with ``ref_num_classes``/``ref_image_size`` and the builder's
    # defaults and requires the count to be within 2%.  ``None`` with a ``published_ref`` that says
    # why no figure exists.
    published_params: float | None = None
    published_ref: str = ""
    ref_num_classes: int = 1000
    ref_image_size: int = 224
    # Parameters that exist only while training (auxiliary heads) and are not part of the
    # published count: module-name prefixes excluded from the fidelity count.
    train_only_modules: tuple[str, ...] = ()
    # Other configurations with a published count of their own (``RefVariant``), each checked the same way.
    ref_variants: tuple[RefVariant, ...] = ()
    # Contract checks (tests/models/test_contract.py, by test name without ``test_``) that cannot apply to
    # this model, each with the reason and where its replacement is tested: for classical baselines with
    # almost nothing to fit (``threshold_otsu``: one bit cannot overfit a batch).  Every other check runs.
    contract_exempt: Mapping[str, str] = field(default_factory=dict)


Builder = Callable[..., Any]


def _discover_packages() -> tuple[str, ...]:
    # BENCH_PLUGINS lets a user (or a test) register extra models from their own modules; it is
    # read when discovery runs so Ray workers, which inherit the variable, see the same models.
    extra = tuple(p for p in os.environ.get("BENCH_PLUGINS", "").split(",") if p)
    return ("bench.models", *extra)


class _ModelRegistry(Registry[Builder, ModelSpec]):
    def _ensure_discovered(self) -> None:
        self._discover = _discover_packages()
        super()._ensure_discovered()


MODELS: Registry[Builder, ModelSpec] = _ModelRegistry("model")


def register_model(name: str, **spec: Any) -> Callable[[Builder], Builder]:
    """Decorator registering a builder under ``name`` (duplicates raise); ``spec``: ``ModelSpec`` fields."""
    return MODELS.register(name, ModelSpec(**spec))


def _param_types(builder: Builder) -> dict[str, inspect.Parameter]:
    sig = inspect.signature(builder)
    return {n: p for n, p in sig.parameters.items() if n not in ENGINE_ARGS}


def _annotation(builder: Builder, param: inspect.Parameter) -> Any:
    ann = param.annotation
    if isinstance(ann, str):
        # Evaluate each annotation on its own: the return type may name torch, which the module
        # imports only under TYPE_CHECKING.
        ns = {**vars(builtins), **vars(typing), **getattr(inspect.getmodule(builder), "__dict__", {})}
        ann = eval(ann, ns)  # noqa: S307 - our own source annotations
    return Any if ann is inspect.Parameter.empty else ann


def check_params(name: str, params: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Validate YAML ``params`` against the builder signature; errors name ``where`` and the key."""
    builder = MODELS.get(name).obj
    allowed = _param_types(builder)
    out: dict[str, Any] = {}
    for key, val in params.items():
        if key in ENGINE_ARGS:
            raise ValueError(f"{where}: params.{key} is set by the engine from the dataset/train config")
        if key not in allowed:
            from bench.registry import closest

            hint = closest(key, list(allowed))
            did = f" did you mean '{hint[0]}'?" if hint else ""
            raise ValueError(
                f"{where}: unknown key 'params.{key}' for model {name!r};{did} valid keys: "
                f"{', '.join(allowed) or '(none)'}"
            )
        try:
            out[key] = TypeAdapter(_annotation(builder, allowed[key])).validate_python(val)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ValueError(f"{where}: key 'params.{key}': {first['msg']} (got {val!r})") from None
    return out


def build_model(name: str, num_classes: int, image_size: int, params: Mapping[str, Any]) -> Any:
    """Instantiate the registered model ``name`` (imports torch through the builder)."""
    return MODELS.get(name).obj(num_classes=num_classes, image_size=image_size, **dict(params))
