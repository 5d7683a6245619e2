"""Scenario conditions and grid-device commands of the field, validated.

:data:`EVENT_KINDS` are the scenario events :meth:`gridpilot.field.FieldSimulator.inject_event`
accepts (the same kinds and parameters as ``gridpilot.agent.SimWorld.inject``);
:func:`set_condition` applies the ones that only change exogenous conditions (wind, heat, EV
charging) to a :class:`~gridpilot.field.grid_devices.GridConditions`; :func:`grid_command`
applies a grid-device command to a :class:`~gridpilot.field.grid_devices.GridDeviceState`.
Bad input raises :class:`~gridpilot.errors.ValidationError` naming the field and the value.
"""

from __future__ import annotations

import math
from typing import Any

from gridpilot.errors import Issue, UnknownComponentError, ValidationError
from gridpilot.field.grid_devices import GridConditions, GridDeviceState, clip_storage_setpoint
from gridpilot.model import Grid

EVENT_KINDS = (
    "fault",
    "repair",
    "wind_drop",
    "wind_restore",
    "gen_trip",
    "heatwave",
    "ev_surge",
    "fpi_failure",
    "fpi_false_pickup",
)
GRID_COMMANDS = ("grid_storage_setpoint", "ev_charging_factor", "flex_load_level", "fpi_reset")


def unknown_event(kind: str) -> UnknownComponentError:
    """The error for an event kind not in :data:`EVENT_KINDS`."""
    return UnknownComponentError("event kind", kind, f"known: {', '.join(EVENT_KINDS)}")


def number(scope: str, name: str, value: Any, lo: float = -math.inf, hi: float = math.inf) -> float:
    """``value`` as a finite float within [lo, hi]; else ValidationError naming ``name`` and it."""
    if value is None:
        raise ValidationError(issues=[Issue(scope, name, "is required (a number)")])
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    if not math.isfinite(x) or x < lo or x > hi:
        rng = (
            f"within [{lo:g}, {hi:g}]"
            if math.isfinite(lo) and math.isfinite(hi)
            else (f">= {lo:g}" if math.isfinite(lo) else "a finite number")
        )
        raise ValidationError(issues=[Issue(scope, name, f"must be {rng}", value=value)])
    return x


def set_condition(cond: GridConditions, kind: str, params: dict[str, Any]) -> bool:
    """Apply a condition event (wind_drop ``factor`` default 0.1, wind_restore, heatwave
    ``load_factor`` 1.25 / ``peak_factor`` 0.3 / ``peak_hour`` 17, ev_surge ``factor`` 2.5)
    to ``cond``. Returns False (nothing changed) for kinds that are not conditions."""
    if kind == "wind_drop":
        cond.wind_factor = number(kind, "factor", params.get("factor", 0.1), 0.0, 1.0)
    elif kind == "wind_restore":
        cond.wind_factor = 1.0
    elif kind == "heatwave":
        lf = number(kind, "load_factor", params.get("load_factor", 1.25), 0.0)
        pk = number(kind, "peak_factor", params.get("peak_factor", 0.3), 0.0)
        hr = number(kind, "peak_hour", params.get("peak_hour", 17.0), 0.0, 24.0)
        cond.load_factor, cond.heat_peak_factor, cond.heat_peak_hour = lf, pk, hr
    elif kind == "ev_surge":
        cond.ev_factor = number(kind, "factor", params.get("factor", 2.5), 0.0)
    else:
        return False
    return True


def grid_command(grid: Grid, state: GridDeviceState, name: str, target: Any, value: Any) -> dict:
    """Obey a grid-device command (one of :data:`GRID_COMMANDS` except ``fpi_reset``); returns
    the acknowledgement's details. ``grid_storage_setpoint``: ``target`` storage id, ``value``
    MW (+ charging), clipped to the rating; ``ev_charging_factor`` / ``flex_load_level``:
    ``value`` 0..1."""
    if name == "grid_storage_setpoint":
        if target is None:
            raise ValidationError(
                issues=[Issue("command", "target", f"{name} needs a storage id", value=target)]
            )
        try:
            sid = int(target)
        except (TypeError, ValueError):
            raise ValidationError(
                issues=[Issue("command", "target", "must be a storage id", value=target)]
            ) from None
        pos = int(grid.storage.index_of(sid)[0])  # unknown id -> UnknownComponentError
        p = number("command", "value", value)
        state.storage_cmd_mw[pos] = clip_storage_setpoint(grid, pos, p)
        return {"storage": sid, "p_mw": float(state.storage_cmd_mw[pos])}
    if name == "ev_charging_factor":
        state.ev_cmd_factor = number("command", "value", value, 0.0, 1.0)
        return {"factor": state.ev_cmd_factor}
    if name == "flex_load_level":
        state.flex_level = number("command", "value", value, 0.0, 1.0)
        return {"level": state.flex_level}
    raise ValidationError(
        issues=[
            Issue("command", "name", f"not a grid command; choose from {GRID_COMMANDS}", value=name)
        ]
    )
