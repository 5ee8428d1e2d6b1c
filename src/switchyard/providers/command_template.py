"""The command provider's argv templates: which placeholders exist and how they are filled.

Kept apart from `command.py` (which spawns processes) so that loading a config
can check templates without importing any process machinery.
"""

from __future__ import annotations

import re

__all__ = ["PLACEHOLDERS", "placeholders_in", "render_argv"]

# What `{name}` can stand for in `command_template` and `max_cost_flag` (filled by `CommandRunner.execute`).
PLACEHOLDERS = frozenset({"prompt_file", "model", "output_file", "task_id", "stage", "workdir", "max_cost_usd"})

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def placeholders_in(element: str) -> list[str]:
    """The `{name}` placeholders written in one template element, in order."""
    return _PLACEHOLDER.findall(element)


def render_argv(template: tuple[str, ...], values: dict[str, str]) -> list[str]:
    """Substitute `{name}` placeholders inside each element; one element in, one element out."""
    return [_PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), element) for element in template]
