"""The feeder view in Debian's chromium: ieee123 drawn on a canvas, hover shows per-phase
voltages equal to the API's, the per-phase profile has three traces, the hosting map is drawn;
ieee8500's first draw is timed."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from netutil import free_port, wait_healthy

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM), reason=f"Debian's chromium not found at {CHROMIUM}"
    ),
]


def serve_feeder(name: str, hosting_dir: Path | None = None) -> tuple[str, Any, Callable[[], None]]:
    """The feeder view of ``name`` on a free port: (base URL, keys, stop)."""
    import uvicorn

    from gridpilot.api import KeyStore
    from gridpilot.api.feeder_app import create_feeder_app
    from gridpilot.model import load_grid

    keys = KeyStore.generate()
    app = create_feeder_app(load_grid(name), keys, hosting_dir=hosting_dir)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()

    def stop() -> None:
        # joined, so the server thread is not still writing when the interpreter exits
        srv.should_exit = True
        thread.join(timeout=15)

    base = f"http://127.0.0.1:{port}"
    wait_healthy(base)
    return base, keys, stop


@pytest.fixture
def ieee123() -> Iterator[tuple[str, Any]]:
    base, keys, stop = serve_feeder("ieee123")
    yield base, keys
    stop()


def _shots(tmp_path: Path) -> Path:
    shots = Path(os.environ.get("GRIDPILOT_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def test_ieee123_canvas_hover_profile_and_hosting_map(ieee123, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    base, keys = ieee123
    h = {"X-API-Key": keys.issued["viewer"]}
    geo = httpx.get(f"{base}/api/feeder/geometry", headers=h, timeout=60).json()
    snap = httpx.get(f"{base}/api/feeder/snapshot", headers=h, timeout=60).json()
    shots = _shots(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1200})
        page.goto(f"{base}/feeder#key={keys.issued['viewer']}")
        page.wait_for_function(
            "window.feederTiming && window.feederTiming.first_draw_ms", timeout=30_000
        )
        # the canvas has the feeder on it: many pixels that are not the background
        lit = page.evaluate(
            """() => { const c = document.getElementById('feeder-canvas');
                 const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
                 for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 120) n++;
                 return n; }"""
        )
        assert lit > 2000, lit
        assert (
            page.locator("#feeder-canvas").count() == 1 and page.locator("svg circle").count() == 0
        )
        # hover a three-phase bus: its three voltages, as the API gives them
        i = next(
            k
            for k, m in enumerate(geo["buses"]["phases"])
            if m == 7 and geo["buses"]["name"][k] == "67"
        )
        xy = page.evaluate(f"window.feederView.view.pageXY({i})")
        page.mouse.move(xy["x"], xy["y"])
        page.wait_for_function(
            "document.getElementById('tip').style.display === 'block'", timeout=5_000
        )
        tip = page.locator("#tip").inner_text()
        assert tip.startswith("bus 67")
        for p_, ph in enumerate("ABC"):
            assert f"{ph}: {snap['v_pu'][p_][i]:.4f} pu" in tip, tip
        # hover a line: its per-phase flows
        k = geo["branches"]["name"].index("l67")
        a, b = geo["branches"]["from"][k], geo["branches"]["to"][k]
        pa = page.evaluate(f"window.feederView.view.pageXY({a})")
        pb = page.evaluate(f"window.feederView.view.pageXY({b})")
        page.mouse.move((pa["x"] + pb["x"]) / 2, (pa["y"] + pb["y"]) / 2)
        page.wait_for_function(
            "document.getElementById('tip').textContent.startsWith('line')", timeout=5_000
        )
        assert f"{snap['i_a'][0][k]:.1f} A" in page.locator("#tip").inner_text()
        # the profile: three traces (phases A, B, C)
        page.wait_for_function(
            "document.getElementById('p-profile3').data && document.getElementById('p-profile3').data.length === 3",
            timeout=60_000,
        )
        names = page.evaluate("document.getElementById('p-profile3').data.map(t => t.name)")
        assert names == ["phase A", "phase B", "phase C"]
        shapes = page.evaluate(
            "document.getElementById('p-profile3').layout.shapes.map(s => [s.type, s.y0, s.y1])"
        )
        assert ["rect", 0.95, 1.05] in shapes  # ANSI C84.1 Range A
        lim = httpx.get(f"{base}/api/limits", headers=h, timeout=10).json()
        assert ["line", lim["v_min_pu"], lim["v_min_pu"]] in shapes
        # the hosting map (computed on the server on the first request)
        page.wait_for_function("window.feederTiming.hosting_ms", timeout=180_000)
        assert "computed" in page.locator("#hc-status").inner_text()
        hc = httpx.get(f"{base}/api/feeder/hosting?der=pv", headers=h, timeout=10).json()
        xy = page.evaluate(f"window.feederView.hcView().pageXY({i})")
        page.mouse.move(xy["x"], xy["y"])
        page.wait_for_function(
            "document.getElementById('tip').textContent.includes('hosting capacity')", timeout=5_000
        )
        tip = page.locator("#tip").inner_text()
        assert f"A: {hc['hc_kw'][0][i]:.0f} kW" in tip, tip
        page.mouse.move(0, 0)
        page.screenshot(path=str(shots / "feeder_ieee123.png"), full_page=True)
        browser.close()
    assert (shots / "feeder_ieee123.png").stat().st_size > 20_000


@pytest.mark.slow
def test_ieee8500_first_draw_is_timed(tmp_path: Path) -> None:
    """ieee8500's ~4,900 buses from their coordinates: time to first draw (printed)."""
    from playwright.sync_api import sync_playwright

    base, keys, stop = serve_feeder("ieee8500")
    shots = _shots(tmp_path)
    try:
        httpx.get(
            f"{base}/api/feeder/snapshot", headers={"X-API-Key": keys.issued["viewer"]}, timeout=120
        )
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1200})
            page.goto(f"{base}/feeder#key={keys.issued['viewer']}")
            page.wait_for_function(
                "window.feederTiming && window.feederTiming.first_draw_ms", timeout=60_000
            )
            t = page.evaluate("window.feederTiming")
            assert page.evaluate("window.feederView.geo.buses.name.length") == 4876
            page.wait_for_function(
                "document.getElementById('p-profile3').data && document.getElementById('p-profile3').data.length === 3",
                timeout=60_000,
            )
            page.screenshot(path=str(shots / "feeder_ieee8500.png"), full_page=True)
            browser.close()
    finally:
        stop()
    print(json.dumps({k: round(v, 1) for k, v in t.items()}))
    assert t["draw_ms"] < 1000 and t["first_draw_ms"] < 15_000
