"""The `switchyard` command line: thin commands over the library.

Exit status: 0 success, 1 runtime failure, 2 usage or config error. Results go
to stdout, diagnostics to stderr. Subcommands are imported only when used, so
`switchyard route` does not pay for the dashboard or the HTTP client.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from switchyard.errors import SwitchyardError, did_you_mean

__all__ = ["LOADED", "cli", "main"]

# The config the running command loaded (`cli.common.load` sets it): where a config error raised later is placed.
LOADED: list[Any] = []

# command name -> "module:attribute", imported on first use.
_LAZY: dict[str, str] = {
    "config": "switchyard.cli.config_cmd:config",
    "init": "switchyard.cli.config_cmd:init",
    "route": "switchyard.cli.route_cmd:route",
    "models": "switchyard.cli.catalog_cmd:models",
    "catalog": "switchyard.cli.catalog_cmd:catalog",
    "demo": "switchyard.cli.demo_cmd:demo",
    "exec": "switchyard.cli.run_cmd:exec_",
    "log": "switchyard.cli.run_cmd:log",
    "providers": "switchyard.cli.run_cmd:providers",
    "run": "switchyard.cli.coord_cmd:run",
    "status": "switchyard.cli.coord_cmd:status",
    "machines": "switchyard.cli.machines_cmd:machines",
    "show": "switchyard.cli.task_cmd:show",
    "retry": "switchyard.cli.task_cmd:retry",
    "cancel": "switchyard.cli.task_cmd:cancel",
    "budget": "switchyard.cli.budget_cmd:budget",
    "report": "switchyard.cli.report_cmd:report",
    "dashboard": "switchyard.cli.dashboard_cmd:dashboard",
    "replay": "switchyard.cli.replay_cmd:replay",
    "tune": "switchyard.cli.replay_cmd:tune",
    "outcomes": "switchyard.cli.replay_cmd:outcomes",
}


class SwitchyardGroup(click.Group):
    """A group that loads subcommands lazily and turns our errors into exit codes."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_LAZY))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            return cmd
        target = _LAZY.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # click suggests only among commands it has already loaded; ours load lazily, so suggest among them all.
        name = click.utils.make_str(args[0])
        if not name.startswith("-") and not ctx.resilient_parsing and self.get_command(ctx, name) is None:
            ctx.fail(f"No such command '{name}'{did_you_mean(name, self.list_commands(ctx))}.")
        return super().resolve_command(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        LOADED.clear()
        try:
            return super().invoke(ctx)
        except SwitchyardError as exc:
            click.echo(f"error: {exc}" if not _is_config_error(exc) else str(_located(exc)), err=True)
            ctx.exit(exc.exit_code)


def _is_config_error(exc: SwitchyardError) -> bool:
    from switchyard.errors import ConfigError

    return isinstance(exc, ConfigError)


def _located(exc: SwitchyardError) -> SwitchyardError:
    """A config error raised after loading (it names only a key) placed in the loaded file: file:line:col."""
    from switchyard.errors import ConfigError

    return LOADED[-1].locate(exc) if LOADED and isinstance(exc, ConfigError) else exc


@click.group(cls=SwitchyardGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="switchyard", prog_name="switchyard")
def cli() -> None:
    """Route coding-agent tasks to providers and models by rules, run them, and account for every dollar."""


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="switchyard")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
