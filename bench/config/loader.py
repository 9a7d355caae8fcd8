"""YAML loading with one level of ``include`` and schema errors that name the file and key."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from bench.registry import closest

S = TypeVar("S", bound=BaseModel)


class ConfigError(ValueError):
    """A config file is malformed; the message names the file, the key and the fix."""


def read_yaml(path: Path, *, allow_include: bool = True) -> dict[str, Any]:
    """Parse ``path`` into a mapping, merging an ``include:`` file underneath (one level only)."""
    return read_yaml_origins(path, allow_include=allow_include)[0]


def leaves(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every non-mapping value of ``data`` by dotted key: ``{"profiles.cpu.train.lr": 0.001}``.

    An empty mapping counts as a leaf (it states something: "no params").
    """
    out: dict[str, Any] = {}
    for key, val in data.items():
        name = f"{prefix}{key}"
        if isinstance(val, Mapping) and val:
            out.update(leaves(val, name + "."))
        else:
            out[name] = val
    return out


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (shorter messages)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def read_yaml_origins(path: Path, *, allow_include: bool = True) -> tuple[dict[str, Any], dict[str, str]]:
    """``read_yaml`` plus, for every leaf of the result, the file that wrote it (dotted key -> path)."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    inc = data.pop("include", None)
    here = display_path(path)
    if inc is None:
        return data, dict.fromkeys(leaves(data), here)
    if not allow_include:
        # Deep include chains are what make mmdetection configs unreadable; one level is enough.
        raise ConfigError(f"{path}: 'include' inside an included file is not allowed (one level only)")
    base, origins = read_yaml_origins((path.parent / str(inc)).resolve(), allow_include=False)
    merged = _one_size_key(deep_merge(base, data), data)
    origins.update(dict.fromkeys(leaves(data), here))
    return merged, {k: origins.get(k, here) for k in leaves(merged)}


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``; nested mappings merge, everything else is replaced."""
    out = dict(base)
    for key, val in over.items():
        if isinstance(val, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], val)
        else:
            out[key] = val
    return out


SIZE_KEYS = ("image_size", "image_scale")  # two forms of one setting: the input size


def _one_size_key(merged: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """Where the including file sets one input-size key, drop the other one the include set."""
    out = dict(merged)
    for key, val in out.items():
        if isinstance(val, dict):
            out[key] = _one_size_key(val, own.get(key) if isinstance(own.get(key), dict) else {})
    mine = [k for k in SIZE_KEYS if k in own]
    if len(mine) == 1:
        for k in SIZE_KEYS:
            if k != mine[0]:
                out.pop(k, None)
    return out


def _submodel(cls: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The schema class that owns the last element of ``loc`` (for listing valid keys).

    A ``dict[K, V]`` field consumes one element of ``loc`` (the key) and continues in ``V``, so
    ``views.detection.annotatons`` lists ``DatasetView``'s keys.
    """
    cur: Any = cls
    for part in loc[:-1]:
        if get_origin(cur) is dict:
            cur = _unwrap(get_args(cur)[1])
        elif isinstance(cur, type) and issubclass(cur, BaseModel) and part in cur.model_fields:
            cur = _unwrap(cur.model_fields[part].annotation)
        else:
            return None
    return cur if isinstance(cur, type) and issubclass(cur, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    """``Foo | None`` -> ``Foo``; ``dict[str, Foo]`` stays a dict type."""
    args = [a for a in get_args(tp) if a is not type(None)]
    if get_origin(tp) is not dict and len(args) == 1:
        return args[0]
    return tp


def _file_of(key: str, path: Path, origins: Mapping[str, str] | None) -> str:
    """The file that wrote ``key`` (or a key under it): the included file when it came from there."""
    for dotted, origin in (origins or {}).items():
        if dotted == key or dotted.startswith(key + "."):
            return origin
    return str(path)


def format_validation_error(
    path: Path, cls: type[BaseModel], err: ValidationError, origins: Mapping[str, str] | None = None
) -> str:
    """One line per problem: file (the included one when the key came from there), dotted key, what is
    wrong and the valid choices."""
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        where = _file_of(key, path, origins)
        if e["type"] == "extra_forbidden":
            owner = _submodel(cls, loc)
            valid = sorted(owner.model_fields) if owner else []
            hint = closest(str(loc[-1]), valid)
            msg = f"{where}: unknown key '{key}'"
            if hint:
                msg += f"; did you mean '{hint[0]}'?"
            lines.append(msg + f" valid keys: {', '.join(valid)}")
        else:
            got = e.get("input")
            lines.append(f"{where}: key '{key}': {e['msg']} (got {got!r})")
    return "\n".join(lines)


def validate(path: Path, cls: type[S], data: dict[str, Any], origins: Mapping[str, str] | None = None) -> S:
    """Validate ``data`` read from ``path`` against ``cls`` or raise ConfigError.

    ``origins`` (dotted key -> file, from :func:`read_yaml_origins`) names an included file in errors.
    """
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(path, cls, err, origins)) from None


def load(path: Path, cls: type[S], **defaults: Any) -> S:
    """Read, include-merge and validate one YAML file; ``defaults`` fill missing top-level keys.

    A ``FileConfig`` result remembers its file and which file wrote each key (``origin``).
    """
    data, origins = read_yaml_origins(path)
    for key, val in defaults.items():
        data.setdefault(key, val)
    obj = validate(path, cls, data, origins)
    if hasattr(obj, "_origins"):
        obj._source = display_path(path)  # type: ignore[attr-defined]
        obj._origins = origins  # type: ignore[attr-defined]
    return obj
