"""The field obeying commands, its protection acting on switching and faults, and scenario
events and attacks injected (a part of :class:`~gridpilot.field.simulator.FieldSimulator`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from gridpilot.errors import Issue, UnknownComponentError, ValidationError
from gridpilot.field.conditions import (
    EVENT_KINDS,
    GRID_COMMANDS,
    grid_command,
    number,
    set_condition,
    unknown_event,
)
from gridpilot.field.protection import FaultIndications, fault_indications, reported_pickups
from gridpilot.field.records import COMMANDS, Command, FaultState, FieldEvent
from gridpilot.field.sim_readings import SimReadings
from gridpilot.twin import energised


class SimEvents(SimReadings):
    """Commands, protection, faults and attacks (see the module docstring)."""

    def _positions(self, kind: str, target: Any) -> np.ndarray:
        n = self.fleet.counts[kind]
        if target is None:
            return np.arange(n)
        pos = np.atleast_1d(np.asarray(target, np.int64))
        bad = pos[(pos < 0) | (pos >= n)]
        if bad.size:
            raise UnknownComponentError(kind, int(bad[0]), f"{kind} positions are 0..{n - 1}")
        return pos

    def apply(self, cmd: Command) -> FieldEvent:  # noqa: C901, PLR0912
        """Obey ``cmd`` (see :class:`Command`); returns the acknowledgement event (also queued).

        Unknown commands, targets or values raise :class:`~gridpilot.errors.ValidationError`
        naming them; nothing is changed then.
        """
        f = self.fleet
        name = cmd.name
        if name not in COMMANDS:
            raise ValidationError(
                issues=[
                    Issue("command", "name", f"unknown; choose from {list(COMMANDS)}", value=name)
                ]
            )
        detail: dict[str, Any] = {"cmd_id": cmd.cmd_id, "command": name}
        if name == "switch":
            if cmd.target is None or cmd.value is None:
                raise ValidationError(
                    issues=[
                        Issue("command", "target/value", "switch needs a switch id and True/False")
                    ]
                )
            k = int(self.grid.switch.index_of(int(cmd.target))[0])
            self.switch_closed[k] = bool(cmd.value)
            detail |= {"switch": int(cmd.target), "closed": bool(cmd.value)}
            self._topology_changed()
        elif name in ("pause", "resume"):
            self.paused = name == "pause"
        elif name == "fpi_reset":
            detail["fpi_reset"] = int(self.fpi.sum())
            self.fpi[:] = False
        elif name in GRID_COMMANDS:
            detail |= grid_command(self.grid, self.grid_devices, name, cmd.target, cmd.value)
        else:
            kind = {
                "battery_setpoint": "battery",
                "battery_auto": "battery",
                "ev_limit": "ev",
                "pv_limit": "pv",
                "water_heater_pause": "water_heater",
                "water_heater_resume": "water_heater",
            }[name]
            pos = self._positions(kind, cmd.target)
            if name in ("battery_setpoint", "ev_limit", "pv_limit"):
                if cmd.value is None:
                    raise ValidationError(
                        issues=[Issue("command", "value", f"{name} needs a value")]
                    )
                val = np.broadcast_to(np.asarray(cmd.value, np.float32), pos.shape)
                if not np.all(np.isfinite(val)):
                    raise ValidationError(
                        issues=[Issue("command", "value", "must be finite", value=cmd.value)]
                    )
                if name == "pv_limit" and (val.min() < 0 or val.max() > 1):
                    raise ValidationError(
                        issues=[
                            Issue(
                                "command", "value", "pv_limit is a fraction 0..1", value=cmd.value
                            )
                        ]
                    )
            if name == "battery_setpoint":
                f.bat_setpoint_kw[pos] = val
                f.bat_auto[pos] = False
            elif name == "battery_auto":
                f.bat_auto[pos] = True
            elif name == "ev_limit":
                f.ev_limit_kw[pos] = val
            elif name == "pv_limit":
                f.pv_limit_frac[pos] = val
            else:
                f.wh_paused[pos] = name == "water_heater_pause"
            detail["devices"] = int(pos.size)
        return self._event("ack", "info", detail)

    def set_switch_states(self, closed: np.ndarray) -> None:
        """Set every switch at once (bool per switch, table order), e.g. a crew restoring a
        configuration; protection then acts as for any switching."""
        c = np.asarray(closed, bool)
        if c.shape != self.switch_closed.shape:
            raise ValidationError(
                issues=[
                    Issue(
                        "field",
                        "switch_closed",
                        f"needs one value per switch ({self.switch_closed.size})",
                        value=c.shape,
                    )
                ]
            )
        self.switch_closed[:] = c
        self._topology_changed()

    def _topology_changed(self) -> None:
        """After a switch change: protection (closing onto a fault trips again), then energisation."""
        for _ in range(
            len(self.grid.source) + len(self.faults) + 1
        ):  # a fault fed from two sides trips twice
            fed = [
                ind
                for ind in (
                    fault_indications(self.grid, fs.line_id, self.switch_closed)
                    for fs in self.faults.values()
                )
                if ind.fed and ind.trip_switch >= 0
            ]
            if not fed:
                break
            for ind in fed:
                if self.switch_closed[int(self.grid.switch.index_of(ind.trip_switch)[0])]:
                    self._trip(ind)
        before = self.bus_live
        self.bus_live = energised(self.grid, self.switch_closed)
        self._voltage_events(before, self.bus_live)
        self.pf = self._powerflow()

    def _voltage_events(self, before: np.ndarray, after: np.ndarray) -> None:
        f = self.fleet
        for name, mask in (
            ("voltage_lost", before & ~after),
            ("voltage_restored", ~before & after),
        ):
            if mask.any():
                meters = np.flatnonzero(mask[f.meter_bus])
                self._event(
                    name,
                    "warning" if name == "voltage_lost" else "info",
                    {"bus_ids": self.grid.bus.ids[mask].tolist(), "meters": int(meters.size)},
                )

    def _trip(self, ind: FaultIndications) -> None:
        sw = self.grid.switch
        # failed indicators never pick up; mis-set ones pick up on any fault's transient
        false = self.fpi_false if ind.fed else np.zeros_like(self.fpi_false)
        fpi = reported_pickups(self.grid, ind.fpi_switches, self.fpi_failed, false)
        if fpi.size:
            self.fpi[sw.index_of(fpi)] = True
            self._event(
                "fpi_pickup",
                "warning",
                {"line_fault_suspected": True, "switch_ids": fpi.tolist()},
            )
        if ind.trip_switch >= 0:
            self.switch_closed[int(sw.index_of(ind.trip_switch)[0])] = False
            self._event(
                "breaker_trip",
                "alarm",
                {
                    "switch_id": ind.trip_switch,
                    "lost_bus_ids": ind.lost_buses.tolist(),
                    "fpi_switch_ids": fpi.tolist(),
                },
            )
        elif ind.fed and ind.line_id not in self._uncleared:
            self._uncleared.add(ind.line_id)
            self._event(
                "fault_uncleared",
                "alarm",
                {"line_id": ind.line_id, "reason": "no switch on the fault-current path"},
            )

    def inject_line_fault(self, line_id: int) -> FaultIndications:
        """A permanent fault on line ``line_id``: protection acts at once (trip, FPIs, lost voltage).

        The fault stays until :meth:`repair_line`; closing a switch that feeds it again trips again.
        Returns the protection's :class:`~gridpilot.field.protection.FaultIndications`.
        """
        ind = fault_indications(self.grid, int(line_id), self.switch_closed)
        self.faults[int(line_id)] = FaultState(int(line_id), ind, self.t_s)
        self._event("line_fault", "alarm", {"line_id": int(line_id), "fed": ind.fed, "truth": True})
        if ind.fed:
            self._trip(ind)
        self._topology_changed()
        return ind

    def repair_line(self, line_id: int) -> None:
        """Clear the fault on ``line_id`` (crews repaired it)."""
        if self.faults.pop(int(line_id), None) is None:
            raise UnknownComponentError("fault", line_id, f"faulted lines: {sorted(self.faults)}")
        self._uncleared.discard(int(line_id))
        self._event("line_repaired", "info", {"line_id": int(line_id)})

    def inject_event(self, kind: str, **params: Any) -> dict[str, Any]:
        """A scenario event (same kinds and parameters as ``gridpilot.agent.SimWorld.inject``).

        ``fault`` (``line`` id: :meth:`inject_line_fault`); ``repair`` (``line`` id, default
        every faulted line: :meth:`repair_line`; when no fault is left the crew resets the FPIs,
        hands the feeder back in its normal switch configuration and reports: a ``crew_report``
        event with ``lines``); ``wind_drop`` (``factor`` of available wind, default 0.1) /
        ``wind_restore``; ``gen_trip`` (``generator`` id: output 0 from now on, the unit's relay
        reports a ``device_trip`` event); ``heatwave`` (``load_factor`` 1.25, ``peak_factor``
        0.3, ``peak_hour`` 17: on household base demand and flexible loads); ``ev_surge``
        (``factor`` 2.5 on the EV charging stations); ``fpi_failure`` (``switch`` id: its
        fault-passage indicator never picks up); ``fpi_false_pickup`` (``switch`` id: its
        indicator is mis-set and picks up at every fault that trips a device, wherever the
        fault lies). Returns the event as recorded (``t_s`` added).
        Unknown kinds raise :class:`~gridpilot.errors.UnknownComponentError` listing the known.
        """
        g = self.grid
        rec: dict[str, Any] = {"kind": kind, **params, "t_s": self.t_s}
        if kind not in EVENT_KINDS:
            raise unknown_event(kind)
        if set_condition(self.grid_devices.cond, kind, params):
            self._event("condition", "info", {"kind": kind, **params})
        elif kind == "fault":
            line = int(number(kind, "line", params.get("line")))
            self.inject_line_fault(line)
        elif kind == "repair":
            if "line" in params:
                lines = [int(number(kind, "line", params["line"]))]
            else:
                lines = sorted(self.faults)
            for ln in lines:
                self.repair_line(ln)
            rec["lines"] = lines
            if not self.faults:  # the crew hands the feeder back in its normal configuration
                self.fpi[:] = False
                self.switch_closed[:] = self.normal_closed
                self._topology_changed()
            self._event("crew_report", "info", {"lines": lines, "event": "repaired"})
        elif kind == "gen_trip":
            gid = int(number(kind, "generator", params.get("generator")))
            self.grid_devices.gen_tripped[g.generator.index_of(gid)] = True
            self._event("device_trip", "alarm", {"generator": gid})
        else:  # fpi_failure, fpi_false_pickup
            sid = int(number(kind, "switch", params.get("switch")))
            bad = self.fpi_failed if kind == "fpi_failure" else self.fpi_false
            bad[g.switch.index_of(sid)] = True
        return rec

    def inject_theft(
        self, meters: np.ndarray | list[int], factor: float | np.ndarray = 0.5
    ) -> None:
        """Meter tampering: the meters report ``factor`` (0..1) of their true import from now on."""
        pos = self._positions("meter", meters)
        fac = np.broadcast_to(np.asarray(factor, np.float32), pos.shape)
        if fac.min() < 0 or fac.max() > 1:
            raise ValidationError(
                issues=[Issue("theft", "factor", "must be in [0, 1]", value=factor)]
            )
        self.fleet.tamper_factor[pos] = fac

    def inject_false_data(
        self,
        meters: np.ndarray | list[int],
        *,
        v_bias_pu: float | np.ndarray = 0.0,
        p_factor: float | np.ndarray = 1.0,
        replay: bool = False,
    ) -> None:
        """False data on meters: a voltage bias, a power multiplier, or a replay of the readings of
        ``keep_history_days`` earlier (needs ``keep_history_days`` > 0). Zero/one/False clears."""
        pos = self._positions("meter", meters)
        if replay and self._hist_p is None:
            raise ValidationError(
                issues=[Issue("false data", "replay", "needs keep_history_days > 0")]
            )
        f = self.fleet
        f.fdi_v_bias_pu[pos] = np.broadcast_to(np.asarray(v_bias_pu, np.float32), pos.shape)
        f.fdi_p_factor[pos] = np.broadcast_to(np.asarray(p_factor, np.float32), pos.shape)
        f.fdi_replay[pos] = replay

    def inject_sensor_bias(self, sensor: str, bias: float | np.ndarray) -> None:
        """False data on a grid sensor quantity (a key of :meth:`sensor_values`), added to its values."""
        vals = self.sensor_values()
        if sensor not in vals:
            raise UnknownComponentError("sensor", sensor, f"choose from {sorted(vals)}")
        self.sensor_bias[sensor] = np.broadcast_to(
            np.asarray(bias, np.float64), vals[sensor].shape
        ).copy()

    def inject_device_outage(
        self, kind: str, positions: np.ndarray | list[int], online: bool = False
    ) -> None:
        """Take devices of ``kind`` offline (or back online with ``online=True``)."""
        attr = {
            "meter": "meter_online",
            "pv": "pv_online",
            "battery": "bat_online",
            "ev": "ev_online",
            "water_heater": "wh_online",
        }
        if kind not in attr:
            raise ValidationError(
                issues=[Issue("outage", "kind", f"choose from {list(attr)}", value=kind)]
            )
        pos = self._positions(kind, positions)
        getattr(self.fleet, attr[kind])[pos] = online
        self._event(
            "device_online" if online else "device_offline",
            "info" if online else "warning",
            {"kind": kind, "count": int(pos.size)},
        )

    def set_message_faults(
        self, loss_prob: float = 0.0, delay_prob: float = 0.0, delay_s: float = 0.0
    ) -> None:
        """Message loss and delay for meter messages (probabilities per message; delay in seconds)."""
        for name, v in (("loss_prob", loss_prob), ("delay_prob", delay_prob)):
            if not 0.0 <= v <= 1.0:
                raise ValidationError(
                    issues=[Issue("message faults", name, "must be in [0, 1]", value=v)]
                )
        if delay_s < 0:
            raise ValidationError(
                issues=[Issue("message faults", "delay_s", "must be >= 0", value=delay_s)]
            )
        self.loss_prob, self.delay_prob, self.delay_s = loss_prob, delay_prob, delay_s
