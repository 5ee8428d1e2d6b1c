"""The dashboard: JSON endpoints over a seeded ledger, and the page rendered in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

import switchyard.examples
from report_ledger import D1, D2, D3, DASHBOARD_CONFIG, rec
from switchyard.config import load_config
from switchyard.dashboard import make_server
from switchyard.ledger import Ledger

CONFIG = DASHBOARD_CONFIG


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    cfg = tmp_path / "switchyard.toml"
    cfg.write_text(CONFIG)
    loaded = load_config(cfg)
    ledger = Ledger.open(loaded.ledger_location())
    now = int(time.time() * 1000)
    shift = now - D3  # move the seeded days to the last three days, so "the last 30 days" includes them
    for r in [
        rec(0, D1 + shift, "big", priority=0),
        rec(1, D1 + shift + 1000, "small"),
        rec(
            2,
            D2 + shift,
            "small",
            status="rejected",
            error_class="rejected",
            completed=False,
            verdict="rejected",
            verify_check="tests",
            verify_detail="exited with status 1\nFAILED test_parse - AssertionError",
        ),
        rec(
            3,
            D2 + shift + 5000,
            "big",
            candidate_index=1,
            failover_from="b",
            first=False,
            reason="fell back to big",
            verdict="verified",
            verify_detail="verified: change ok, tests ok",
        ),
        rec(4, D3 + shift, "small", experiment="ab", arm="small"),
        rec(5, D3 + shift + 1, "big", experiment="ab", arm="big"),
    ]:
        ledger.record(r)
    ledger.breaker_event("a", now - 60_000, "open", "3 consecutive failures")
    srv = make_server(loaded, ledger, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    host, port = srv.server_address[:2]
    yield f"http://{host!s}:{port}"
    srv.shutdown()
    srv.server_close()
    ledger.close()


def test_json_endpoints(server: str) -> None:
    with httpx.Client(base_url=server, timeout=10) as c:
        summary = c.get("/api/summary").json()
        assert summary["total"]["attempts"] == 6
        assert Decimal(summary["total"]["cost_usd"]) == Decimal("0.0384")
        assert {m["key"]["model"]: m["attempts"] for m in summary["models"]} == {"big": 3, "small": 3}
        spend = c.get("/api/spend?by=provider").json()
        assert spend["by"] == "provider" and len(spend["days"]) == 3
        assert sum(Decimal(x) for s in spend["series"] for x in s["cost_usd"]) == Decimal("0.0384")
        budgets = c.get("/api/budgets").json()
        assert [(b["scope"], b["period"]) for b in budgets] == [("global", "day"), ("provider:a", "month")]
        providers = c.get("/api/providers").json()
        status = {p["provider"]: p["status"] for p in providers["providers"]}
        assert status == {"a": "up", "b": "disabled"}
        assert providers["events"][0]["reason"] == "3 consecutive failures"
        decisions = c.get("/api/decisions?limit=3").json()
        assert [d["task"] for d in decisions] == ["T-5", "T-4", "T-3"]
        exps = c.get("/api/experiments").json()
        assert exps[0]["experiment"] == "ab"
        assert c.get("/api/report").json()["total"]["attempts"] == 6
        v = c.get("/api/verification?days=30").json()
        assert (v["verified_attempts"], v["rejected_attempts"], v["verified_tasks"]) == (1, 1, 1)
        assert v["cost_per_verified_task_usd"] == "0.0384"
        assert v["rejections"] == [
            {"model": "small", "check": "tests", "attempts": 1, "example": "FAILED test_parse - AssertionError"}
        ]
        assert sorted(tuple(p["path"]) for p in v["paths"]) == [("big verified",), ("small rejected (tests)",)]
        assert {(f["model"], f["label"], f["tasks"], f["rate"]) for f in v["first_try"]} == {
            ("small", "(all)", 3, 0.0),
            ("small", "bug", 3, 0.0),
            ("big", "(all)", 2, 0.0),  # its verified attempt was a failover, not a task's first
            ("big", "bug", 2, 0.0),
        }
        assert [d["verdict"] for d in decisions] == [None, None, "verified"]
        assert c.get("/api/nope").status_code == 404
        assert "switchyard" in c.get("/").text


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("/api/summary?days=100000000", "days=100000000: expected a whole number from 1 to 36,500 or 'all'"),
        ("/api/summary?days=-3", "days=-3: expected a whole number from 1 to 36,500 or 'all'"),
        ("/api/report?days=1e9", "days=1e9: expected a whole number from 1 to 36,500 or 'all'"),
        ("/api/verification?days=" + "9" * 5000, "days=" + "9" * 39 + "…: expected a whole number"),
        ("/api/spend?by=label", "by=label: expected 'model' or 'provider'"),
        ("/api/decisions?limit=0", "limit=0: expected a whole number from 1 to 500"),
        ("/api/decisions?limit=ten", "limit=ten: expected a whole number from 1 to 500"),
        ("/api/experiments?days=x", "days=x: expected a whole number"),
        ("/api/summary?days=1&days=2", "days: given 2 times with different values"),
    ],
)
def test_a_bad_query_value_is_a_400_saying_what_is_allowed(server: str, query: str, message: str) -> None:
    with httpx.Client(base_url=server, timeout=10) as c:
        res = c.get(query)
    assert res.status_code == 400, res.text
    assert res.json()["error"].startswith(message)
    assert "Error" not in res.text and "Traceback" not in res.text


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_page_in_headless_chromium(server: str, tmp_path: Path) -> None:
    exe = _chromium()
    if exe is None:
        if os.environ.get("SWITCHYARD_REQUIRE_CHROMIUM") == "1":
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
        "--window-size=1400,1700",
    ]
    dom = subprocess.run(
        [exe, *flags, "--dump-dom", server + "/"], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert 'data-ready="1"' in dom, dom[:2000]
    # Every panel loaded, and shows the seeded numbers.
    for panel in ("distribution", "spend", "budgets", "providers", "decisions", "experiments", "verification"):
        assert re.search(rf'id="panel-{panel}"[^>]*data-loaded="1"', dom), panel
    assert re.search(r'data-field="attempts">6<', dom)
    assert 'data-value="0.0384"' in dom
    assert re.search(r'<tr data-model="big"[^>]*>.*?data-field="attempts">3<', dom, re.S)
    # One colour per model on every panel, each its own; bars are shares of 100 % (3 of 6 attempts: half).
    colours = {m: re.search(rf'<tr data-model="{m}" data-color="([^"]+)"', dom) for m in ("big", "small")}
    legend = {m: re.search(rf'<span data-series="{m}" data-color="([^"]+)"', dom) for m in ("big", "small")}
    assert all(colours.values()) and all(legend.values()), dom[:3000]
    assert {m: c.group(1) for m, c in colours.items() if c} == {m: c.group(1) for m, c in legend.items() if c}
    assert len({c.group(1) for c in colours.values() if c}) == 2
    assert re.search(r'<tr data-model="big"[^>]*>.*?<i data-width="50.0"', dom, re.S)
    assert re.search(r'<tr data-provider="b">.*?data-field="status">disabled<', dom, re.S)
    assert 'data-scope="provider:a"' in dom and 'data-experiment="ab"' in dom
    assert "fell back to big" in dom
    assert 'data-rejection="small/tests"' in dom and 'data-path="small rejected (tests)"' in dom
    assert re.search(r'data-field="verified_attempts">1<', dom)
    assert re.search(r'<tr data-task="T-2">.*?data-field="status">rejected \(tests\)<', dom, re.S)
    assert 'data-series="big"' in dom  # the spend chart's legend
    shot = Path(os.environ.get("SWITCHYARD_ARTIFACTS", tmp_path)) / "dashboard.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([exe, *flags, f"--screenshot={shot}", server + "/"], capture_output=True, timeout=120, check=True)
    assert shot.exists() and shot.stat().st_size > 20_000


def test_the_page_writes_negative_money_with_the_sign_first() -> None:
    """The page's `usd` (run by node, as the browser would) writes -$0.08, like `switchyard.money.usd`."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    page = (Path(switchyard.examples.__file__).parent / "dashboard.html").read_text(encoding="utf-8")
    [line] = [ln for ln in page.splitlines() if ln.startswith("const usd = ")]
    script = line + "\nconsole.log(JSON.stringify([usd(-0.08), usd(1234.5), usd(0), usd(null)]));"
    out = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=60, check=True).stdout
    assert json.loads(out) == ["-$0.08", "$1,234.50", "$0.00", "–"]
