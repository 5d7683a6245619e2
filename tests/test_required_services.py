"""CI cannot pass with the service tests skipped: the required_services plugin turns them red."""

from __future__ import annotations

import pytest

from required_services import services_required

_INNER = """
import pytest

@pytest.mark.postgres
def test_needs_pg():
    pytest.skip("PostgreSQL service not available at 127.0.0.1:5432")

@pytest.mark.browser
@pytest.mark.skipif(True, reason="chromium not found")
def test_needs_browser():
    pass

def test_plain_skip():
    pytest.skip("no data here")
"""


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"CI": "true"}, True),
        ({"CI": "1"}, True),
        ({"CI": "false"}, False),
        ({"CI": "true", "GRIDPILOT_REQUIRE_SERVICES": "0"}, False),
        ({"GRIDPILOT_REQUIRE_SERVICES": "1"}, True),
        ({"CI": "true", "GRIDPILOT_REQUIRE_SERVICES": ""}, True),
    ],
)
def test_services_required_reads_ci_and_the_override(env: dict[str, str], expected: bool) -> None:
    assert services_required(env) is expected


def _run_inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None):
    monkeypatch.delenv("GRIDPILOT_REQUIRE_SERVICES", raising=False)
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    pytester.makeini(
        "[pytest]\nmarkers =\n    postgres: pg\n    browser: chromium\n    mqtt: broker\n"
    )
    pytester.makepyfile(test_inner=_INNER)
    return pytester.runpytest_inprocess("-p", "required_services", "-q")


def test_in_ci_a_skipped_service_test_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = _run_inner(pytester, monkeypatch, ci="true")
    # a skip in the call fails the test; one at set-up (skipif, a fixture) errors it: both are red
    res.assert_outcomes(failed=1, errors=1, skipped=1)
    res.stdout.fnmatch_lines(["*required service missing (postgres)*PostgreSQL*"])
    res.stdout.fnmatch_lines(["*required service missing (browser)*chromium not found*"])
    assert res.ret != 0


def test_outside_ci_service_tests_still_skip(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = _run_inner(pytester, monkeypatch, ci=None)
    res.assert_outcomes(skipped=3)
    assert res.ret == 0
