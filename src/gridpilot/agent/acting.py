"""Who is acting, and what an operator does besides plans: acknowledging alarms, announcements.

:data:`acting_role` is set by the API around a request (a :class:`contextvars.ContextVar`):
every audit row written while it is set carries the caller's role in its ``data``
(:meth:`~gridpilot.agent.audit.AuditLog.record`). :class:`AlarmAcks` keeps the operators'
acknowledgements of the orchestrator's active alarms: an acknowledgement holds for one
occurrence of an alarm (its ``since``); the same alarm raised again is unacknowledged.
"""

from __future__ import annotations

import logging
import threading
from contextvars import ContextVar
from typing import Any

from gridpilot.errors import UnknownComponentError

log = logging.getLogger(__name__)

acting_role: ContextVar[str | None] = ContextVar("gridpilot_acting_role", default=None)


def with_role(data: Any) -> Any:
    """``data`` with ``role`` added when a role is acting (an audit row's ``data``)."""
    role = acting_role.get()
    if role is None:
        return data
    if data is None:
        return {"role": role}
    if isinstance(data, dict):
        return {**data, "role": role}
    return {"data": data, "role": role}


def announce(orch: Any, text: str, severity: str = "warning", **extra: Any) -> None:
    """Put ``text`` in the orchestrator's event log as an ``announce`` event (what is coming)."""
    with orch.lock:
        orch._event("announce", text[:300], severity, **extra)


class AlarmAcks:
    """Operators' acknowledgements of the orchestrator's active alarms (by alarm name and since)."""

    def __init__(self, orch: Any) -> None:
        self.orch = orch
        self._acks: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def acknowledge(self, alarm: str, actor: str) -> dict[str, Any]:
        """Acknowledge active ``alarm`` for ``actor`` (audited, in the event log).

        Returns the alarm with ``acked_by``; :class:`UnknownComponentError` if it is not active.
        """
        orch = self.orch
        with orch.lock:
            a = orch.alarms.get(alarm)
            if a is None:
                raise UnknownComponentError("alarm", alarm)
            since = a.get("since")
            with self._lock:
                self._acks[alarm] = {"since": since, "by": actor}
            orch.audit.record(
                actor=f"operator:{actor}",
                kind="command",
                what={"acknowledge": alarm, "since": since},
                why=f"alarm acknowledged: {a.get('text', '')}"[:300],
                status="done",
                sim_time=str(orch.last.time) if orch.last is not None else "",
            )
            orch._event("ack", f"{actor} acknowledged the {alarm} alarm", "info", alarm=alarm)
            return {"alarm": alarm, **a, "acked_by": actor}

    def annotate(self, alarms: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``alarms`` (``{"alarm": name, "since": ...}``) each with ``acked_by`` (None: not acknowledged)."""
        with self._lock:
            out = []
            for a in alarms:
                ack = self._acks.get(a["alarm"])
                by = ack["by"] if ack is not None and ack["since"] == a.get("since") else None
                out.append({**a, "acked_by": by})
            live = {a["alarm"] for a in alarms}
            for k in [k for k in self._acks if k not in live]:  # cleared: forget the ack
                del self._acks[k]
            return out
