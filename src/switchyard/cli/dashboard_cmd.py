"""`switchyard dashboard`: the web page with model distribution, spend, budgets, health, decisions, experiments."""

from __future__ import annotations

import click

from switchyard.cli.common import config_option, load, open_ledger

__all__ = ["dashboard"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8377, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free port).")
@config_option
def dashboard(host: str, port: int, config_path: str | None) -> None:
    """Serve the dashboard (and its JSON endpoints) until Ctrl-C."""
    from switchyard.dashboard import make_server

    loaded = load(config_path)
    with open_ledger(loaded) as ledger:
        server = make_server(loaded, ledger, host, port)
        bound_host, bound_port = server.server_address[:2]
        click.echo(f"switchyard dashboard on http://{bound_host!s}:{bound_port}/  (Ctrl-C to stop)", err=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
