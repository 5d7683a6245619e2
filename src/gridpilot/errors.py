"""One exception hierarchy for gridpilot, rooted in :class:`GridpilotError`.

Every error a user can cause names what to fix: the component, its id, the field and the
offending value. Catch :class:`GridpilotError` to handle anything gridpilot raises on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class GridpilotError(Exception):
    """Base class of every error gridpilot raises on purpose."""


@dataclass(frozen=True)
class Issue:
    """One problem found in user input.

    ``component`` and ``field`` say where, ``ids`` which elements (up to a few), ``value``
    an offending value and ``message`` what is wrong, in words.
    """

    component: str
    field: str
    message: str
    ids: tuple[Any, ...] = ()
    value: Any = None
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        where = self.component
        if self.ids:
            shown = ", ".join(str(i) for i in self.ids[:5])
            more = f" (+{len(self.ids) - 5} more)" if len(self.ids) > 5 else ""
            where += f" id {shown}{more}"
        if self.field:
            where += f": field '{self.field}'"
        if self.value is not None:
            where += f" = {self.value!r}"
        return f"{where}: {self.message}"


class ValidationError(GridpilotError, ValueError):
    """Input that gridpilot refuses. ``issues`` lists every problem found, not just the first."""

    def __init__(self, message: str | None = None, issues: list[Issue] | None = None) -> None:
        self.issues: list[Issue] = list(issues or [])
        if message is None:
            errors = [i for i in self.issues if i.severity == "error"]
            lines = [str(i) for i in errors[:10]]
            if len(errors) > 10:
                lines.append(f"... and {len(errors) - 10} more")
            message = "invalid input:\n  " + "\n  ".join(lines) if lines else "invalid input"
        super().__init__(message)


class UnknownComponentError(ValidationError, KeyError):
    """A component id (bus, line, switch, device, grid name …) that does not exist."""

    def __init__(self, component: str, value: Any, hint: str = "") -> None:
        self.component = component
        self.value = value
        msg = f"unknown {component} {value!r}"
        if hint:
            msg += f"; {hint}"
        ValidationError.__init__(self, msg, [Issue(component, "id", msg, (value,), value)])

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


class ConvergenceError(GridpilotError):
    """A power flow (or estimation) that did not converge; ``steps`` lists failed steps."""

    def __init__(self, message: str, steps: list[int] | None = None) -> None:
        super().__init__(message)
        self.steps = steps or []


class InfeasibleError(GridpilotError):
    """An optimisation or plan with no feasible solution; ``binding`` names what blocks it."""

    def __init__(self, message: str, binding: str = "") -> None:
        super().__init__(message)
        self.binding = binding


class AuthError(GridpilotError):
    """A signature, key, sequence number or credential that is refused."""
