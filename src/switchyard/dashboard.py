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
    GET /api/report            the full report (as `switchyard report --json`)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from switchyard.budgets import Budgets
from switchyard.config import LoadedConfig
from switchyard.health import Health
from switchyard.ledger.store import PICO, Ledger, from_ms
from switchyard.report import Window, experiments, report, totals_by_model

__all__ = ["Dashboard", "serve"]

DAY_MS = 86_400_000


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


class Dashboard:
    """The data behind the page: one method per endpoint."""

    def __init__(self, loaded: LoadedConfig, ledger: Ledger, *, clock: Callable[[], float] = time.time) -> None:
        self.loaded = loaded
        self.ledger = ledger
        self.clock = clock
        self.lock = threading.Lock()

    def _window(self, query: dict[str, list[str]]) -> Window:
        days = query.get("days", ["30"])[0]
        if days == "all":
            return Window()
        try:
            n = max(1, int(days))
        except ValueError:
            n = 30
        now = int(self.clock() * 1000)
        return Window((now // DAY_MS - n + 1) * DAY_MS, None)

    def summary(self, q: dict[str, list[str]]) -> dict[str, Any]:
        w = self._window(q)
        total, models = totals_by_model(self.ledger.db, w)
        return {"window": {"since_ms": w.since_ms}, "total": total, "models": models}

    def spend(self, q: dict[str, list[str]]) -> dict[str, Any]:
        by = q.get("by", ["model"])[0]
        if by not in ("model", "provider"):
            by = "model"
        w = self._window(q)
        rows = self.ledger.db.query(
            f"SELECT day, {by}, SUM(cost_pico), SUM(n) FROM rollup_attempts WHERE day >= ? GROUP BY 1, 2 ORDER BY 1, 2",
            (from_ms(w.since_ms or 0).strftime("%Y-%m-%d"),),
        )
        days = sorted({r[0] for r in rows})
        keys = sorted({r[1] for r in rows})
        series = {k: {d: Decimal(0) for d in days} for k in keys}
        for day, key, pico, _n in rows:
            series[key][day] = Decimal(int(pico or 0)) / PICO
        return {"by": by, "days": days, "series": [{"key": k, "cost_usd": [series[k][d] for d in days]} for k in keys]}

    def budgets(self, q: dict[str, list[str]]) -> list[dict[str, Any]]:
        return Budgets(self.loaded, self.ledger, clock=self.clock).report()

    def providers(self, q: dict[str, list[str]]) -> dict[str, Any]:
        health = Health(self.loaded, self.ledger, clock=self.clock).explain()
        breakers = self.ledger.breakers()
        since = int(self.clock() * 1000) - 7 * DAY_MS
        events = self.ledger.db.query(
            "SELECT provider, at_ms, state, reason FROM breaker_events WHERE at_ms >= ? ORDER BY at_ms DESC LIMIT 20",
            (since,),
        )
        return {
            "providers": [
                {
                    "provider": name,
                    "kind": self.loaded.providers[name].kind,
                    "status": h.status,
                    "reason": h.reason,
                    "breaker": breakers[name].state if name in breakers else "closed",
                }
                for name, h in health.items()
            ],
            "events": [
                {"provider": p, "at": from_ms(at).isoformat(), "state": s, "reason": r} for p, at, s, r in events
            ],
        }

    def decisions(self, q: dict[str, list[str]]) -> list[dict[str, Any]]:
        try:
            limit = max(1, min(500, int(q.get("limit", ["50"])[0])))
        except ValueError:
            limit = 50
        return [
            {
                "at": from_ms(r.started_ms).isoformat(),
                "task": r.task_id,
                "stage": r.stage,
                "model": r.model,
                "provider": r.provider,
                "rule": r.rule,
                "reason": r.reason,
                "arm": r.arm,
                "status": r.status,
                "error": r.error_class,
                "cost_usd": r.cost_usd,
                "latency_ms": r.latency_ms,
            }
            for r in self.ledger.attempts(limit=limit, newest_first=True)
        ]

    def experiments(self, q: dict[str, list[str]]) -> list[dict[str, Any]]:
        return experiments(self.ledger.db, self._window(q) if "days" in q else Window())

    def report(self, q: dict[str, list[str]]) -> dict[str, Any]:
        return report(self.ledger.db, self._window(q) if "days" in q else Window(), ())

    def route(self, path: str, query: dict[str, list[str]]) -> Any:
        endpoints: dict[str, Callable[[dict[str, list[str]]], Any]] = {
            "/api/summary": self.summary,
            "/api/spend": self.spend,
            "/api/budgets": self.budgets,
            "/api/providers": self.providers,
            "/api/decisions": self.decisions,
            "/api/experiments": self.experiments,
            "/api/report": self.report,
        }
        handler = endpoints.get(path)
        if handler is None:
            return None
        with self.lock:  # one ledger connection, shared by the request threads
            return handler(query)


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
            except Exception as exc:
                self._send(500, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode(), "application/json")
                return
            if data is None:
                self._send(404, b'{"error": "not found"}', "application/json")
                return
            self._send(200, json.dumps(data, default=_json_default).encode(), "application/json")

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
