"""The web dashboard: one self-contained page and the JSON endpoints behind each panel.

Standard library only (`http.server`); the page draws its charts as SVG in the
browser from the JSON endpoints, with no CDN and no external assets, so it
works offline. Every endpoint reads the rollups, so each answers quickly over
millions of attempts.

    GET /                      the page (refreshes itself)
    GET /api/summary?days=30   totals and model distribution
    GET /api/spend?by=model    spend per day by model (or by=provider)
    GET /api/budgets           every budget limit
    GET /api/providers         provider health and breaker events
    GET /api/decisions?limit=  recent attempts with the reason for their model
    GET /api/experiments       A/B results
    GET /api/verification      verified outcomes: rejections and why, escalation paths, first-try rates
    GET /api/money?days=30     unpriced attempts (usage unreadable, charged their worst case), flagged costs
    GET /api/report            the full report (as `switchyard report --json`)
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from switchyard._records import record
from switchyard.budgets import BudgetLine, Budgets
from switchyard.config import LoadedConfig
from switchyard.health import Health
from switchyard.ledger.store import Ledger, from_ms
from switchyard.report import (
    BreakerEvent,
    Experiment,
    Group,
    MoneyInQuestion,
    Report,
    Spend,
    Verification,
    Window,
    breaker_events,
    experiments,
    jsonable,
    money_in_question,
    report,
    spend_by_day,
    totals_by_model,
    verification,
)

__all__ = ["BadQuery", "Dashboard", "serve"]

DAY_MS = 86_400_000


@record
class Since:
    """The start of a dashboard window (its end is now)."""

    since_ms: int | None


@record
class Summary:
    """`/api/summary`: the total and the model distribution."""

    window: Since
    total: Group | None
    models: tuple[Group, ...]


@record
class ProviderStatus:
    """One provider's health and breaker state."""

    provider: str
    kind: str
    status: str
    reason: str
    breaker: str


@record
class Providers:
    """`/api/providers`: every provider's health, and the latest breaker events."""

    providers: tuple[ProviderStatus, ...]
    events: tuple[BreakerEvent, ...]


@record
class Decision:
    """`/api/decisions`: one recent attempt and why its model was chosen."""

    at: str  # ISO 8601
    task: str
    stage: str | None
    model: str
    provider: str
    rule: int | None
    reason: str | None
    arm: str | None
    status: str
    error: str | None
    cost_usd: Decimal
    latency_ms: int
    verdict: str | None = None  # `[verify]`'s outcome, when it judged the attempt
    verify_check: str | None = None  # the check that rejected it
    # Only when the cost is not the catalog's price of a usage read: "unknown" (its worst case,
    # charged because its usage could not be read) or "reported" (the provider's own figure).
    cost_basis: str | None = field(default=None, metadata={"omit_none": True})
    flagged: bool | None = field(default=None, metadata={"omit_none": True})  # reported cost far from catalog
    reported_model: str | None = field(default=None, metadata={"omit_none": True})  # the model the provider ran


@record
class Money:
    """`/api/money`: unpriced attempts (usage unreadable, charged their worst case) and flagged ones."""

    window: Since
    question: MoneyInQuestion | None


MAX_DAYS = 36_500  # a hundred years: any window a ledger can hold


class BadQuery(ValueError):
    """A query parameter the endpoint cannot use: answered 400 with this message."""


def _one(query: dict[str, list[str]], name: str, default: str) -> str:
    values = query.get(name)
    if not values:
        return default
    if len(set(values)) > 1:
        raise BadQuery(f"{name}: given {len(values)} times with different values")
    return values[0]


def _whole(text: str, name: str, low: int, high: int, alternative: str = "") -> int:
    """A whole number in [low, high] from a query parameter, or a `BadQuery` saying what is allowed."""
    allowed = f"expected a whole number from {low} to {high:,}" + (f" {alternative}" if alternative else "")
    shown = text if len(text) <= 40 else text[:39] + "…"
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise BadQuery(f"{name}={shown}: {allowed}")
    value = int(text)
    if not low <= value <= high:
        raise BadQuery(f"{name}={shown}: {allowed}")
    return value


class Dashboard:
    """The data behind the page: one method per endpoint, each returning a typed record (or a list of them)."""

    def __init__(self, loaded: LoadedConfig, ledger: Ledger, *, clock: Callable[[], float] = time.time) -> None:
        self.loaded = loaded
        self.ledger = ledger
        self.clock = clock
        self.lock = threading.Lock()

    def _window(self, query: dict[str, list[str]]) -> Window:
        days = _one(query, "days", "30")
        if days == "all":
            return Window()
        n = _whole(days, "days", 1, MAX_DAYS, "or 'all'")
        now = int(self.clock() * 1000)
        return Window(max(0, now // DAY_MS - n + 1) * DAY_MS, None)

    def summary(self, q: dict[str, list[str]]) -> Summary:
        w = self._window(q)
        total, models = totals_by_model(self.ledger.db, w)
        return Summary(Since(w.since_ms), total, models)

    def spend(self, q: dict[str, list[str]]) -> Spend:
        by = _one(q, "by", "model")
        if by not in ("model", "provider"):
            raise BadQuery(f"by={by}: expected 'model' or 'provider'")
        return spend_by_day(self.ledger.db, self._window(q).since_ms or 0, by)

    def budgets(self, q: dict[str, list[str]]) -> list[BudgetLine]:
        return Budgets(self.loaded, self.ledger, clock=self.clock).report()

    def providers(self, q: dict[str, list[str]]) -> Providers:
        health = Health(self.loaded, self.ledger, clock=self.clock).explain()
        breakers = self.ledger.breakers()
        since = int(self.clock() * 1000) - 7 * DAY_MS
        return Providers(
            providers=tuple(
                ProviderStatus(
                    provider=name,
                    kind=self.loaded.providers[name].kind,
                    status=h.status,
                    reason=h.reason,
                    breaker=breakers[name].state if name in breakers else "closed",
                )
                for name, h in health.items()
            ),
            events=breaker_events(self.ledger.db, since, 20),
        )

    def decisions(self, q: dict[str, list[str]]) -> tuple[Decision, ...]:
        limit = _whole(_one(q, "limit", "50"), "limit", 1, 500)
        return tuple(
            Decision(
                at=from_ms(r.started_ms).isoformat(),
                task=r.task_id,
                stage=r.stage,
                model=r.model,
                provider=r.provider,
                rule=r.rule,
                reason=r.reason,
                arm=r.arm,
                status=r.status,
                error=r.error_class,
                cost_usd=r.cost_usd,
                latency_ms=r.latency_ms,
                verdict=r.verdict,
                verify_check=r.verify_check,
                cost_basis=None if r.cost_basis == "catalog" else r.cost_basis,
                flagged=True if r.cost_flagged else None,
                reported_model=r.reported_model if r.reported_model and r.reported_model != r.model else None,
            )
            for r in self.ledger.attempts(limit=limit, newest_first=True)
        )

    def experiments(self, q: dict[str, list[str]]) -> tuple[Experiment, ...]:
        return experiments(self.ledger.db, self._window(q) if "days" in q else Window())

    def verification(self, q: dict[str, list[str]]) -> Verification:
        w = self._window(q)
        total, _ = totals_by_model(self.ledger.db, w)
        found = verification(self.ledger.db, w, total.cost_usd if total is not None else Decimal(0))
        return found if found is not None else Verification(0, 0, 0, 0, None, (), (), ())

    def money(self, q: dict[str, list[str]]) -> Money:
        w = self._window(q)
        total, _ = totals_by_model(self.ledger.db, w)
        return Money(Since(w.since_ms), money_in_question(self.ledger.db, w, total))

    def report(self, q: dict[str, list[str]]) -> Report:
        return report(self.ledger.db, self._window(q) if "days" in q else Window(), ())

    def route(self, path: str, query: dict[str, list[str]]) -> Any:
        """The JSON-ready payload of an endpoint (None: no such endpoint)."""
        endpoints: dict[str, Callable[[dict[str, list[str]]], Any]] = {
            "/api/summary": self.summary,
            "/api/spend": self.spend,
            "/api/budgets": self.budgets,
            "/api/providers": self.providers,
            "/api/decisions": self.decisions,
            "/api/experiments": self.experiments,
            "/api/verification": self.verification,
            "/api/money": self.money,
            "/api/report": self.report,
        }
        handler = endpoints.get(path)
        if handler is None:
            return None
        with self.lock:  # one ledger connection, shared by the request threads
            return jsonable(handler(query))


def _handler(dash: Dashboard, page: bytes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "switchyard-dashboard"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path in ("/", "/index.html"):
                self._send(200, page, "text/html; charset=utf-8")
                return
            try:
                data = dash.route(url.path, parse_qs(url.query))
            except BadQuery as exc:
                self._send(400, json.dumps({"error": str(exc)}).encode(), "application/json")
                return
            except Exception:
                # What went wrong goes to the server's log, not to the browser (it may name paths or SQL).
                traceback.print_exc(file=sys.stderr)
                self._send(500, b'{"error": "internal error: see the dashboard\'s log"}', "application/json")
                return
            if data is None:
                self._send(404, b'{"error": "not found"}', "application/json")
                return
            self._send(200, json.dumps(data).encode(), "application/json")

    return Handler


def make_server(loaded: LoadedConfig, ledger: Ledger, host: str = "127.0.0.1", port: int = 8377) -> ThreadingHTTPServer:
    """A server bound to host:port (port 0: any free port), not yet serving."""
    page = resources.files("switchyard.examples").joinpath("dashboard.html").read_bytes()
    server = ThreadingHTTPServer((host, port), _handler(Dashboard(loaded, ledger), page))
    server.daemon_threads = True
    return server


def serve(loaded: LoadedConfig, ledger: Ledger, host: str = "127.0.0.1", port: int = 8377) -> None:
    """Serve until interrupted."""
    server = make_server(loaded, ledger, host, port)
    try:
        server.serve_forever()
    finally:
        server.server_close()
