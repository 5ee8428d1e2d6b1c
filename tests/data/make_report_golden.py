"""Write tests/data/report_golden.json: the JSON of reports and dashboard endpoints over the test_report ledger.

    python tests/data/make_report_golden.py [SRC_DIR]

The file pins the JSON shape and figures of `switchyard report --json` and of the
dashboard's endpoints (tests/test_report.py::test_json_matches_the_golden_file). It was
written by the switchyard at 45f5329, before reports became typed records; regenerate
it only for an intended change of the output, and say so in the commit.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
if len(sys.argv) > 1:
    sys.path.insert(0, str(Path(sys.argv[1]).resolve()))

NOW_S = 1772625600.0  # 2026-03-04T12:00:00Z, the day after the test ledger's last attempt


def build(tmp: Path) -> dict[str, object]:
    from report_ledger import D1, D2, D3, DASHBOARD_CONFIG, report_attempts
    from switchyard.cli.common import dump_json
    from switchyard.config import loads_config
    from switchyard.dashboard import Dashboard
    from switchyard.ledger import Ledger
    from switchyard.report import Window, report
    from test_report import CONFIG

    path = tmp / "l.db"
    led = Ledger.open(path)
    for r in report_attempts(reason="fell back to big"):
        led.record(r)
    led.breaker_event("a", D2, "open", "3 consecutive failures")
    catalog = loads_config(CONFIG.format(path=path)).catalog
    out: dict[str, object] = {}
    try:
        from switchyard.report import jsonable
    except ImportError:  # the switchyard of 45f5329: reports were dicts already

        def jsonable(value: object) -> object:
            return value

    def put(name: str, data: object) -> None:
        out[name] = json.loads(dump_json(jsonable(data)))

    put("report", report(led.db, Window(), ()))
    put("report --by model --baseline big", report(led.db, Window(), ("model",), baseline_model=catalog["big"]))
    put(
        "report --by priority --baseline tiered",
        report(led.db, Window(), ("priority",), baseline_model=catalog["tiered"]),
    )
    put("report --by label --since D1+1", report(led.db, Window(D1 + 1, None), ("label",)))
    put("report --by experiment", report(led.db, Window(), ("experiment",)))
    put("report --by day --by provider --until D3", report(led.db, Window(None, D3), ("day", "provider")))
    put("report --by stage --by workflow", report(led.db, Window(), ("stage", "workflow")))
    dash = Dashboard(loads_config(DASHBOARD_CONFIG + f'\n[ledger]\npath = "{path}"\n'), led, clock=lambda: NOW_S)
    for endpoint, query in [
        ("/api/summary", {}),
        ("/api/summary", {"days": ["2"]}),
        ("/api/spend", {"by": ["provider"]}),
        ("/api/budgets", {}),
        ("/api/providers", {}),
        ("/api/decisions", {"limit": ["3"]}),
        ("/api/experiments", {}),
        ("/api/report", {"days": ["all"]}),
    ]:
        put(
            endpoint + ("?" + "&".join(f"{k}={v[0]}" for k, v in query.items()) if query else ""),
            dash.route(endpoint, query),
        )
    led.close()
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = build(Path(tmp))
    (HERE / "report_golden.json").write_text(json.dumps(out, indent=1, sort_keys=False) + "\n")


if __name__ == "__main__":
    main()
