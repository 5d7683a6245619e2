"""Event texts for people: who did it and what, without internal prefixes or Python reprs."""

from __future__ import annotations

from typing import Any

_WHAT = {
    "fault": lambda p: f"a fault on line {p['line']}" if "line" in p else "a fault",
    "repair": lambda p: (
        f"the repair of line {p['line']}"
        if p.get("line") is not None
        else "the repair of every faulted line"
    ),
    "wind_drop": lambda p: (
        f"a wind drop to {round(100 * float(p.get('factor', 0.1)))} % of what is available"
    ),
    "wind_restore": lambda p: "the wind back",
    "gen_trip": lambda p: f"a trip of generator {p.get('generator')}",
    "heatwave": lambda p: "a heatwave",
    "ev_surge": lambda p: f"an EV charging surge (x{p.get('factor', 2.5)})",
    "fpi_failure": lambda p: f"a failed fault indicator at switch {p.get('switch')}",
    "fpi_false_pickup": lambda p: (
        f"a falsely picking-up fault indicator at switch {p.get('switch')}"
    ),
}


def who(actor: str) -> str:
    """``actor`` as people read it: ``operator:alice`` → ``alice``, ``policy:dr`` → ``dr policy``."""
    kind, _, name = actor.partition(":")
    if not name:
        return actor
    if kind == "policy":
        return f"{name} policy"
    return name


def event_phrase(kind: str, params: dict[str, Any]) -> str:
    """A drill event in words: ``fault`` with ``line=27`` → ``a fault on line 27``."""
    f = _WHAT.get(kind)
    try:
        return f(params) if f is not None else kind.replace("_", " ")
    except (KeyError, TypeError, ValueError):
        return kind.replace("_", " ")


def injected_text(actor: str, kind: str, params: dict[str, Any]) -> str:
    """The event-log text of an injected drill event: ``operator injected a fault on line 7``."""
    return f"{who(actor)} injected {event_phrase(kind, params)}"
