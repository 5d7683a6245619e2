"""What the loop shows: headline figures, the history rows, the market interval and the live
state for the API (a part of :class:`~gridpilot.agent.orchestrator.Orchestrator`; see
:mod:`gridpilot.agent.loopstate`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from gridpilot.agent.loopstate import LoopState
from gridpilot.agent.world import Observation
from gridpilot.model import GenKind


class LoopReporting(LoopState):
    """Headline, history, market step and the live state (JSON-able)."""

    def headline(self) -> dict[str, Any]:
        """Headline figures of the latest observation (JSON-able)."""
        o = self.last
        if o is None:
            return {}
        g = self.grid
        ren = (
            np.isin(g.generator["kind"], (GenKind.WIND, GenKind.PV))
            if len(g.generator)
            else np.zeros(0, bool)
        )
        return {
            "t": o.t,
            "time": str(o.time),
            "mode": self.mode,
            "source_p_mw": round(o.source_p_mw, 4),
            "load_mw": round(float(o.load_p_mw.sum()), 4),
            "renewables_mw": round(float(o.gen_p_mw[ren].sum()), 4) if ren.size else 0.0,
            "storage_mw": round(float(o.storage_p_mw.sum()), 4),
            "vmin_pu": None if not np.isfinite(o.vmin_pu) else round(o.vmin_pu, 4),
            "vmax_pu": None if not np.isfinite(o.vmax_pu) else round(o.vmax_pu, 4),
            "max_loading_pct": round(o.max_loading_pct, 2),
            "losses_kw": None if not np.isfinite(o.losses_kw) else round(o.losses_kw, 2),
            "dead_buses": int((~o.energised).sum()),
            "dr_level": round(self.dr_level, 3),
            "dr_requests": dict(self.dr_requests),
            "dr_share": round(self.dr_share, 4),
            "known_faults": sorted(self.known_faults),
            "alarms": len(self.alarms),
            "pending_proposals": sum(p.status == "pending" for p in self.proposals.values()),
            "v_est_min_pu": None
            if self.estimate is None or not np.isfinite(self.estimate.vmin_pu)
            else round(self.estimate.vmin_pu, 4),
            **{k: v for k, v in self.counters.items()},
        }

    def _record_history(self, obs: Observation) -> None:
        est_total = float(self.load_est_mw.sum())
        ahead = 15
        f = self._metered_forecast_mw(obs, ahead)
        self._forecast_at[obs.t + ahead] = f
        fc = self._forecast_at.pop(obs.t, None)
        self.history.append(
            {
                "t": obs.t,
                "time": str(obs.time),
                "load_mw": round(float(obs.load_p_mw.sum()), 4),
                "demand_est_mw": round(est_total, 4),
                "forecast_mw": None if fc is None else round(fc, 4),
                **{
                    k: v
                    for k, v in self.headline().items()
                    if k
                    in (
                        "source_p_mw",
                        "renewables_mw",
                        "storage_mw",
                        "vmin_pu",
                        "v_est_min_pu",
                        "max_loading_pct",
                        "dr_level",
                        "dead_buses",
                        "losses_kw",
                    )
                },
                "price_eur_mwh": self.market.last_price if self.market else None,
                "volume_mwh": self.market.last_volume if self.market else None,
            }
        )

    def _market_step(self, obs: Observation) -> None:
        if self.market is None or obs.t % max(int(900 / self.world.step_s), 1):
            return
        try:
            info = self.market.clear(obs, self.dr_level)
        except Exception as exc:  # the market is advisory here; a failure is reported, never hidden
            self._warn_failed("market interval (the market is off from now)", obs, exc)
            self._event("market", f"market interval failed: {exc}", "warning")
            self.market = None
            return
        if info:
            self._event("market", f"market interval cleared: {info}", "info")

    def state(self) -> dict[str, Any]:
        """The full live state for the API and the dashboard (JSON-able)."""
        with self.lock:
            o = self.last
            g = self.grid
            if o is None:
                return {"headline": {}, "bus_id": g.bus.ids.tolist()}
            return {
                "headline": self.headline(),
                "bus_id": g.bus.ids.tolist(),
                "v_pu": np.round(o.v_pu, 4).tolist(),
                "energised": o.energised.tolist(),
                "line_id": g.line.ids.tolist(),
                "line_loading_pct": np.round(o.line_loading_pct, 1).tolist(),
                "switch_id": g.switch.ids.tolist(),
                "switch_closed": o.switch_closed.tolist(),
                "fpi": o.fpi.tolist(),
                "storage_soc": np.round(o.storage_soc, 3).tolist(),
                "v_est_pu": None
                if self.estimate is None
                else [
                    None if not np.isfinite(x) else round(float(x), 4) for x in self.estimate.v_pu
                ],
                "estimate": None if self.estimate is None else self.estimate.to_dict(),
                "alarms": [{"alarm": k, **v} for k, v in self.alarms.items()],
                "events": list(self.events)[-30:],
                "proposals": [
                    p.to_dict() for p in self.proposals.values() if p.status == "pending"
                ],
                "dr_events": self.flexdr.events() if self.flexdr is not None else [],
                "flex_plan": self.shared.get("flex_plan"),
            }
