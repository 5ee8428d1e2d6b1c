"""switchyard: route coding-agent tasks to providers and models by rules, run them, count every dollar."""

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
