"""The orchestrator's senses: grid sensors through signed telemetry, the households' meter rows,
the demand estimate and the robust state estimate (a part of
:class:`~gridpilot.agent.orchestrator.Orchestrator`; see :mod:`gridpilot.agent.loopstate`)."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from gridpilot.agent.loopstate import LoopState
from gridpilot.agent.world import Observation
from gridpilot.telemetry import wire_text

log = logging.getLogger(__name__)


class Sensing(LoopState):
    """Observation in, estimates out: telemetry, meters, demand and state estimates."""

    def _via_telemetry(self, obs: Observation) -> Observation:
        """Grid sensors through signed telemetry: keep only what verifies (see TelemetryLink)."""
        assert self.link is not None
        ts_ms = int(obs.time.astype("datetime64[ms]").astype(np.int64))
        rep = self.link.roundtrip(obs, ts_ms, extra=self._foreign)
        self._foreign = []
        if rep.rejected:
            self._refused(obs, rep.rejected, "telemetry_rejected", "frames_rejected", "telemetry")
        link = self.link
        return dataclasses.replace(
            obs,
            v_pu=link.v_pu.copy(),
            line_loading_pct=link.line_loading_pct.copy(),
            switch_closed=link.switch_closed.copy(),
            energised=link.v_pu > 0.05,
            line_p_mw=link.line_p_mw.copy(),
            line_q_mvar=link.line_q_mvar.copy(),
        )

    def _meter_step(self, obs: Observation) -> None:
        """The households' meter rows (see :class:`~gridpilot.agent.meters.MeterPath`): counted,
        refused frames audited like the grid sensors' ones; its alarms join :meth:`_alarms`."""
        assert self.meters is not None
        rep = self.meters.step(obs)
        self.counters["meter_rows"] += rep.rows
        if rep.rejected:
            self._refused(
                obs, rep.rejected, "meter_frames_rejected", "meter_frames_rejected", "meter"
            )

    def _refused(
        self, obs: Observation, rejected: dict[str, int], counter: str, key: str, what: str
    ) -> None:
        """Frames that failed verification (by reason): counted, audited, shown as a security
        event at the observation's step."""
        n = sum(rejected.values())
        self.counters[counter] += n
        safe = {wire_text(k, 60): int(v) for k, v in rejected.items()}
        log.warning(
            "%d %s frame(s) refused at step %d: %s",
            n,
            what,
            obs.t,
            safe,
            extra={"step": obs.t, "refused": n, "by_reason": safe, "channel": what},
        )
        self.audit.record(
            actor="telemetry",
            kind="refused",
            what={key: rejected},
            why=f"{what} frames failed verification",
            status="refused",
            sim_time=str(obs.time),
        )
        self.events.append(
            {
                "t": obs.t,
                "time": str(obs.time),
                "kind": "security",
                "severity": "critical",
                "text": f"{n} {what} frame(s) refused: {rejected}",
            }
        )

    def receive_foreign(self, frames: list[bytes]) -> None:
        """Frames from elsewhere on the telemetry channel (e.g. an attacker's), read at the next step."""
        with self.lock:
            self._foreign.extend(frames)

    def _estimate(self, obs: Observation) -> None:
        g = self.grid
        lb = g.bus.position_map(g.load["bus"])
        on = obs.energised[lb]
        if self.last is not None:
            ratio = self.forecast_ratio(np.array([1.0]))[0]
            self.load_est_mw = self.load_est_mw * ratio
        if self.flexdr is not None:  # the metered load plus what its DR event's devices shed
            self.load_est_mw[on] = self._flex_demand(obs)[on]
        else:  # the world's own DR model: its enrolled share curtailed in proportion
            cut = 1.0 - self.dr_level * float(self.dr_share)
            self.load_est_mw[on] = obs.load_p_mw[on] / max(cut, 1e-6)
        if len(g.generator):
            gb = g.bus.position_map(g.generator["bus"])
            gon = obs.energised[gb]
            self.gen_est_mw[gon] = obs.gen_p_mw[gon]
        # EV chargers and flexible loads: last seen value where the bus is dead now
        for tb, est, seen in (
            (g.ev_charger, self.ev_est_mw, obs.ev_p_mw),
            (g.flex_load, self.flex_est_mw, obs.flex_p_mw),
        ):
            if len(tb):
                on_b = obs.energised[g.bus.position_map(tb["bus"])]
                est[on_b] = seen[on_b]

    def _state_estimate(self, obs: Observation) -> None:
        """Every ``se_every_steps`` steps (and after a switching change): the robust state
        estimate from the sensors received; bad data found is alarmed, shown and audited."""
        if self.estimator is None:
            return
        prev = self.estimate
        topo_changed = prev is not None and not np.array_equal(self._se_closed, obs.switch_closed)
        if prev is not None and not topo_changed and obs.t % self.se_every_steps:
            return
        self._se_closed = obs.switch_closed.copy()
        try:
            est = self.estimator.estimate(obs)
        except Exception as exc:  # the loop goes on without a fresh estimate; said, not hidden
            self._warn_failed("state estimation", obs, exc)
            self._event("estimation", f"state estimation failed: {exc}", "warning")
            self.estimate = None
            return
        self.estimate = est if est.converged else None
        self.se_ms.append(est.se_ms)
        self.counters["se_runs"] += 1
        if not est.converged:
            self._event("estimation", "state estimation did not converge", "warning")
            return
        if est.removed:
            self.counters["bad_data_removed"] += len(est.removed)
            if prev is not None and prev.removed == est.removed:
                return  # the same sensors as last time: the alarm stands, nothing new to log
            names = ", ".join(est.removed)
            self._event(
                "bad_data",
                f"bad data identified and removed: {names}",
                "major",
                measurements=list(est.removed),
                normalised_residuals=list(est.removed_rn),
            )
            self.audit.record(
                actor="estimation",
                kind="bad_data",
                what={"removed": list(est.removed), "normalised_residuals": est.removed_rn},
                why=(
                    f"chi-square test failed; largest normalised residual > 3: "
                    f"{names} removed, state re-estimated (J {est.chi2:.1f} <= {est.chi2_limit:.1f})"
                ),
                status="removed",
                sim_time=str(obs.time),
            )
