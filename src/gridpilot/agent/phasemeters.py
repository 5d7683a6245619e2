"""Customer meters on a three-phase feeder: one smart meter per feeder load, on its phase,
reporting signed 15-minute rows through one gateway per view load (the field's telemetry
layout, :class:`gridpilot.field.publish.FieldTelemetry`), so that the loop's meter path
(:class:`~gridpilot.agent.meters.MeterPath`) and the theft scenario run on a
:class:`~gridpilot.agent.world3p.ThreePhaseWorld`.

Each meter integrates its load's served power from the unbalanced physics (with the world's
noise); its import register advances by that energy times its tamper factor (1: honest; theft
sets less); its voltage is its node-phase's (0 when de-energised).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridpilot.errors import Issue, ValidationError

METER_INTERVAL_S = 900.0
METER_V_NOISE_PU = 0.002


@dataclass
class _Fleet:
    """What the field's telemetry reads of a fleet: each meter's load and bus position."""

    meter_load: np.ndarray
    meter_bus: np.ndarray


@dataclass
class _Field:
    """The field-simulator face :class:`~gridpilot.field.publish.FieldTelemetry` needs."""

    grid: Any
    fleet: _Fleet
    now_ms: int = 0
    sensor_line_ids: list[int] = field(default_factory=list)
    sensor_bus_ids: list[int] = field(default_factory=list)


class PhaseMeters:
    """The meters of a three-phase world (see the module notes).

    ``PhaseMeters(view_grid, load_members, load_node, bus_of_load, seed)``: ``load_members``
    per view load id the feeder loads behind it, ``load_node`` each feeder load's node-phase
    position (the first of its phases), ``bus_of_load`` each view load's bus position.
    """

    def __init__(self, view_grid: Any, load_members: dict[int, list[int]], load_node: np.ndarray,
                 seed: int = 0) -> None:  # fmt: skip
        ids = [int(x) for x in view_grid.load.ids]
        feeder, sec = [], []
        for pos, lid in enumerate(ids):
            for k in load_members.get(lid, []):
                feeder.append(k)
                sec.append(pos)
        self.feeder_load = np.asarray(feeder, np.int64)  # meter -> feeder load position
        self.meter_load = np.asarray(sec, np.int32)  # meter -> view load position
        bus = view_grid.bus.position_map(view_grid.load["bus"])
        self.field = _Field(
            view_grid, _Fleet(self.meter_load, bus[self.meter_load].astype(np.int32))
        )
        self.node = load_node[self.feeder_load]
        n = self.feeder_load.size
        self.tamper = np.ones(n)
        self.e_true = np.zeros(n)
        self.e_rep = np.zeros(n)
        self._e_rep_prev = np.zeros(n)
        self._since_s = 0.0
        self._rng = np.random.default_rng(seed + 7)
        self._tel: Any = None
        self.frames: list[bytes] = []

    def registry(self) -> Any:
        """Switch the reports on; the enrolment registry (gateways' public keys)."""
        if self._tel is None:
            from gridpilot.field.publish import FieldTelemetry
            from gridpilot.telemetry import InProcessBus

            self._tel = FieldTelemetry(self.field, InProcessBus())  # type: ignore[arg-type]
        return self._tel.registry

    def inject_theft(self, meters: np.ndarray | list[int], factor: float = 0.5) -> None:
        """Meters (positions) report ``factor`` (0..1) of their import from now on."""
        pos = np.asarray(meters, np.int64)
        if pos.size and (pos.min() < 0 or pos.max() >= self.tamper.size):
            raise ValidationError(issues=[Issue("theft", "meters", "unknown meter", value=meters)])
        if not 0.0 <= factor <= 1.0:
            raise ValidationError(
                issues=[Issue("theft", "factor", "must be in [0, 1]", value=factor)]
            )
        self.tamper[pos] = factor

    def step(self, p_kw: np.ndarray, v_pu: np.ndarray, step_s: float, now_ms: int) -> None:
        """Integrate one step's served power (kW per feeder load) and, at an interval's end,
        sign the rows (read with :attr:`frames`). ``v_pu`` per node-phase."""
        e = np.maximum(p_kw[self.feeder_load], 0.0) * step_s / 3600.0
        self.e_true += e
        self.e_rep += e * self.tamper
        self._since_s += step_s
        if self._since_s < METER_INTERVAL_S - 1e-9:
            return
        hours = self._since_s / 3600.0
        self._since_s = 0.0
        p = (self.e_rep - self._e_rep_prev) / hours
        self._e_rep_prev = self.e_rep.copy()
        if self._tel is None:
            return
        from gridpilot.field.records import FieldReadings, MeterReadings

        v = v_pu[self.node]
        v = np.where(v > 0, v + METER_V_NOISE_PU * self._rng.standard_normal(v.size), 0.0)
        n = p.size
        g = self.field.grid
        rows = MeterReadings(
            np.full(n, now_ms, np.int64), np.arange(n, dtype=np.int64),
            g.bus.ids[self.field.fleet.meter_bus], p, np.zeros(n), np.clip(v, 0.0, 2.0),
            self.e_rep.copy(), np.zeros(n),
        )  # fmt: skip
        sensors = {
            k: np.zeros(len(g.source)) for k in ("source_p_mw", "source_q_mvar", "source_v_pu")
        } | {"switch_closed": np.zeros(len(g.switch)), "line_p_mw": np.zeros(0),
             "line_q_mvar": np.zeros(0), "line_loading_pct": np.zeros(0), "bus_v_pu": np.zeros(0)}  # fmt: skip
        self.field.now_ms = now_ms
        self.frames += [
            fr for who, fr in self._tel.frames(FieldReadings(now_ms, rows, sensors, []))
            if who != "scada"
        ]  # fmt: skip


__all__ = ["METER_INTERVAL_S", "PhaseMeters"]
