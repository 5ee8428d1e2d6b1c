"""What `switchyard run` shows while it works: a live table on a terminal, plain lines otherwise.

Events come from worker threads; both reporters are thread-safe. Lines go to
stderr (diagnostics); the run's summary goes to stdout.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from decimal import Decimal
from typing import Any, TextIO

__all__ = ["LiveReporter", "Reporter", "make_reporter"]


class Reporter:
    """Plain, timestamped lines: one per event."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.spend = Decimal(0)
        self.running: dict[str, tuple[str, float]] = {}
        self.errors: list[str] = []

    def _line(self, text: str) -> None:
        self.stream.write(time.strftime("%H:%M:%S ") + text + "\n")
        self.stream.flush()

    def event(self, kind: str, task_id: str, **info: Any) -> None:
        """Record an event: queued, start, attempt, retrying, done, dead."""
        with self.lock:
            self._update(kind, task_id, info)
            line = self._describe(kind, task_id, info)
            if line:
                self._line(line)

    def _update(self, kind: str, task_id: str, info: dict[str, Any]) -> None:
        if kind == "start":
            self.running[task_id] = (f"{info.get('model')} via {info.get('provider')}", time.monotonic())
        elif kind == "attempt":
            self.running.pop(task_id, None)
            self.spend += info.get("cost") or Decimal(0)
            if info.get("status") != "ok":
                self.counts["failed attempts"] += 1
        elif kind in ("done", "dead", "retrying", "queued"):
            self.counts[kind] += 1

    def _describe(self, kind: str, task_id: str, info: dict[str, Any]) -> str | None:
        if kind == "start":
            return f"{task_id}: running on {info.get('model')} ({info.get('provider')})"
        if kind == "attempt":
            cost = info.get("cost") or Decimal(0)
            extra = f" [{info.get('error')}]" if info.get("error") else ""
            return f"{task_id}: {info.get('model')} {info.get('status')}{extra} ${cost:.6f}"
        if kind == "retrying":
            return f"{task_id}: failed; routing again with retry_count+1 ({info.get('error') or ''})"
        if kind == "dead":
            return f"{task_id}: DEAD after all attempts: {info.get('error') or ''}"
        if kind == "done":
            return f"{task_id}: done"
        if kind == "queued":
            return f"{task_id}: queued"
        return None

    def note(self, message: str) -> None:
        with self.lock:
            self._line(message)

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)
            self._line("error: " + message)

    def close(self) -> None:
        """Stop any display thread."""


class LiveReporter(Reporter):
    """A rich live table: running tasks with their model, counts, spend so far."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        from rich.console import Console
        from rich.live import Live

        self.console = Console(file=self.stream)
        self.live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
        self.live.start()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh, daemon=True)
        self._thread.start()

    def _line(self, text: str) -> None:
        self.console.print(time.strftime("[dim]%H:%M:%S[/dim] ") + text, highlight=False, markup=False)

    def event(self, kind: str, task_id: str, **info: Any) -> None:
        with self.lock:
            self._update(kind, task_id, info)
            if kind in ("dead", "retrying"):
                line = self._describe(kind, task_id, info)
                if line:
                    self.console.print(line, highlight=False, markup=False)

    def _render(self) -> Any:
        from rich.table import Table

        table = Table(title="switchyard run", expand=False)
        table.add_column("task")
        table.add_column("model")
        table.add_column("for", justify="right")
        now = time.monotonic()
        for task_id, (model, since) in sorted(self.running.items()):
            table.add_row(task_id, model, f"{now - since:.0f}s")
        c = self.counts
        table.caption = (
            f"queued {c['queued']}  done {c['done']}  retrying {c['retrying']}  dead {c['dead']}  "
            f"failed attempts {c['failed attempts']}  spend ${self.spend:.4f}"
        )
        return table

    def _refresh(self) -> None:
        while not self._stop.wait(0.25):
            with self.lock:
                self.live.update(self._render())

    def close(self) -> None:
        self._stop.set()
        with self.lock:
            self.live.update(self._render())
        self.live.stop()


def make_reporter(stream: TextIO | None = None) -> Reporter:
    """The live table on a terminal, plain lines otherwise."""
    stream = stream if stream is not None else sys.stderr
    if stream.isatty():
        return LiveReporter(stream)
    return Reporter(stream)
