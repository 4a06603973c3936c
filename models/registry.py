"""One registry of networks: ``build(name, config)`` is the only way the harness makes one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.base import ConfigError, Model, NetConfig

_MODELS: dict[str, type[Model]] = {}


def register(cls: type[Model]) -> type[Model]:
    """Class decorator: make a model buildable by its ``name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a non-empty `name` to be registered")
    if cls.name in _MODELS and _MODELS[cls.name] is not cls:
        raise TypeError(f"model name {cls.name!r} is registered twice")
    _MODELS[cls.name] = cls
    return cls


def available() -> list[str]:
    return sorted(_MODELS)


def model_class(name: str) -> type[Model]:
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
