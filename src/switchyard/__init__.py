"""switchyard: route coding-agent tasks to providers and models by rules, run them, count every dollar.

The public names below are imported on first use, so `import switchyard.cli`
(and every command) pays only for the modules it needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from switchyard.catalog import Catalog, Usage
    from switchyard.config import LoadedConfig, load_config, loads_config
    from switchyard.errors import ConfigError, InputError, RunError, SwitchyardError
    from switchyard.router import Candidate, Decision, Router
    from switchyard.task import Task

__all__ = [
    "Candidate",
    "Catalog",
    "ConfigError",
    "Decision",
    "InputError",
    "LoadedConfig",
    "Router",
    "RunError",
    "SwitchyardError",
    "Task",
    "Usage",
    "load_config",
    "loads_config",
]

__version__ = "0.1.0"

_WHERE = {
    "Candidate": "switchyard.router",
    "Decision": "switchyard.router",
    "Router": "switchyard.router",
    "Catalog": "switchyard.catalog",
    "Usage": "switchyard.catalog",
    "LoadedConfig": "switchyard.config",
    "load_config": "switchyard.config",
    "loads_config": "switchyard.config",
    "ConfigError": "switchyard.errors",
    "InputError": "switchyard.errors",
    "RunError": "switchyard.errors",
    "SwitchyardError": "switchyard.errors",
    "Task": "switchyard.task",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'switchyard' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
