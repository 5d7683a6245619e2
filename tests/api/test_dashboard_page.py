"""The served dashboard page, without a browser (tests/browser runs it in chromium)."""

from __future__ import annotations

import re

import pytest

from gridpilot.api import ROLES

from .conftest import hdr


@pytest.mark.parametrize("role", ROLES)
def test_whoami_names_the_keys_role(setup, role: str) -> None:
    _orch, keys, c = setup
    assert c.get("/api/whoami", headers=hdr(keys, role)).json() == {"name": role, "role": role}


def test_decision_buttons_are_rendered_only_for_roles_that_may_decide(setup) -> None:
    _orch, _keys, c = setup
    page = c.get("/").text
    assert 'fetch("/api/whoami"' in page
    assert re.search(r'canDecide = \(\) => ROLE === "operator" \|\| ROLE === "admin"', page)
    lines = [ln for ln in page.splitlines() if "<button" in ln]
    assert lines and all("canDecide()" in ln or ln.lstrip().startswith("?") for ln in lines)
    # and the page never writes server text into HTML unescaped
    assert "${e.text}" not in page and "${p.reason" not in page and "${a.text}" not in page
