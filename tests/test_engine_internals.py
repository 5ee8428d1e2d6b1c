"""The one place switchyard reaches into DBOS internals, checked against the installed DBOS.

`coordinator._stop_queue` sets DBOS's background-thread stop events (what `DBOS.destroy()` does first)
so a draining coordinator dequeues nothing new while its running workflows finish. It swallows errors on
purpose (the drain guard holds without it), so only this test notices when a DBOS upgrade moves them.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from test_coordinator import config

PROBE = textwrap.dedent(
    """
    import sys, threading
    from switchyard.config import load_config
    from switchyard.coordinator import Coordinator, _stop_queue
    from dbos._dbos import _get_dbos_instance

    coord = Coordinator(load_config(sys.argv[1]))
    coord.start()
    try:
        events = _get_dbos_instance().background_thread_stop_events
        assert isinstance(events, list) and events, f"no background stop events: {events!r}"
        assert all(isinstance(e, threading.Event) for e in events), events
        assert not any(e.is_set() for e in events)
        _stop_queue()
        assert all(e.is_set() for e in events), "_stop_queue did not set DBOS's stop events"
        print("ok", len(events))
    finally:
        coord.close()
    """
)


def test_stop_queue_reaches_dbos_background_threads(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(cfg)], capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok "), proc.stdout
