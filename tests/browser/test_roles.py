"""The dashboard shows approve/reject only to keys that may use them (operator, admin)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from netutil import free_port, wait_healthy

from .test_dashboard import CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM), reason=f"Debian's chromium not found at {CHROMIUM}"
    ),
]


@pytest.fixture
def pending():
    """A server (no loop running) whose orchestrator holds one pending FLISR proposal."""
    import uvicorn

    from gridpilot.agent import Orchestrator, SimWorld, demo_grid
    from gridpilot.api import KeyStore, create_app

    orch = Orchestrator(SimWorld(demo_grid("case33bw"), start_step=200 * 96 + 17 * 4))
    orch.set_mode("propose", "test")
    orch.run(2)
    orch.inject("fault", line=7)
    orch.step()
    (pid,) = [p.plan.id for p in orch.proposals.values() if p.status == "pending"]
    keys = KeyStore.generate()
    port = free_port()
    srv = uvicorn.Server(
        uvicorn.Config(create_app(orch, keys), host="127.0.0.1", port=port, log_level="warning")
    )
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    wait_healthy(f"http://127.0.0.1:{port}", tries=100)
    yield f"http://127.0.0.1:{port}", keys, orch, pid
    srv.should_exit = True
    th.join(timeout=10)


def test_viewers_see_proposals_without_buttons_operators_decide(pending) -> None:
    from playwright.sync_api import sync_playwright

    base, keys, orch, pid = pending
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page()
        page.goto(f"{base}/?key={keys.issued['viewer']}")
        page.wait_for_selector(f"#proposals .proposal[data-plan='{pid}']", timeout=20_000)
        page.wait_for_function(
            "document.getElementById('conn').textContent === 'live'", timeout=20_000
        )
        assert page.locator("#proposals button").count() == 0
        assert "operator key" in page.locator("#proposals").inner_text()
        assert page.locator("#role").inner_text() == "key: viewer"

        page.goto(f"{base}/?key={keys.issued['operator']}")
        page.wait_for_selector(f"#proposals .proposal[data-plan='{pid}'] button", timeout=20_000)
        assert page.locator("#proposals button").all_inner_texts() == ["approve", "reject"]
        page.locator("#proposals button", has_text="approve").click()
        for _ in range(100):
            if orch.proposals[pid].status != "pending":
                break
            time.sleep(0.05)
        browser.close()
    assert orch.proposals[pid].status == "approved"
    assert orch.proposals[pid].decided_by == "operator"
