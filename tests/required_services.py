"""A pytest plugin: in CI, a test that needs a service or the browser fails instead of skipping.

Tests marked ``postgres``, ``mqtt`` or ``browser`` skip on a developer's machine that lacks the
service. Under CI (``CI=true``) or with ``GRIDPILOT_REQUIRE_SERVICES=1`` such a skip is turned
into a failure that names the marker and the skip reason, so a CI run cannot pass with those
tests silently not run. ``GRIDPILOT_REQUIRE_SERVICES=0`` turns the rule off even under CI.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Mapping

import pytest

SERVICE_MARKS: frozenset[str] = frozenset({"postgres", "mqtt", "browser"})
_TRUE = {"1", "true", "yes", "on"}


def services_required(env: Mapping[str, str] | None = None) -> bool:
    """True when skipped service tests must fail: ``GRIDPILOT_REQUIRE_SERVICES`` wins over ``CI``."""
    env = os.environ if env is None else env
    explicit = env.get("GRIDPILOT_REQUIRE_SERVICES")
    if explicit is not None and explicit.strip() != "":
        return explicit.strip().lower() in _TRUE
    return env.get("CI", "").strip().lower() in _TRUE


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """Turn the skip of a service-marked test into a failure when services are required."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not report.skipped or not services_required():
        return
    marks = sorted({m.name for m in item.iter_markers()} & SERVICE_MARKS)
    if not marks or hasattr(report, "wasxfail"):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"required service missing ({', '.join(marks)}): {_skip_reason(report)}; "
        "CI must run every postgres/mqtt/browser test (GRIDPILOT_REQUIRE_SERVICES=0 disables this)"
    )
