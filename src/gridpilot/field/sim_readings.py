"""What the field sends: meter rows, grid sensors and the devices' own metering, with message
loss and delay (a part of :class:`~gridpilot.field.simulator.FieldSimulator`)."""

from __future__ import annotations

import numpy as np

from gridpilot.field.records import FieldReadings, MeterReadings, _Pending
from gridpilot.field.simstate import _SimState


class SimReadings(_SimState):
    """Readings of the simulated field (see the module docstring)."""

    def meter_values(self) -> MeterReadings:
        """Every meter's report for the interval ending now (no loss or delay applied).

        Mean power from the reported registers (so tampering shows as lower import), voltage
        with meter noise and a fixed per-meter service-drop offset, plus any false data.
        De-energised meters report 0 V and no power.
        """
        f = self.fleet
        nm = f.meter_load.size
        hours = max((self.t_s - self._last_report_s) / 3600.0, 1e-9)
        p = (
            (self._rep_import - self._rep_import_prev) - (self._rep_export - self._rep_export_prev)
        ) / hours
        qv = (self._q_kvarh - self._q_prev) / hours
        p = p * (1.0 + self.meter_p_noise * self.rng.standard_normal(nm))
        bus_v = np.nan_to_num(self.pf.v_pu, nan=0.0)
        v = (
            bus_v[f.meter_bus]
            + self.meter_v_offset_pu
            + self.meter_v_noise_pu * self.rng.standard_normal(nm)
        )
        v = np.where(self.bus_live[f.meter_bus], v, 0.0)
        p = p * f.fdi_p_factor
        v = v + f.fdi_v_bias_pu * (v > 0)
        hist_p, hist_v = self._hist_p, self._hist_v  # both kept, or neither
        if hist_p is not None and hist_v is not None:
            slots = hist_p.shape[0]
            k = self._hist_n % slots
            if self._hist_n >= slots and f.fdi_replay.any():
                r = f.fdi_replay
                jit = 1.0 + self.replay_noise * self.rng.standard_normal(nm)  # attacker's disguise
                p = np.where(r, hist_p[k] * jit, p)
                v = np.where(r, hist_v[k] * (1.0 + 0.1 * (jit - 1.0)), v)
            hist_p[k] = p
            hist_v[k] = v
            self._hist_n += 1
        self._rep_import_prev[:] = self._rep_import
        self._rep_export_prev[:] = self._rep_export
        self._q_prev[:] = self._q_kvarh
        self._last_report_s = self.t_s
        ts = np.full(nm, self.now_ms, np.int64)
        return MeterReadings(
            ts,
            np.arange(nm, dtype=np.int64),
            self.grid.bus.ids[f.meter_bus],
            p,
            qv,
            np.clip(v, 0.0, 2.0),
            self._rep_import.copy(),
            self._rep_export.copy(),
        )

    def sensor_values(self) -> dict[str, np.ndarray]:
        """Grid sensors now (feeder head, line flows, bus voltages, switch positions), false data applied."""
        pf, g = self.pf, self.grid
        lp = g.line.index_of(self.sensor_line_ids)
        bp = g.bus.index_of(self.sensor_bus_ids)
        src_bus = g.bus.position_map(g.source["bus"])
        out = {
            "source_p_mw": np.nan_to_num(pf.source_p_mw).copy(),
            "source_q_mvar": np.nan_to_num(pf.source_q_mvar).copy(),
            "source_v_pu": np.nan_to_num(pf.v_pu[src_bus]).copy(),
            "line_p_mw": np.nan_to_num(pf.line_p_from_mw[lp]).copy(),
            "line_q_mvar": np.nan_to_num(pf.line_q_from_mvar[lp]).copy(),
            "line_loading_pct": np.nan_to_num(pf.line_loading_pct[lp]).copy(),
            "bus_v_pu": np.nan_to_num(pf.v_pu[bp]).copy(),
            "switch_closed": self.switch_closed.astype(np.float64),
            "fpi": self.fpi.astype(np.float64),
        }
        out |= self._device_metering()
        for k, b in self.sensor_bias.items():
            out[k] = out[k] + b
        return out

    def _device_metering(self) -> dict[str, np.ndarray]:
        """The grid devices' own meters (and, with ``substation_meters``, every load's), MW."""
        g, live, pos = self.grid, self.bus_live, self._pos
        z = lambda n: np.zeros(n)  # noqa: E731  before the first step: nothing measured yet
        gp = self.grid_p_mw
        out = {
            "gen_p_mw": gp.get("gen_p_mw", z(len(g.generator))) * live[pos["gen"]],
            "storage_p_mw": gp.get("storage_p_mw", z(len(g.storage))) * live[pos["storage"]],
            "storage_soc": self.grid_devices.storage_soc.copy(),
            "ev_p_mw": gp.get("ev_p_mw", z(len(g.ev_charger))) * live[pos["ev"]],
            "flex_p_mw": gp.get("flex_p_mw", z(len(g.flex_load))) * live[pos["flex"]],
        }
        if self.substation_meters:
            on = live[pos["load"]]
            out["load_p_mw"] = self.load_p_mw * on
            out["load_q_mvar"] = self.load_q_mvar * on
        return out

    def readings(self, *, meters: bool | None = None) -> FieldReadings:
        """What the field sends now: meter rows (when a reporting interval has ended, or if
        ``meters`` is True), the grid sensors and the events since the last call.

        Message loss drops meter rows with probability ``loss_prob``; delay holds rows back
        ``delay_s`` with probability ``delay_prob`` (they arrive in a later call, with their
        original timestamps). Events are never lost.
        """
        due = (
            meters
            if meters is not None
            else (self.t_s - self._last_report_s) >= self.meter_interval_s - 1e-9
        )
        parts: list[MeterReadings] = []
        if due:
            rows = self.meter_values()
            rows = rows.take(self.fleet.meter_online)  # offline meters send nothing
            n = len(rows)
            if self.loss_prob > 0:
                rows = rows.take(self.rng.random(n) >= self.loss_prob)
                n = len(rows)
            if self.delay_prob > 0 and self.delay_s > 0:
                late = self.rng.random(n) < self.delay_prob
                self._pending.append(_Pending(self.t_s + self.delay_s, rows.take(late)))
                rows = rows.take(~late)
            parts.append(rows)
        keep: list[_Pending] = []
        for pend in self._pending:
            (parts.append(pend.rows) if pend.release_s <= self.t_s + 1e-9 else keep.append(pend))
        self._pending = keep
        evs, self.events = self.events, []
        return FieldReadings(self.now_ms, MeterReadings.concat(parts), self.sensor_values(), evs)
