"""The networks, behind one interface (``models.base.Model``) and one registry.

>>> import models
>>> net = models.build("dense", {"n_inputs": 64, "n_classes": 10, "hidden": [32]})

This package knows nothing of the harness or the reports.
"""

# Importing a model module registers it.
from models import dense as _dense  # noqa: F401
from models import dropout as _dropout  # noqa: F401
from models import lsh as _lsh  # noqa: F401
from models import standout as _standout  # noqa: F401
from models import winner_take_all as _wta  # noqa: F401
from models.base import ConfigError, EpochStats, Model, MultCounts, NetConfig
from models.registry import available, build, config_class, model_class, register_lazy

# PyTorch's peer: importing torch costs about a second, so only the processes that build it do.
register_lazy("torch-dense", "models.torch_dense", needs="torch")

__all__ = [
    "ConfigError",
    "EpochStats",
    "Model",
    "MultCounts",
    "NetConfig",
    "available",
    "build",
    "config_class",
    "model_class",
]
