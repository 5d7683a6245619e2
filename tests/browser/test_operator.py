"""The operator's dashboard end to end in chromium (#19 items 1-4, 6; #15 item 7): each command
from the page, its result on screen and in the audit with the role; values on hover; viewers
without controls; a refused key that says why; a full outage that reads "no supply".

Screenshots go to ``$GRIDPILOT_SCREENSHOTS`` (kept as test artefacts), else to pytest's tmp dir.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import pytest

from netutil import free_port, wait_healthy

from .test_dashboard import CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM), reason=f"Debian's chromium not found at {CHROMIUM}"
    ),
]
EVENING = 200 * 96 + 17 * 4
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@pytest.fixture
def served():
    import uvicorn

    from gridpilot.agent import Orchestrator, SimWorld, demo_grid
    from gridpilot.api import KeyStore, LoopRunner, create_app

    orch = Orchestrator(SimWorld(demo_grid("case33bw"), start_step=EVENING))
    keys = KeyStore.generate()
    app = create_app(orch, keys, runner=LoopRunner(orch, speed=240.0))
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    wait_healthy(f"http://127.0.0.1:{port}", tries=100)
    yield f"http://127.0.0.1:{port}", keys, orch
    srv.should_exit = True
    th.join(timeout=10)


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    d = Path(os.environ.get("GRIDPILOT_SCREENSHOTS", tmp_path))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _open(browser, base: str, key: str | None):
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.goto(f"{base}/" + (f"#key={key}" if key is not None else ""))
    return page


def _live(page) -> None:
    page.wait_for_function("document.getElementById('conn').textContent === 'live'", timeout=20_000)


def _result(page, previous: str = "") -> str:
    page.wait_for_function(
        f"document.getElementById('ctl-result').textContent !== {previous!r}", timeout=10_000
    )
    return page.locator("#ctl-result").inner_text()


def _latest_row(orch, kind: str = "action") -> dict:
    return orch.audit.entries(kind=kind, limit=1)[0]


def test_operator_commands_from_the_page(served, shots: Path) -> None:
    from playwright.sync_api import sync_playwright

    base, keys, orch = served
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = _open(browser, base, keys.issued["operator"])
        _live(page)
        assert "key" not in page.url  # the fragment left the address bar (sessionStorage now)
        assert page.locator("#ops").is_visible() and not page.locator("#f-mode").is_visible()
        # values on demand: a bus and a line
        page.hover("circle[data-bus='18']")
        tip = page.locator("#tip").inner_text()
        assert (
            "bus 18" in tip and " pu" in tip and "load " in tip and "km from the substation" in tip
        )
        page.hover("[data-line='5']", force=True)
        tip = page.locator("#tip").inner_text()
        assert "line 5" in tip and "loading" in tip and "%" in tip
        page.click("circle[data-bus='18']")
        assert "bus 18" in page.locator("#info").inner_text()
        # a switch the guard refuses: its reason is shown
        page.select_option("#ctl-switch", "33")
        page.click("#ctl-switch-close")
        out = _result(page)
        assert "refused by the safety guard" in out and "radial" in out
        assert _latest_row(orch, "refused")["data"]["role"] == "operator"
        # one it accepts (switch 33, a tie, opened: it stays radial)
        page.click("#ctl-switch-open")
        out = _result(page, out)
        assert "open switch 33: done" in out
        assert _latest_row(orch)["data"]["role"] == "operator"
        # demand response at a set of buses, then stopped
        page.fill("#ctl-dr-level", "0.3")
        page.fill("#ctl-dr-buses", "18, 30-32")
        page.click("#ctl-dr-start")
        out = _result(page, out)
        assert "done" in out and orch.dr_requests.get("operator") == 0.3
        row = _latest_row(orch)
        assert row["data"]["dr_buses"] == [18, 30, 31, 32] and row["data"]["role"] == "operator"
        page.wait_for_function("parseFloat(document.getElementById('t-dr').textContent) >= 0.3")
        page.click("#ctl-dr-stop")
        out = _result(page, out)
        assert "stop DR: done" in out and "operator" not in orch.dr_requests
        # battery and EV set points
        page.select_option("#ctl-storage", "2")
        page.fill("#ctl-storage-mw", "0.1")
        page.click("#ctl-storage-set")
        out = _result(page, out)
        assert "done" in out and orch.storage_cmd_mw[orch.grid.storage.index_of(2)[0]] == 0.1
        page.fill("#ctl-ev", "0.5")
        page.click("#ctl-ev-set")
        out = _result(page, out)
        assert "EV set point: done" in out and orch.ev_factor == 0.5
        # a fault: its alarms stand out until acknowledged
        r = httpx.post(
            f"{base}/api/sim/events",
            json={"kind": "fault", "line": 7},
            headers={"X-API-Key": keys.issued["operator"]},
        )
        assert r.status_code == 200
        page.wait_for_selector(
            "#alarms .alarm.unacked[data-alarm='outage'] button.ack", timeout=20_000
        )
        page.screenshot(path=str(shots / "operator_alarm.png"), full_page=True)
        page.click("#alarms .alarm[data-alarm='outage'] button.ack")
        page.wait_for_selector("#alarms .alarm.acked[data-alarm='outage']", timeout=10_000)
        assert (
            "acknowledged by operator"
            in page.locator("#alarms .alarm[data-alarm='outage']").inner_text()
        )
        ack = next(
            e for e in orch.audit.entries(kind="command") if "acknowledge" in (e["what"] or {})
        )
        assert ack["data"]["role"] == "operator"
        page.wait_for_selector("#timeline li.ev-ack", timeout=10_000)
        page.screenshot(path=str(shots / "operator.png"), full_page=True)
        # the admin also switches the mode
        admin = _open(browser, base, keys.issued["admin"])
        _live(admin)
        assert admin.locator("#f-mode").is_visible()
        admin.click("#ctl-mode-propose")
        admin.wait_for_function(
            "document.getElementById('t-mode').textContent === 'propose'", timeout=10_000
        )
        assert orch.mode == "propose"
        assert _latest_row(orch, "command")["data"]["role"] == "admin"
        browser.close()
    for name in ("operator.png", "operator_alarm.png"):
        assert (shots / name).stat().st_size > 10_000


def test_viewers_see_no_controls_and_a_wrong_key_says_why(served, shots: Path) -> None:
    from playwright.sync_api import sync_playwright

    base, keys, _orch = served
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = _open(browser, base, keys.issued["viewer"])
        _live(page)
        page.wait_for_selector("circle.bus")
        assert not page.locator("#ops").is_visible()
        assert page.locator("main button:visible").count() == 0
        page.screenshot(path=str(shots / "viewer.png"), full_page=True)
        # a wrong key: the reason, the form, and no reconnect loop overwriting it
        bad = _open(browser, base, "gp_viewer_not-a-key-at-all")
        bad.wait_for_selector("#keyform:visible", timeout=10_000)
        time.sleep(2.0)
        assert "unknown API key" in bad.locator("#keymsg").inner_text()
        assert "refused" in bad.locator("#conn").inner_text()
        assert not bad.locator("#main").is_visible()
        bad.screenshot(path=str(shots / "key_refused.png"))
        # no key at all: the form; a good key entered there opens the dashboard
        none = _open(browser, base, None)
        none.wait_for_selector("#keyform:visible", timeout=10_000)
        none.fill("#keyinput", keys.issued["viewer"])
        none.click("#keyform button")
        _live(none)
        assert none.locator("#role").inner_text() == "key: viewer"
        browser.close()


def test_a_full_outage_reads_no_supply(served, shots: Path) -> None:
    from playwright.sync_api import sync_playwright

    base, keys, _orch = served
    r = httpx.post(
        f"{base}/api/sim/events",
        json={"kind": "fault", "line": 1},  # the first line out of the substation
        headers={"X-API-Key": keys.issued["operator"]},
    )
    assert r.status_code == 200
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = _open(browser, base, keys.issued["viewer"])
        _live(page)
        page.wait_for_function(
            "document.getElementById('t-vmin').textContent === 'no supply'", timeout=20_000
        )
        assert page.locator("#t-load-pct").inner_text() == "no supply"
        page.screenshot(path=str(shots / "no_supply.png"), full_page=True)
        browser.close()
