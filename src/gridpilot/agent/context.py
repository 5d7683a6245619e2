"""What a policy sees (:class:`Context`) and is (:class:`Policy`), the typed callables the
loop hands it, and :func:`batch_eval`, the one-batch simulation the policies share."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from gridpilot.agent.actions import Plan
from gridpilot.agent.guard import GuardLimits
from gridpilot.agent.world import EV_DR_SHARE, Observation
from gridpilot.model import Grid
from gridpilot.twin import Injections, Twin

if TYPE_CHECKING:
    from gridpilot.agent.flexlink import FlexDR
    from gridpilot.flex import Signals


class ForecastRatio(Protocol):
    """The loop's load forecast: multipliers of the present estimate (k, n_load) at
    ``steps_ahead`` (k,) loop steps from now."""

    def __call__(self, steps_ahead: np.ndarray) -> np.ndarray:
        """Forecast ratio for each of ``steps_ahead`` loop steps from now."""
        ...


class ForecastInjections(Protocol):
    """The loop's forecast of the injections at ``minutes_ahead`` (k,) minutes from now:
    (k, n) MW/Mvar per key in table order; ``load_offset_mw`` is taken off the loads' estimate."""

    def __call__(
        self, minutes_ahead: np.ndarray, load_offset_mw: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Forecast injections per key for each of ``minutes_ahead``, MW/Mvar in table order."""
        ...


class FlexSignals(Protocol):
    """Price (EUR/MWh) and carbon intensity (t/MWh) for ``steps`` 15-minute steps from now."""

    def __call__(self, steps: int) -> Signals:
        """Price and carbon signals for the next ``steps`` 15-minute steps."""
        ...


@dataclass
class Context:
    """What a policy may use: the model, the twin, the estimated state and the controller's own state.

    ``injections(dr_level, ev_factor, steps_ahead)`` gives estimated injections (MW, table order),
    optionally forecast ``steps_ahead`` steps into the future.
    """

    grid: Grid
    twin: Twin
    limits: GuardLimits
    obs: Observation
    history: deque[Observation]
    load_est_mw: np.ndarray
    gen_est_mw: np.ndarray
    dr_share: float | np.ndarray  # share of each load's demand DR level 1 sheds (or per load)
    dr_level: float
    dr_requests: dict[str, float]
    ev_factor: float
    storage_cmd_mw: np.ndarray
    known_faults: set[int]
    section_buses: set[int]
    pre_fault_closed: np.ndarray  # switch states before the latest trip
    normal_closed: np.ndarray
    forecast_ratio: ForecastRatio  # steps ahead -> (k, n_load) multipliers of the estimate
    shared: dict[str, Any] = field(default_factory=dict)
    tripped: set[int] = field(default_factory=set)  # switch ids protection reported tripped
    locked_open: list[int] = field(default_factory=list)  # bounds of isolated sections (ids)
    ev_est_mw: np.ndarray | None = None  # EV charging, last seen where now de-energised
    flex_est_mw: np.ndarray | None = None  # flexible loads, likewise
    v_est_pu: np.ndarray | None = None  # latest state estimate per bus (pu, NaN: none)
    ev_dr_share: float = EV_DR_SHARE  # share of EV-station charging DR level 1 defers
    flexdr: FlexDR | None = None  # the field's device registry under demand response, if any
    forecast_injections: ForecastInjections | None = None  # forecast injections (k, n) per key
    flex_signals: FlexSignals | None = None  # price/CO2 signals from now (15-min steps)

    def estimated_violation(self, margin_pu: float = 0.0) -> bool:
        """True when the latest state estimate has a bus within ``margin_pu`` of (or beyond) the
        voltage band; False without an estimate."""
        if self.v_est_pu is None:
            return False
        v = self.v_est_pu[np.isfinite(self.v_est_pu)]
        lim = self.limits
        return bool(
            v.size and (v.min() < lim.v_min_pu + margin_pu or v.max() > lim.v_max_pu - margin_pu)
        )

    def injections(
        self,
        dr_level: float | None = None,
        ev_factor: float | None = None,
        load_mult: np.ndarray | None = None,
        load_cut: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Estimated injections after DR/EV control; ``load_mult`` scales loads per load
        (forecast); ``load_cut`` the share of each load DR sheds (default ``level x dr_share``,
        e.g. zero outside the buses a targeted event sheds at)."""
        g = self.grid
        lvl = self.dr_level if dr_level is None else dr_level
        evf = self.ev_factor if ev_factor is None else ev_factor
        p = self.load_est_mw * (1.0 if load_mult is None else load_mult)
        base_p = np.where(g.load["p_mw"] > 0, g.load["p_mw"], 1.0)
        pf = g.load["q_mvar"] / base_p
        cut = 1.0 - (lvl * self.dr_share if load_cut is None else np.asarray(load_cut))
        out: dict[str, np.ndarray] = {"load_p_mw": p * cut, "load_q_mvar": p * pf * cut}
        if len(g.generator):
            out["gen_p_mw"] = self.gen_est_mw.copy()
        if len(g.storage):
            out["storage_p_mw"] = self.storage_deliverable(self.storage_cmd_mw)
        if len(g.ev_charger):
            evs = self.ev_dr_share
            now = max(self.ev_factor * (1.0 - evs * self.dr_level), 1e-6)
            ev = (self.obs.ev_p_mw if self.ev_est_mw is None else self.ev_est_mw) / now
            out["ev_p_mw"] = ev * evf * (1.0 - evs * lvl)
        if len(g.flex_load):
            fl = (
                (self.obs.flex_p_mw if self.flex_est_mw is None else self.flex_est_mw)
                / max(1.0 - self.dr_level, 1e-6)
                if self.dr_level < 1
                else g.flex_load["p_mw"] * 0.5
            )
            out["flex_p_mw"] = fl * (1.0 - lvl)
        return out

    def storage_deliverable(self, p_mw: np.ndarray, hold_h: float = 0.5) -> np.ndarray:
        """Battery set points (MW) the batteries can hold for ``hold_h`` hours from their present
        state of charge; a discharge they cannot sustain counts as zero."""
        g = self.grid
        e_mwh = self.obs.storage_soc * g.storage["e_mwh"]
        room_mwh = (1.0 - self.obs.storage_soc) * g.storage["e_mwh"]
        p = np.asarray(p_mw, np.float64)
        ok = np.where(p < 0, e_mwh >= -p * hold_h, room_mwh >= p * hold_h)
        return np.where(ok, p, 0.0)


@runtime_checkable
class Policy(Protocol):
    """A decision maker: ``decide(ctx)`` returns plans (possibly none)."""

    name: str

    def decide(self, ctx: Context) -> list[Plan]:
        """Plans for the present step."""
        ...


def batch_eval(
    twin: Twin, inj_rows: list[dict[str, np.ndarray]], closed_rows: list[np.ndarray]
) -> dict[str, np.ndarray]:
    """Simulate many (injections, switch states) scenarios in one twin batch.

    Returns per-scenario arrays ``vmin_pu``, ``vmax_pu``, ``max_loading_pct``, ``losses_kw``,
    ``converged`` and ``energised_buses``.
    """
    n = len(closed_rows)
    keys = inj_rows[0].keys()
    # injections by field (load_p_mw, gen_p_mw, ...): the keys the rows carry
    stacked = {k: np.stack([r[k] for r in inj_rows]) for k in keys}
    inj = Injections.from_mapping(stacked, switch_closed=np.stack(closed_rows))
    ts = twin.timeseries(n, injections=inj, outputs=("v_pu",))
    assert ts.v_pu is not None
    en = ts.v_pu > 0.05
    return {
        "vmin_pu": ts.vmin_pu,
        "vmax_pu": ts.vmax_pu,
        "max_loading_pct": ts.max_loading_pct,
        "losses_kw": ts.losses_kw,
        "converged": ts.converged,
        "energised_buses": en.sum(axis=1),
    }


def _ok(ev: dict[str, np.ndarray], lim: GuardLimits, margin: float) -> np.ndarray:
    """Per scenario of :func:`batch_eval`: converged and within ``lim`` less ``margin`` (pu)."""
    return (
        ev["converged"]
        & (ev["vmin_pu"] >= lim.v_min_pu + margin)
        & (ev["vmax_pu"] <= lim.v_max_pu - margin)
        & (ev["max_loading_pct"] <= lim.loading_max_pct)
    )


__all__ = [
    "Context",
    "FlexSignals",
    "ForecastInjections",
    "ForecastRatio",
    "Policy",
    "batch_eval",
]
