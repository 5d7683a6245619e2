"""Dashboard time to first paint, diagram and live values in headless chromium (Playwright).

Serves the demo (case33bw, field world) in-process and opens the dashboard ``--runs`` times in
fresh browser contexts; side by side, the reference: main's single-file page (git ``--ref``,
inline script, key in the URL) served by the same server. Prints JSON: per page the median and
the minimum over the runs of first paint, first contentful paint, DOMContentLoaded, the
diagram drawn (all buses in the SVG) and the first live values (the time tile filled), in ms
from navigation start.

    PYTHONPATH=src python bench/dashboard.py --runs 5

With ``--feeder GRID`` (e.g. ``ieee8500``) it times the three-phase feeder view instead
(``/feeder``, served without the loop): per run the canvas's first draw from navigation
start, the draw itself, the fetch of geometry + snapshot + limits, and the profile plot;
with the gzip sizes of the payloads.

    PYTHONPATH=src python bench/dashboard.py --feeder ieee8500 --runs 5
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
# the predicates are polled every animation frame; each records when it first came true
DIAGRAM = "() => document.querySelectorAll('circle.bus').length > 0 && (window.__gp_diagram ??= performance.now())"
VALUES = (
    "() => { const t = document.getElementById('t-time'); return t && t.textContent !== '–' "
    "&& (window.__gp_values ??= performance.now()); }"
)
CHARTS = "() => document.querySelector('#p-load .main-svg') !== null && (window.__gp_charts ??= performance.now())"
TIMING = """() => {
  const p = Object.fromEntries(performance.getEntriesByType('paint').map(e => [e.name, e.startTime]));
  const n = performance.getEntriesByType('navigation')[0];
  return { first_paint_ms: p['first-paint'] ?? null, first_contentful_paint_ms: p['first-contentful-paint'] ?? null,
           dom_content_loaded_ms: n.domContentLoadedEventEnd, load_ms: n.loadEventEnd,
           diagram_ms: window.__gp_diagram, first_values_ms: window.__gp_values, charts_ms: window.__gp_charts,
           transferred_kb_at_load: performance.getEntriesByType('resource').reduce((a, r) => a + r.transferSize, 0) / 1024 };
}"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(base: str) -> None:
    """Poll ``base``/api/health until it answers 200 (at most 20 s)."""
    import httpx

    for _ in range(200):
        try:
            if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)


def serve(ref: str) -> tuple[str, Any, Any]:
    """The demo served on a free port, with main's page at ``/reference``; (base URL, keys, server)."""
    import uvicorn
    from fastapi.responses import HTMLResponse

    from gridpilot.agent.cli import build_demo
    from gridpilot.api import KeyStore, LoopRunner, create_app

    orch = build_demo("case33bw")
    keys = KeyStore.generate()
    app = create_app(orch, keys, runner=LoopRunner(orch, speed=120.0))
    root = Path(__file__).resolve().parents[1]
    old = subprocess.run(
        ["git", "show", f"{ref}:src/gridpilot/api/static/index.html"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    app.add_api_route("/reference", lambda: HTMLResponse(old), include_in_schema=False)
    port = _port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=srv.run, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    _wait_healthy(base)
    return base, keys, srv


def measure(browser: Any, url: str) -> dict[str, float]:
    """One cold load of ``url`` in a fresh context: the timings of :data:`TIMING` (ms)."""
    ctx = browser.new_context(viewport={"width": 1500, "height": 1100})
    page = ctx.new_page()
    page.goto(url)
    page.wait_for_function(DIAGRAM, polling="raf", timeout=30_000)
    page.wait_for_function(VALUES, polling="raf", timeout=30_000)
    page.wait_for_function(CHARTS, polling="raf", timeout=30_000)
    page.wait_for_load_state("load")
    out = page.evaluate(TIMING)
    ctx.close()
    return out


def summarise(rows: list[dict[str, float]]) -> dict[str, Any]:
    """Median and minimum of each timing over the runs (ms, kB)."""
    keys = rows[0].keys()
    return {
        k: {
            "median": round(statistics.median(r[k] for r in rows if r[k] is not None), 1),
            "min": round(min(r[k] for r in rows if r[k] is not None), 1),
        }
        for k in keys
        if any(r[k] is not None for r in rows)
    }


FEEDER_DRAWN = "() => window.feederTiming && window.feederTiming.first_draw_ms"
FEEDER_PROFILE = "() => window.feederTiming && window.feederTiming.profile_ms"


def feeder(grid: str, runs: int) -> dict[str, Any]:
    """The feeder view of ``grid``: timings (ms) per cold load and payload sizes (bytes)."""
    import httpx
    import uvicorn
    from playwright.sync_api import sync_playwright

    from gridpilot.api import KeyStore
    from gridpilot.api.feeder_app import create_feeder_app
    from gridpilot.model import load_grid

    keys = KeyStore.generate()
    app = create_feeder_app(load_grid(grid), keys)
    port = _port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=srv.run, daemon=True).start()
    base, key = f"http://127.0.0.1:{port}", keys.issued["viewer"]
    h = {"X-API-Key": key, "Accept-Encoding": "gzip"}
    _wait_healthy(base)
    sizes = {}
    for route in ("geometry", "snapshot", "profile"):  # also warms the server's caches
        r = httpx.get(f"{base}/api/feeder/{route}", headers=h, timeout=300)
        sizes[f"{route}_gzip_bytes"] = int(r.headers["content-length"])
        sizes[f"{route}_json_bytes"] = len(r.content)
    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        for _ in range(runs):
            ctx = browser.new_context(viewport={"width": 1500, "height": 1100})
            page = ctx.new_page()
            page.goto(f"{base}/feeder#key={key}")
            page.wait_for_function(FEEDER_DRAWN, polling="raf", timeout=60_000)
            page.wait_for_function(FEEDER_PROFILE, polling="raf", timeout=60_000)
            t = page.evaluate("window.feederTiming")
            rows.append(
                {k: t.get(k) for k in ("first_draw_ms", "draw_ms", "fetch_ms", "profile_ms")}
            )
            ctx.close()
        browser.close()
    srv.should_exit = True
    n = len(app.state.feeder.geometry().buses)
    return {"runs": runs, "grid": grid, "buses": n, "feeder_view": summarise(rows), **sizes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--ref", default="main", help="git ref of the reference page")
    ap.add_argument("--feeder", default=None, help="time the three-phase feeder view of GRID")
    a = ap.parse_args()
    if a.feeder:
        print(json.dumps(feeder(a.feeder, a.runs), indent=1))
        return
    from playwright.sync_api import sync_playwright

    base, keys, srv = serve(a.ref)
    key = keys.issued["viewer"]
    pages = {"dashboard": f"{base}/#key={key}", "reference": f"{base}/reference?key={key}"}
    res: dict[str, list[dict[str, float]]] = {k: [] for k in pages}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        measure(browser, pages["dashboard"])  # warm the server (first numba calls, caches)
        for _ in range(a.runs):
            for name, url in pages.items():  # interleaved: both see the same machine load
                res[name].append(measure(browser, url))
        browser.close()
    srv.should_exit = True
    print(
        json.dumps(
            {"runs": a.runs, "grid": "case33bw", **{k: summarise(v) for k, v in res.items()}},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
