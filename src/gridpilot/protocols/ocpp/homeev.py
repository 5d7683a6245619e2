"""Household EVs behind OCPP home charge points (``gridpilot demo --ev-protocol ocpp``).

The field's household EVs (the aggregator's fleet, :attr:`FieldWorld.devices`) charge at home
on a charge point each, ``ev-home-<position>``: OCPP 2.1 where the EV can discharge (V2G),
2.0.1 otherwise. The loop's household EV set points (the flexibility schedule's and the DR
events' ``ev_limit`` field commands, kW, negative = V2G discharge) become protocol-neutral
:class:`~gridpilot.protocols.DeviceCommand` s here: a limit >= 0 is ``ev_limit_w`` (a
``SetChargingProfile`` limit in W), a negative one ``ev_setpoint_w`` (an OCPP 2.1 central set
point; to a 2.0.1 charger it is refused before sending, ``invalid``). What a charge point holds
after that is what the field's EV follows (:func:`held_command`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gridpilot.errors import ValidationError
from gridpilot.protocols.adapter import DeviceCommand
from gridpilot.protocols.ocpp.station import StationSpec

HOME_PREFIX = "ev-home-"


def home_ids(fleet: Any) -> list[str]:
    """The home charge points' station ids, one per household EV (by fleet position)."""
    n = len(np.asarray(getattr(fleet, "ev_v2g", ())))
    return [f"{HOME_PREFIX}{k}" for k in range(n)]


def home_specs(fleet: Any, password: Callable[[str], str]) -> list[StationSpec]:
    """One :class:`StationSpec` per household EV: rating = its charger (kW -> W), OCPP 2.1 and
    V2G where the EV can discharge, 2.0.1 otherwise; ``password(station_id)`` provisions it."""
    v2g = np.asarray(fleet.ev_v2g, bool)
    kw = np.asarray(fleet.ev_charger_kw, np.float64)
    return [
        StationSpec(
            sid, password(sid), float(kw[k]) * 1e3, bool(v2g[k]), "2.1" if v2g[k] else "2.0.1"
        )
        for k, sid in enumerate(home_ids(fleet))
    ]


def split_ev_limits(cmds: Sequence[Any], n_ev: int) -> tuple[list[Any], list[DeviceCommand]]:
    """Split field commands into (the others, unchanged; the ``ev_limit`` ones as one
    :class:`DeviceCommand` per EV, W). Raises :class:`ValidationError` naming ``target`` or
    ``value`` for a position outside the fleet or a value that is not one finite number per EV."""
    rest: list[Any] = []
    out: list[DeviceCommand] = []
    for c in cmds:
        if getattr(c, "name", None) != "ev_limit":
            rest.append(c)
            continue
        pos = np.arange(n_ev) if c.target is None else np.atleast_1d(np.asarray(c.target))
        if pos.size and (pos.dtype.kind not in "iu" or pos.min() < 0 or pos.max() >= n_ev):
            raise ValidationError(f"ev_limit target: positions 0..{n_ev - 1}, got {pos[:8]}")
        try:
            kw = np.broadcast_to(np.asarray(c.value, np.float64), pos.shape)
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                f"ev_limit value: one kW per target, got {c.value!r:.80}"
            ) from exc
        if not np.isfinite(kw).all():
            raise ValidationError(f"ev_limit value: must be finite kW, got {kw[:8]}")
        tag = str(getattr(c, "cmd_id", ""))[:64]
        for p, v in zip(pos.tolist(), kw.tolist(), strict=True):
            w = round(v * 1e3, 1)
            kind = "ev_limit_w" if w >= 0 else "ev_setpoint_w"
            out.append(DeviceCommand(f"{HOME_PREFIX}{int(p)}", kind, w, tag=tag))
    return rest, out


def held_command(held: dict[str, float | None], fleet: Any) -> Any:
    """The field command making each household EV follow what its charge point holds (the
    set point or limit it accepted, W -> kW), for those that differ from the field's; None if none."""
    from gridpilot.field import Command

    ids = home_ids(fleet)
    now = np.asarray(fleet.ev_limit_kw, np.float64)
    pos, kw = [], []
    for k, sid in enumerate(ids):
        w = held.get(sid)
        if w is not None and abs(w / 1e3 - now[k]) > 1e-4:
            pos.append(k)
            kw.append(w / 1e3)
    if not pos:
        return None
    return Command("ev_limit", np.array(pos), np.array(kw), "ocpp:held")
