"""Prompt templates, filled safely from task fields.

A template names fields in braces: `{title}`, `{body}`, `{id}`, `{labels}`,
`{priority}`, `{type}`, `{source}`, `{url}`, `{stage}`, `{workflow}`,
`{metadata.KEY}`, and, inside workflows, `{previous_output}` and
`{stage_output.NAME}`. `{last_rejection}` is why `[verify]` rejected the task's
last change (empty before any rejection); a template that does not name it gets
it appended after a rejection, so the next model always learns why. Substitution is one pass over the template: text from a
task is inserted as it is and never interpreted again, so a task body that
contains `{secret}` or `{{...}}` stays literal. There is no code execution and
no attribute access beyond these names. `{{` and `}}` write literal braces.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from switchyard.errors import ConfigError, did_you_mean
from switchyard.task import Task

__all__ = [
    "DEFAULT_STAGE_TEMPLATE",
    "DEFAULT_TEMPLATE",
    "TEMPLATE_FIELDS",
    "check_template",
    "rejection_note",
    "render_prompt",
]

DEFAULT_TEMPLATE = """{title}

{body}
"""

# For workflow stages without a template of their own: the task, and what the stage before produced.
DEFAULT_STAGE_TEMPLATE = """Stage: {stage} (workflow {workflow})

{title}

{body}

Output of the previous stage:
{previous_output}
"""

TEMPLATE_FIELDS = frozenset(
    {
        "id",
        "title",
        "body",
        "labels",
        "priority",
        "type",
        "source",
        "url",
        "stage",
        "workflow",
        "previous_output",
        "previous_output_file",
        "loop_count",
        "last_rejection",
    }
)
_FIELD = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_\-]+)?)\}")


def check_template(template: str, where: str) -> None:
    """Reject unknown fields at load time, with a suggestion."""
    for m in _FIELD.finditer(template):
        name = m.group(1)
        if name is None:
            continue
        head = name.split(".", 1)[0]
        if "." in name and head in ("metadata", "stage_output", "stage_output_file"):
            continue
        if name not in TEMPLATE_FIELDS:
            raise ConfigError.single(
                f"unknown template field {{{name}}}" + did_you_mean(name, TEMPLATE_FIELDS, "{{{}}}".format),
                key_path=where,
                hint="fields: "
                + ", ".join("{" + f + "}" for f in sorted(TEMPLATE_FIELDS))
                + ", {metadata.KEY}, {stage_output.NAME}",
            )


def render_prompt(
    template: str | None,
    task: Task,
    *,
    stage: str | None = None,
    workflow: str | None = None,
    previous_output: str = "",
    previous_output_file: str = "",
    stage_outputs: Mapping[str, str] | None = None,
    stage_output_files: Mapping[str, str] | None = None,
    loop_count: int = 0,
    last_rejection: str = "",
) -> str:
    """Fill `template` (default: title and body) from `task`, in one pass.

    `last_rejection` (why the last change was rejected) is appended when the template does not place it.
    """
    values = {
        "id": task.id,
        "title": task.title,
        "body": task.body,
        "labels": ", ".join(task.labels),
        "priority": f"P{task.priority}",
        "type": task.type or "",
        "source": task.source or "",
        "url": task.url or "",
        "stage": stage or "",
        "workflow": workflow or "",
        "previous_output": previous_output,
        "previous_output_file": previous_output_file,
        "loop_count": str(loop_count),
        "last_rejection": last_rejection,
    }
    outputs = stage_outputs or {}
    files = stage_output_files or {}

    def fill(m: re.Match[str]) -> str:
        whole = m.group(0)
        if whole == "{{":
            return "{"
        if whole == "}}":
            return "}"
        name = m.group(1)
        if name.startswith("metadata."):
            return str(task.metadata.get(name[len("metadata.") :], ""))
        if name.startswith("stage_output."):
            return outputs.get(name[len("stage_output.") :], "")
        if name.startswith("stage_output_file."):
            return files.get(name[len("stage_output_file.") :], "")
        return values.get(name, whole)

    text = template if template is not None else DEFAULT_TEMPLATE
    filled = _FIELD.sub(fill, text)
    if last_rejection and not any(m.group(1) == "last_rejection" for m in _FIELD.finditer(text)):
        filled = filled.rstrip("\n") + "\n\n" + last_rejection + "\n"
    return filled


def rejection_note(check: str, detail: str, *, limit: int = 4000) -> str:
    """What the next attempt is told about the last rejected change: the check and the tail of its output."""
    tail = detail[-limit:].strip()
    head = f"A previous attempt at this task made a change that was rejected by the check '{check}'."
    return head + (f" Its output ended with:\n{tail}" if tail else "") + "\nMake a change that passes it."
