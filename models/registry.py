"""One registry of networks: ``build(name, config)`` is the only way the harness makes one."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from typing import Any

from models.base import ConfigError, Model, NetConfig

_MODELS: dict[str, type[Model]] = {}
# Models whose module is imported on first use, because its dependency is slow to import
# (torch: ~1 s, in every process that starts): name -> (module, the package it needs).
_LAZY: dict[str, tuple[str, str]] = {}


def register(cls: type[Model]) -> type[Model]:
    """Class decorator: make a model buildable by its ``name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a non-empty `name` to be registered")
    if cls.name in _MODELS and _MODELS[cls.name] is not cls:
        raise TypeError(f"model name {cls.name!r} is registered twice")
    _MODELS[cls.name] = cls
    return cls


def register_lazy(name: str, module: str, needs: str) -> None:
    """Make model ``name`` (registered by importing ``module``) available wherever the
    package ``needs`` is installed, without importing either until it is used."""
    if importlib.util.find_spec(needs) is not None:
        _LAZY[name] = (module, needs)


def available() -> list[str]:
    return sorted({*_MODELS, *_LAZY})


def model_class(name: str) -> type[Model]:
    if name not in _MODELS and name in _LAZY:
        module, needs = _LAZY.pop(name)
        importlib.import_module(module)  # registers the model, or leaves it out
        if name not in _MODELS:
            raise ConfigError(
                f"model {name!r} needs {needs}, which is installed but does not import; "
                "reinstall it (see the Makefile)"
            )
    try:
        return _MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose one of {available()}") from None


def config_class(name: str) -> type[NetConfig]:
    return model_class(name).config_class


def build(name: str, config: NetConfig | Mapping[str, Any]) -> Model:
    """Build model ``name`` from its config object or a plain mapping of its settings."""
    cls = model_class(name)
    if not isinstance(config, NetConfig):
        config = cls.config_class.from_dict(config)
    return cls(config)
