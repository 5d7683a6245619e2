"""The dashboard in Debian's chromium: diagram drawn, values live, a fault drill restored on screen."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import pytest

from netutil import free_port, wait_healthy

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM), reason=f"Debian's chromium not found at {CHROMIUM}"
    ),
]


@pytest.fixture
def server():
    import uvicorn

    from gridpilot.agent.cli import build_demo
    from gridpilot.api import KeyStore, LoopRunner, create_app

    orch = build_demo("case33bw")
    keys = KeyStore.generate()
    app = create_app(
        orch, keys, runner=LoopRunner(orch, speed=240.0)
    )  # a simulated minute every 0.25 s
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    wait_healthy(f"http://127.0.0.1:{port}", tries=100)
    yield f"http://127.0.0.1:{port}", keys, orch
    srv.should_exit = True
    th.join(timeout=10)


def test_dashboard_live_and_fault_restoration(server, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    base, keys, orch = server
    shots = Path(os.environ.get("GRIDPILOT_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.goto(f"{base}/?key={keys.issued['viewer']}")
        page.wait_for_function(
            "document.querySelectorAll('circle.bus').length === 33", timeout=20_000
        )
        assert page.locator("rect.switch").count() == 37
        page.wait_for_function(
            "document.getElementById('conn').textContent === 'live'", timeout=20_000
        )
        t0 = page.locator("#t-time").inner_text()
        page.wait_for_function(
            f"document.getElementById('t-time').textContent !== {t0!r}", timeout=20_000
        )
        assert page.locator("#t-time").inner_text() != t0  # live values change
        page.screenshot(path=str(shots / "dashboard_live.png"), full_page=True)
        # the fault drill goes through the API with an operator key
        line = 7
        r = httpx.post(
            f"{base}/api/sim/events",
            json={"kind": "fault", "line": line},
            headers={"X-API-Key": keys.issued["operator"]},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        page.wait_for_selector("#timeline li.ev-protection", timeout=20_000)
        page.wait_for_selector("#timeline li.ev-action:has-text('flisr')", timeout=20_000)
        page.wait_for_function(
            "document.getElementById('t-dead').textContent === '1'", timeout=20_000
        )
        # the isolated section (bus 8) is drawn dead, its neighbours energised, tie 35 drawn closed
        assert page.locator("circle[data-bus='8']").get_attribute("data-energised") == "false"
        assert page.locator("circle[data-bus='9']").get_attribute("data-energised") == "true"
        assert page.locator("rect[data-switch='35']").get_attribute("data-closed") == "true"
        assert page.locator("rect[data-switch='7']").get_attribute("data-closed") == "false"
        page.screenshot(path=str(shots / "dashboard_restored.png"), full_page=True)
        page.wait_for_function(
            "document.querySelectorAll('#p-load .main-svg').length > 0", timeout=20_000
        )
        browser.close()
    assert (shots / "dashboard_live.png").stat().st_size > 10_000
    assert (shots / "dashboard_restored.png").stat().st_size > 10_000
    assert orch.audit.entries(kind="action")[0]["actor"] == "policy:flisr"


def test_make_demo_shows_self_healing_and_demand_response(tmp_path: Path) -> None:
    """``make demo`` (``gridpilot demo`` on embedded defaults: the field world, the demo's
    injected events): the dashboard shows the fault restored and the wind drop's DR event."""
    import uvicorn
    from playwright.sync_api import sync_playwright

    from gridpilot.agent import FieldWorld
    from gridpilot.agent.cli import build_demo, demo_events
    from gridpilot.api import KeyStore, LoopRunner, create_app

    orch = build_demo()
    assert isinstance(orch.world, FieldWorld)
    keys = KeyStore.generate()
    runner = LoopRunner(orch, speed=300.0, events=demo_events(orch.world.step_s))  # 0.2 s a step
    port = free_port()
    srv = uvicorn.Server(
        uvicorn.Config(
            create_app(orch, keys, runner=runner), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    shots = Path(os.environ.get("GRIDPILOT_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            for _ in range(100):
                try:
                    page.goto(f"http://127.0.0.1:{port}/?key={keys.issued['viewer']}")
                    break
                except Exception:  # the server is still starting
                    time.sleep(0.1)
            page.wait_for_function(
                "document.getElementById('conn').textContent === 'live'", timeout=20_000
            )
            # self-healing: the demo's fault on line 7 tripped and restored by FLISR
            page.wait_for_selector("#timeline li.ev-protection", timeout=30_000)
            page.wait_for_selector("#timeline li.ev-action:has-text('flisr')", timeout=30_000)
            # the wind drop: the DR policy's level, dispatched as a flex event on the devices
            page.wait_for_selector("#timeline li.ev-dr:has-text('dispatched')", timeout=60_000)
            page.wait_for_function(
                "parseFloat(document.getElementById('t-dr').textContent) > 0", timeout=30_000
            )
            page.screenshot(path=str(shots / "demo_dr.png"), full_page=True)
            browser.close()
    finally:
        srv.should_exit = True
        th.join(timeout=10)
    actors = {e["actor"] for e in orch.audit.entries(kind="action")}
    assert {"policy:flisr", "policy:dr"} <= actors
    assert orch.counters["bad_data_removed"] == 0
    assert (shots / "demo_dr.png").stat().st_size > 10_000
