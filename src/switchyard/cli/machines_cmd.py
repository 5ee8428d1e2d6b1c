"""`switchyard machines`: every coordinator process on this ledger, its lease and what it runs."""

from __future__ import annotations

from typing import Any

import click

from switchyard.cli.common import config_option, echo_json, json_option, load, open_ledger, table
from switchyard.ledger.leases import LeaseRow, Leases
from switchyard.ledger.store import Ledger

__all__ = ["machine_rows", "machines", "machines_section"]

RECENT_MS = 3_600_000  # ended and taken-over sessions are shown for an hour


def machine_rows(ledger: Ledger, running: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """Each session that is live, being taken over, or ended in the last hour; `running`: task ids per executor."""
    leases = Leases(ledger.db)
    now = leases.now_ms()
    rows: list[LeaseRow] = [
        r
        for r in leases.sessions(states=("live", "taking", "taken", "ended"))
        if r.state in ("live", "taking") or (r.ended_ms or 0) > now - RECENT_MS
    ]
    out = []
    for r in rows:
        late = r.state == "live" and now - r.renewed_ms > r.lease_ms
        out.append(
            {
                "executor_id": r.executor_id,
                "session": r.session,
                "host": r.host,
                "pid": r.pid,
                "state": "unresponsive" if late else r.state,
                "lease_expires_in_s": round((r.expires_ms - now) / 1000, 1),
                "last_renewal_s_ago": round((now - r.renewed_ms) / 1000, 1),
                "taken_by": r.taken_by,
                "running": sorted(running.get(r.executor_id, []))
                if running is not None and r.state == "live"
                else None,
            }
        )
    return out


def machines_section(ledger: Ledger) -> str:
    """A few lines for `switchyard status`: each live machine and its lease (nothing when none is live)."""
    rows = [r for r in machine_rows(ledger) if r["state"] in ("live", "unresponsive", "taking")]
    if not rows:
        return ""
    lines = [f"machines: {len(rows)} live"]
    for r in rows:
        lines.append(
            f"  {r['executor_id']} ({r['host']} pid {r['pid']}): {r['state']}, "
            f"renewed {r['last_renewal_s_ago']:g}s ago, lease ends in {r['lease_expires_in_s']:g}s"
        )
    return "\n".join(lines)


@click.command()
@config_option
@json_option
def machines(config_path: str | None, as_json: bool) -> None:
    """Every coordinator process on this ledger: executor id, host, pid, lease, last renewal, running tasks."""
    loaded = load(config_path)
    from switchyard.coordinator import running_by_executor, system_db_of

    with open_ledger(loaded) as ledger:
        running = running_by_executor(system_db_of(loaded), Leases(ledger.db))
        rows = machine_rows(ledger, running)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no machines yet: `switchyard run` starts one")
        return
    body = [
        [
            r["executor_id"],
            r["host"],
            str(r["pid"]),
            r["state"] + (f" by {r['taken_by'].split('/')[0]}" if r["taken_by"] else ""),
            f"{r['lease_expires_in_s']:g}s" if r["state"] == "live" else "-",
            f"{r['last_renewal_s_ago']:g}s ago",
            str(len(r["running"])) + (": " + ", ".join(r["running"][:3]) if r["running"] else "")
            if r["running"] is not None
            else "-",
        ]
        for r in rows
    ]
    click.echo(table(["executor", "host", "pid", "state", "lease left", "renewed", "running"], body, right={2}))
