"""The served dashboard page, without a browser (tests/browser runs it in chromium)."""

from __future__ import annotations

import re

import pytest

from gridpilot.agent.auth import ROLES

from .conftest import hdr


@pytest.mark.parametrize("role", ROLES)
def test_whoami_names_the_keys_role(setup, role: str) -> None:
    _orch, keys, c = setup
    assert c.get("/api/whoami", headers=hdr(keys, role)).json() == {"name": role, "role": role}


MODULES = ("main.js", "api.js", "dom.js", "diagram.js", "plots.js", "controls.js")


def test_the_page_loads_its_script_as_es_modules_that_never_parse_server_text_as_html(
    setup,
) -> None:
    """#15 item 7: the dashboard's script as ES modules; text set with textContent only.
    (Changed deliberately: the script moved out of index.html into static/js/.)"""
    _orch, _keys, c = setup
    page = c.get("/").text
    assert '<script type="module" src="/static/js/main.js">' in page
    assert "<script>" not in page  # no inline script left
    src = {}
    for m in MODULES:
        r = c.get(f"/static/js/{m}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript"), m
        src[m] = r.text
    js = "\n".join(src.values())
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in js, sink
    assert "textContent" in src["dom.js"]
    assert c.get("/static/js/nope.js").status_code == 404
    assert c.get("/static/js/..%2Fstatic%2Findex.html").status_code == 404


def test_decision_and_command_controls_are_gated_by_role(setup) -> None:
    _orch, _keys, c = setup
    ctl = c.get("/static/js/controls.js").text
    main = c.get("/static/js/main.js").text
    assert 'api("/api/whoami")' in main and "setRole(" in main
    assert re.search(r'canOperate = \(\) => ROLE === "operator" \|\| ROLE === "admin"', ctl)
    assert re.search(r'isAdmin = \(\) => ROLE === "admin"', ctl)
    # every button the script creates is created behind a role check
    for block in re.split(r"\n(?=export function )", ctl):
        if 'h("button"' in block:
            assert "canOperate()" in block, block[:80]
    page = c.get("/").text
    assert '<section id="ops" hidden>' in page and '<form id="f-mode" hidden>' in page


def test_the_key_stays_out_of_urls(setup) -> None:
    _orch, _keys, c = setup
    api = c.get("/static/js/api.js").text
    assert "?token=" in api and "?key=" not in api and "key=${" not in api
    assert "sessionStorage" in api and "location.hash" in api and "history.replaceState" in api
    assert '"X-API-Key"' in api


def test_the_dashboard_reads_thresholds_from_the_server(setup) -> None:
    _orch, _keys, c = setup
    js = "\n".join(c.get(f"/static/js/{m}").text for m in MODULES)
    for hard in ("0.90", "0.95", "1.05", "< 0.9", "> 1.1"):
        assert hard not in js, hard
    assert "lim.v_min_pu" in js and "/api/limits" in js
