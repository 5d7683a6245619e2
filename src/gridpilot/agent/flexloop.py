"""The orchestrator's flexibility glue: demand-response shares, the look-ahead's forecasts and
price/CO2 signals for the flexibility schedule, and :class:`~gridpilot.agent.flexlink.FlexDR`'s
dispatch into the world with its audit trail.

:class:`FlexLoop` is a part of :class:`~gridpilot.agent.orchestrator.Orchestrator` (the
loop's state it reads is typed by :class:`~gridpilot.agent.loopstate.LoopState`); it keeps the
loop's own module to observe -> decide -> guard -> act.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from gridpilot.agent.loopstate import LoopState
from gridpilot.agent.world import EV_DR_SHARE, Observation
from gridpilot.agent.worldtypes import EvDeferringWorld
from gridpilot.model import GenKind
from gridpilot.telemetry import wire_text

log = logging.getLogger(__name__)


class FlexLoop(LoopState):
    """Flexibility methods of the orchestrator (see the module docstring)."""

    @property
    def dr_share(self) -> float:
        """Share of the estimated demand that DR level 1 sheds: the world's enrolled share plus,
        with :class:`~gridpilot.agent.flexlink.FlexDR`, what the household devices could shed."""
        return float(self.world.dr_share) + (self.flexdr.share if self.flexdr else 0.0)

    def _dr_share_ctx(self) -> float | np.ndarray:
        """``dr_share`` for the look-ahead model: per load with FlexDR (where its devices are),
        else the world's enrolled share."""
        fd = self.flexdr
        if fd is not None and fd.share_per_load is not None:
            return float(self.world.dr_share) + fd.share_per_load
        return self.dr_share

    @property
    def ev_dr_share(self) -> float:
        """Share of the EV stations' charging that DR level 1 defers in the world: the world's
        ``ev_dr_share``, else SimWorld's smart-charging share (0 on a world with household
        devices under FlexDR, whose EV stations follow only the EV factor)."""
        if isinstance(self.world, EvDeferringWorld):
            return float(self.world.ev_dr_share)
        return 0.0 if self.flexdr is not None else EV_DR_SHARE

    def flex_signals(self, steps: int) -> Any:
        """Price (EUR/MWh) and carbon intensity (t/MWh) for ``steps`` 15-minute steps from the
        15-minute interval of now: :func:`gridpilot.flex.default_signals` of the grid's own
        profiles (synthetic, documented in docs/flex.md), days repeated beyond them."""
        from gridpilot.flex import Signals, default_signals

        assert self.last is not None
        idx = self._prof.index.astype("datetime64[s]")
        now = self.last.time.astype("datetime64[s]")
        i0 = int(np.clip(np.searchsorted(idx, now, "right") - 1, 0, idx.size - 1))
        if self._signals is None:
            self._signals = default_signals(self._signal_grid, idx.size)
        sig = self._signals
        n = sig.price_eur_per_mwh.size
        if i0 + steps > n:  # beyond the profiles: the last day repeated
            days = int(np.ceil((i0 + steps - n) / 96))
            tail = slice(n - 96, n)
            sig = Signals(
                np.concatenate([sig.price_eur_per_mwh, np.tile(sig.price_eur_per_mwh[tail], days)]),
                np.concatenate([sig.co2_t_per_mwh, np.tile(sig.co2_t_per_mwh[tail], days)]),
                sig.source,
            )
        return sig.window(i0, steps)

    def forecast_injections(
        self, minutes_ahead: np.ndarray, load_offset_mw: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """The loop's forecast of the injections at ``minutes_ahead`` (k,) minutes from now,
        (k, n) MW/Mvar per key in table order (storage left out).

        Loads: the estimated demand (less ``load_offset_mw`` per load, e.g. what a schedule
        adds to the metered level now) times :meth:`forecast_ratio`, Q at the loads' metered
        (else model) power factor. Generators: their profile shape ahead (the stand-in for a
        weather forecast) times their present level against that shape (1 when the shape is
        near 0 now, e.g. PV at night), at most their rating. EV stations and flexible loads:
        their present estimate held (no forecast of their own).
        """
        assert self.last is not None
        g = self.grid
        m = np.asarray(minutes_ahead, np.float64)
        ratio = self.forecast_ratio(m * 60.0 / self.world.step_s)
        base = self.load_est_mw - (0.0 if load_offset_mw is None else load_offset_mw)
        lp = np.maximum(base, 0.0)[None, :] * ratio
        lq_obs = self.last.load_q_mvar
        if lq_obs.size == len(g.load) and np.any(lq_obs != 0):
            pf = np.divide(
                lq_obs,
                self.last.load_p_mw,
                out=np.zeros(len(g.load)),
                where=np.abs(self.last.load_p_mw) > 1e-6,
            )
        else:
            pf = g.load["q_mvar"] / np.where(g.load["p_mw"] > 0, g.load["p_mw"], 1.0)
        out = {"load_p_mw": lp, "load_q_mvar": lp * pf[None, :]}
        if len(g.generator):
            now = self.last.time.astype("datetime64[s]")
            times = np.concatenate([[now], now + np.rint(m * 60).astype("timedelta64[s]")])
            shape = self._gen_shape(times)
            pn = g.generator["p_mw"]
            exp_now = pn * shape[0]
            level = np.where(
                exp_now > 0.05 * np.maximum(pn, 1e-9),
                self.gen_est_mw / np.maximum(exp_now, 1e-9),
                1.0,
            )
            out["gen_p_mw"] = np.minimum(pn[None, :] * shape[1:] * np.clip(level, 0, 1.5), pn)
        k = m.size
        if len(g.ev_charger):
            out["ev_p_mw"] = np.tile(self.ev_est_mw, (k, 1))
        if len(g.flex_load):
            out["flex_p_mw"] = np.tile(self.flex_est_mw, (k, 1))
        return out

    def _gen_shape(self, times: np.ndarray) -> np.ndarray:
        """Per-unit output forecast of each generator at ``times`` (datetime64[s]), (k, n_gen):
        the weather-driven PV and wind forecast where the world gives a weather forecast, else
        (and for other generators) the generator's profile shape."""
        g = self.grid
        col = np.asarray(self._cols["gen_p"])
        idx = self._prof.index.astype("datetime64[s]")
        at = np.clip(np.searchsorted(idx, times, "right") - 1, 0, idx.size - 1)
        shape = np.where(col[None, :] >= 0, self._prof.values[at][:, np.clip(col, 0, None)], 1.0)
        rf = self.renewable_forecast
        wx = rf.shape(times) if rf is not None else None
        if wx is not None:
            kind = np.asarray(g.generator["kind"])
            shape = np.where((kind == GenKind.PV)[None, :], wx["pv"].to_numpy()[:, None], shape)
            shape = np.where((kind == GenKind.WIND)[None, :], wx["wind"].to_numpy()[:, None], shape)
        return np.asarray(shape, np.float64)

    def _flex_tick(self, obs: Observation) -> list[Any]:
        """FlexDR's step: the metered load (dark loads at their estimated demand, so that a
        fault or a restoration is not read as a change of the DR's reduction) and the
        load-shape forecast now (nominal-weighted), for the events' measured reduction and
        delivery check; returns its commands."""
        assert self.flexdr is not None
        g = self.grid
        shape = self.load_forecast.shape(np.array([obs.time.astype("datetime64[s]")]))[0]
        w = np.maximum(g.load["p_mw"], 0.0)
        s = float((shape * w).sum() / max(w.sum(), 1e-9))
        on = obs.energised[g.bus.position_map(g.load["bus"])]
        load = float(np.where(on, obs.load_p_mw, self.load_est_mw).sum())
        return self.flexdr.tick(obs.time, load, s if s > 0 else 1.0)

    def _flex_demand(self, obs: Observation) -> np.ndarray:
        """Demand per load (MW) with FlexDR: the metered load, un-curtailed by the world's own
        DR share (0 on the field world), plus what the DR event's plan had the devices shed at
        the step in force when the load was metered (added back once: never divided by a
        share, so an event shedding most of a load does not blow the estimate up)."""
        assert self.flexdr is not None
        cut = max(1.0 - self.dr_level * float(self.world.dr_share), 1e-6)
        return obs.load_p_mw / cut + self.flexdr.shed_by_load_mw(len(self.grid.load))

    def _metered_forecast_mw(self, obs: Observation, minutes_ahead: float) -> float:
        """The loop's forecast of the feeder's metered load ``minutes_ahead`` from now (MW):
        the forecast demand (estimate x :meth:`forecast_ratio`) less what the active DR
        event's plan will have the devices shed at the reading then (the set points of a plan
        step go out at the first loop step of the 15-minute interval and are metered from the
        next; the event held while its level holds). Loads in sections isolated for a fault
        (dark until repaired) are left out; other dark loads count (FLISR restores them)."""
        g = self.grid
        ratio = self.forecast_ratio(np.array([minutes_ahead * 60.0 / self.world.step_s]))[0]
        demand = ratio * self.load_est_mw
        if self.flexdr is not None and self.flexdr.active is not None:
            lag_s = int(minutes_ahead * 60 - self.world.step_s)
            at = obs.time.astype("datetime64[s]") + np.timedelta64(lag_s, "s")
            demand = demand - self.flexdr.shed_by_load_mw(len(g.load), at)
        keep = ~np.isin(np.asarray(g.load["bus"], np.int64), list(self.section_buses))
        return float(np.maximum(demand[keep], 0.0).sum())

    def _flex_run(self, fn: Callable[[], list[Any] | None], why: str = "") -> None:
        """Run a :class:`FlexDR` call, send its commands to the world, and audit and show every
        event it dispatched, renewed or ended (actor: whoever asked for the DR)."""
        fd = self.flexdr
        assert fd is not None
        before = {r.id: r.status for r in fd.records}
        sim_time = str(self.last.time) if self.last is not None else ""
        try:
            cmds = fn()
            if cmds and self.device_world is not None:
                self.device_world.apply(cmds)
        except Exception as exc:  # the loop goes on; the failure is shown and on the record
            log.exception(
                "demand-response dispatch failed: %s",
                wire_text(exc, 300),
                extra={"sim_time": sim_time, "why": wire_text(why, 200)},
            )
            self.audit.record(
                actor="flex",
                kind="dr_event",
                what=repr(exc),
                why=why or "demand-response dispatch failed",
                status="failed",
                sim_time=sim_time,
            )
            self._event("dr", f"demand-response dispatch failed: {exc}", "major")
            return
        for r in fd.records:
            if before.get(r.id) == r.status:
                continue
            verb = {
                "active": "dispatched",
                "empty": "not dispatched (nothing to shed now)",
            }.get(r.status, r.status)
            self.audit.record(
                actor=r.source or "flex",
                kind="dr_event",
                what=r.to_dict(),
                why=r.reason or why or f"demand response level {r.level:.2f}",
                status="dispatched" if r.status == "active" else r.status,
                sim_time=sim_time,
            )
            text = (
                f"DR event {r.id} {verb}: target {r.target_mw:.3f} MW, expected "
                f"{r.expected_mean_mw:.3f} MW from {sum(r.devices.values())} devices"
                if r.status in ("active", "empty")
                else f"DR event {r.id} {verb}"
                + (
                    f": measured {r.measured_reduction_mw:.3f} MW vs expected "
                    f"{r.expected_mean_mw:.3f} MW"
                    if r.measured_reduction_mw is not None
                    else ""
                )
            )
            self._event("dr", text, "info", dr_event=r.id)
