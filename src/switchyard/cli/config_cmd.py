"""`switchyard config check` and `switchyard init`."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import click

from switchyard.cli.common import config_option, dump_json, echo_json, json_option, warn
from switchyard.config import DEFAULT_CONFIG, find_config, load_config
from switchyard.errors import ConfigError, InputError

__all__ = ["config", "init", "migrate"]


@click.group()
def config() -> None:
    """Check a config file, or migrate an old one."""


@config.command("check")
@config_option
@json_option
def check(config_path: str | None, as_json: bool) -> None:
    """Validate the config: keys, references, prices, and every rule condition.

    Exit status 2 when it is invalid; the problems go to stderr, each with its
    file, key path, line and column.
    """
    path = find_config(config_path)
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        if as_json:
            warn(dump_json({"ok": False, "file": str(path), "errors": [p.to_dict() for p in exc.problems]}))
            raise click.exceptions.Exit(2) from None
        raise
    summary = {
        "providers": len(loaded.providers),
        "models": len(loaded.catalog),
        "rules": len(loaded.routing.rules),
        "workflows": len(loaded.workflows),
    }
    if as_json:
        echo_json(
            {
                "ok": True,
                "file": str(path),
                "summary": summary,
                "warnings": [w.to_dict() for w in loaded.warnings],
            }
        )
        return
    for w in loaded.warnings:
        warn("warning: " + w.render())
    parts = ", ".join(f"{n} {k}" for k, n in summary.items())
    click.echo(f"{path}: ok ({parts})")


@config.command("migrate")
@click.argument("old", type=click.Path(dir_okay=False))
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
def migrate(old: str, out_path: str | None) -> None:
    """Convert the seed system's coordinator config to this one: switchyard config migrate OLD.toml > switchyard.toml

    Renamed keys, [github] and [worktree], the bare estimated_tokens fact, and agent or HTTP command
    templates switchyard runs better another way are rewritten, each with a comment saying what it
    was. What cannot be converted is a warning on stderr naming its line. Exit status 2 when the
    result does not load yet (the warnings say why).
    """
    from switchyard.config.migrate import migrate_text

    try:
        with open(old, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{old}: cannot read it: {exc}") from None
    done = migrate_text(text, old)
    for line in done.warnings:
        warn("warning: " + line)
    if out_path is not None:
        target = Path(out_path)
        if target.exists() and target.resolve() == Path(old).resolve():
            raise InputError(f"--out {out_path}: that is the file being migrated; write the result elsewhere")
        target.write_text(done.text, encoding="utf-8")
    else:
        click.echo(done.text, nl=False)
    if not done.loads:
        raise click.exceptions.Exit(2)


#: `init --agent NAME` -> (the starter shipped for that agent CLI, what to do before the first run).
STARTERS: dict[str, tuple[str, str]] = {
    "claude": (
        "starter.toml",
        "install Claude Code (npm install -g @anthropic-ai/claude-code) and set ANTHROPIC_API_KEY",
    ),
    "codex": ("starter-codex.toml", "install the Codex CLI (npm install -g @openai/codex) and set OPENAI_API_KEY"),
    "gemini": (
        "starter-gemini.toml",
        "install the Gemini CLI (npm install -g @google/gemini-cli), set GEMINI_API_KEY "
        "and see the top of the file for ~/.gemini/settings.json",
    ),
}


def starter_text(agent: str = "claude") -> str:
    """The commented starter config shipped with the package for `agent` (a key of `STARTERS`)."""
    name = STARTERS[agent][0]
    return resources.files("switchyard.examples").joinpath(name).read_text(encoding="utf-8")


@click.command()
@click.argument("path", required=False, default=DEFAULT_CONFIG, type=click.Path(dir_okay=False))
@click.option(
    "--agent",
    type=click.Choice(sorted(STARTERS)),
    default="claude",
    show_default=True,
    help="The agent CLI the starter runs tasks with.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: str, agent: str, force: bool) -> None:
    """Write a commented starter config to PATH (default ./switchyard.toml) for one agent CLI."""
    target = Path(path)
    if target.exists() and not force:
        raise InputError(f"{target} already exists; pass --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(starter_text(agent), encoding="utf-8")
    click.echo(f"wrote {target}; check it with: switchyard config check --config {target}")
    click.echo(f"before the first run: {STARTERS[agent][1]}")
