"""Config: find, read, validate and compile `switchyard.toml`."""

from switchyard.config.load import CONFIG_ENV, DEFAULT_CONFIG, LoadedConfig, find_config, load_config, loads_config

__all__ = ["CONFIG_ENV", "DEFAULT_CONFIG", "LoadedConfig", "find_config", "load_config", "loads_config"]
