"""One window of the scheduler: the LP over the fleet's per-bus aggregates, built in named steps.

:func:`solve_window` takes one :class:`WindowInput` and builds the LP the way an optimisation
model is usually assembled, step by step on one model object (:class:`_WindowLP`):

1. :meth:`~_WindowLP.add_device_variables`: battery, EV, water heater, curtailment, net power, peak;
2. :meth:`~_WindowLP.add_storage_dynamics`: battery, EV and water-heater energy balances;
3. :meth:`~_WindowLP.add_net_power`: the net device power per bus;
4. :meth:`~_WindowLP.add_reactive_power`: the inverters' Q and their rating polygon;
5. :meth:`~_WindowLP.add_voltage_band`, :meth:`~_WindowLP.add_branch_ratings`,
   :meth:`~_WindowLP.add_transformer_rating`: the linearised network, rows with penalised slacks;
6. :meth:`~_WindowLP.add_peak`: the peak-charge row;
7. :meth:`~_WindowLP.solve`: HiGHS (warm-started where it can), targets and the slack report.

The order of the steps is the order of the LP's columns and rows; keep it (a warm basis and the
solver's path depend on it).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridpilot.errors import InfeasibleError
from gridpilot.flex.aggregate import BusAggregate
from gridpilot.flex.network import NetworkModel
from gridpilot.flex.plan_config import PlanConfig
from gridpilot.flex.signals import Signals
from gridpilot.lp import LP

log = logging.getLogger(__name__)

__all__ = ["PlanConfig", "WindowInput", "WindowPlan", "plan_window", "solve_window"]

# one term of a network row: (coefficients (n_rows, nf) dense or sparse, the variable's columns
# (T, nf), its lower and upper bounds (T, nf))
RowTerm = tuple[Any, np.ndarray, np.ndarray, np.ndarray]


@dataclass
class WindowPlan:
    """One window's per-bus class powers (steps, n_bus) MW and its stats (times incl. its twin-corrected re-solves)."""

    targets: dict[str, np.ndarray]
    objective_eur: float
    solve_s: float
    build_s: float
    n_vars: int
    n_rows: int
    slack: dict[str, float]
    worst: str
    pn_mw: np.ndarray | None = None
    corrections: int = 0
    q_mvar: np.ndarray | None = None
    structure: dict[str, np.ndarray] = field(default_factory=dict)
    basis: Any = None
    warm_solves: int = 0


@dataclass
class WindowInput:
    """Everything one window's LP needs (arrays with the devices at zero; units in the names).

    ``v0`` (T, n_bus) base voltages pu, ``p0_mw`` (T,) base feeder import, ``flow0``/``qflow0``
    (T, n_edge) base tree-edge flows MW/Mvar. ``v_sens``, ``ptdf`` and ``v_sens_q`` override the
    network's per-bus matrices when ``agg`` is per bus group; ``warm`` is the previous solve of
    the same window (see :func:`solve_window`).
    """

    agg: BusAggregate
    net: NetworkModel
    v0: np.ndarray
    p0_mw: np.ndarray
    flow0: np.ndarray
    qflow0: np.ndarray
    sig: Signals
    cfg: PlanConfig
    v_sens: np.ndarray | None = None
    ptdf: Any = None
    v_sens_q: np.ndarray | None = None
    warm: WindowPlan | None = None


@dataclass
class _SoftRows:
    """A group of network rows lo <= sum_k coef_k @ var_k[t] <= hi with penalised slacks."""

    group: str
    terms: list[RowTerm]
    lo: np.ndarray
    hi: np.ndarray
    labels: list[str]
    penalty: float
    margin: float


def _check_feasible(agg: BusAggregate) -> None:
    """Refuse windows whose device requests cannot be met at all, naming the constraint."""
    gap = agg.ev_c_lo_mwh - agg.ev_c_hi_mwh
    if np.any(gap > 1e-9):
        k, j = np.unravel_index(int(np.argmax(gap)), gap.shape)
        raise InfeasibleError(
            f"EV energy at bus {int(agg.bus_id[j])}: departures need {agg.ev_c_lo_mwh[k, j]:.4f} "
            f"MWh by step {agg.t0 + k} but at most {agg.ev_c_hi_mwh[k, j]:.4f} MWh can be charged",
            binding=f"ev departure energy (bus {int(agg.bus_id[j])}, step {agg.t0 + k})",
        )
    dt = agg.step_h
    need = np.cumsum(agg.wh_draw_mw, axis=0) * dt - agg.wh_e0_mwh
    can = np.arange(1, agg.steps + 1)[:, None] * dt * agg.wh_p_max_mw
    gap = need - can
    if np.any(gap > 1e-6):
        k, j = np.unravel_index(int(np.argmax(gap)), gap.shape)
        raise InfeasibleError(
            f"water heaters at bus {int(agg.bus_id[j])}: draws exceed what the heaters can "
            f"reheat by step {agg.t0 + k} ({gap[k, j]:.4f} MWh short)",
            binding=f"water heater comfort band (bus {int(agg.bus_id[j])}, step {agg.t0 + k})",
        )


def _row_entries(
    dense: np.ndarray, var: np.ndarray, tt: np.ndarray, ii: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local rows, columns and values of ``dense`` row ``ii[k]`` at ``var[tt[k], :]``, per kept (t, i)."""
    nzr, nzc = np.nonzero(dense)
    order = np.argsort(nzr, kind="stable")
    nzr, nzc = nzr[order], nzc[order]
    start = np.searchsorted(nzr, np.arange(dense.shape[0]))
    cnt = np.bincount(nzr, minlength=dense.shape[0])
    rep = cnt[ii]
    rows = np.repeat(np.arange(tt.size), rep)
    offs = np.arange(rep.sum()) - np.repeat(np.cumsum(rep) - rep, rep)
    kk = start[ii].repeat(rep) + offs
    return rows, var[tt.repeat(rep), nzc[kk]], dense[nzr[kk], nzc[kk]]


class _WindowLP:
    """The window's LP under construction: the model, its variables and the rows' bookkeeping."""

    def __init__(self, inp: WindowInput) -> None:
        self.inp, self.agg, self.cfg = inp, inp.agg, inp.cfg
        net = inp.net
        self.v_sens = net.v_sens if inp.v_sens is None else inp.v_sens
        self.v_sens_q = net.v_sens_q if inp.v_sens_q is None else inp.v_sens_q
        self.ptdf = net.ptdf if inp.ptdf is None else inp.ptdf
        self.T, self.nf = self.agg.steps, self.agg.bus_id.size
        self.dt = self.agg.step_h
        self.lp = LP()
        self.var: dict[str, np.ndarray] = {}
        self.slack_groups: dict[str, tuple[np.ndarray, np.ndarray, list[str]]] = {}
        self.prev_struct = inp.warm.structure if inp.warm is not None else {}
        self.structure: dict[str, np.ndarray] = {}
        self.use_q = False
        self.q_terms: list[RowTerm] = []
        self.qa_hi = self.qi_hi = np.zeros((self.T, self.nf))
        # de-energised buses (v0 = 0) are not constrained
        live = inp.v0 > 0.5
        self.vlo = np.where(live, self.cfg.vmin_pu + self.cfg.band_margin_pu - inp.v0, -np.inf)
        self.vhi = np.where(live, self.cfg.vmax_pu - self.cfg.band_margin_pu - inp.v0, np.inf)
        # bounds of net power for pruning rows that can never bind
        agg = self.agg
        self.pn_hi = agg.bat_p_max_mw + agg.ev_p_hi_mw + agg.wh_p_max_mw + agg.pv_avail_mw
        self.pn_lo = -agg.bat_p_max_mw + agg.ev_p_lo_mw

    def mask(self, key: str, m: np.ndarray) -> np.ndarray:
        """``m`` or, on a warm re-solve, its union with the previous solve's mask (same shape)."""
        old = self.prev_struct.get(key)
        out = m | old if old is not None and old.shape == m.shape else m
        self.structure[key] = out
        return out

    def add_device_variables(self) -> None:
        """Battery charge/discharge/energy, EV charge/V2G/energy, water heaters, curtailment, pn, peak."""
        agg, cfg, sig, dt = self.agg, self.cfg, self.inp.sig, self.dt
        tn = (self.T, self.nf)
        lp, v = self.lp, self.var
        energy_cost = dt * (sig.price_eur_per_mwh + cfg.co2_eur_per_t * sig.co2_t_per_mwh)  # (T,)
        ec = np.broadcast_to(energy_cost[:, None], tn)
        wear = dt * cfg.battery_wear_eur_per_mwh
        v["bc"] = lp.var("bc", tn, 0.0, np.broadcast_to(agg.bat_p_max_mw, tn), ec + wear / 2)
        v["bd"] = lp.var("bd", tn, 0.0, np.broadcast_to(agg.bat_p_max_mw, tn), -ec + wear / 2)
        e_lo = np.broadcast_to(agg.bat_e_min_mwh, tn).copy()
        e_lo[-1] = np.minimum(np.maximum(agg.bat_e0_mwh, agg.bat_e_min_mwh), agg.bat_e_max_mwh)
        v["eb"] = lp.var("eb", tn, e_lo, np.broadcast_to(agg.bat_e_max_mwh, tn))
        v["pc"] = lp.var("pc", tn, 0.0, agg.ev_p_hi_mw, ec)
        v2g_cost = -ec + dt * (cfg.v2g_fee_eur_per_mwh + cfg.battery_wear_eur_per_mwh)
        v["pd"] = lp.var("pd", tn, 0.0, -agg.ev_p_lo_mw, v2g_cost)
        v["x"] = lp.var("x", tn, agg.ev_c_lo_mwh[1:], agg.ev_c_hi_mwh[1:])
        v["pw"] = lp.var("pw", tn, 0.0, np.broadcast_to(agg.wh_p_max_mw, tn), ec)
        w_lo = np.zeros(tn)
        w_lo[-1] = np.minimum(agg.wh_e0_mwh, 0.5 * agg.wh_e_max_mwh)
        v["w"] = lp.var("w", tn, w_lo, np.broadcast_to(agg.wh_e_max_mwh, tn))
        v["cu"] = lp.var("cu", tn, 0.0, agg.pv_avail_mw, ec + dt * cfg.curtail_eur_per_mwh)
        v["pn"] = lp.var("pn", tn, -np.inf, np.inf)
        v["peak"] = lp.var("peak", (1,), -np.inf, np.inf, cfg.peak_eur_per_mw)

    def _dynamics(
        self, group: str, state: str, flows: list[tuple[str, float | np.ndarray]], rhs: np.ndarray
    ) -> None:
        """Rows state[k] - state[k-1] - sum(coef * flow[k]) = rhs (the first step against rhs alone)."""
        T, nf = self.T, self.nf
        r = np.arange(T * nf)
        ones = np.ones(T * nf)
        prev = r - nf
        has_prev = prev >= 0
        col = self.var[state].ravel()
        rr = [r, r[has_prev]]
        cc = [col, col[prev[has_prev]]]
        vv = [ones, -ones[has_prev]]
        for name, coef in flows:
            rr.append(r)
            cc.append(self.var[name].ravel())
            vv.append(np.broadcast_to(coef, (T, nf)).ravel())
        self.lp.rows_add(
            group,
            T * nf,
            np.concatenate(rr),
            np.concatenate(cc),
            np.concatenate(vv),
            rhs.ravel(),
            rhs.ravel(),
        )

    def add_storage_dynamics(self) -> None:
        """Energy balances of the batteries (with efficiency), the EVs and the water heaters."""
        agg, dt, eta = self.agg, self.dt, self.agg.bat_eta
        rhs_b = np.zeros((self.T, self.nf))
        rhs_b[0] = agg.bat_e0_mwh
        self._dynamics("battery energy balance", "eb", [("bc", -dt * eta), ("bd", dt / eta)], rhs_b)
        self._dynamics(
            "ev energy balance", "x", [("pc", -dt), ("pd", dt)], np.zeros((self.T, self.nf))
        )
        rhs_w = -dt * agg.wh_draw_mw
        rhs_w[0] += agg.wh_e0_mwh
        self._dynamics("water heater energy balance", "w", [("pw", -dt)], rhs_w)

    def add_net_power(self) -> None:
        """pn = battery + EV + water heater - curtailment per bus and step (MW, + consumption)."""
        n = self.T * self.nf
        ones = np.ones(n)
        v = self.var
        cols = [v[k].ravel() for k in ("pn", "bc", "bd", "pc", "pd", "pw", "cu")]
        self.lp.rows_add(
            "net power",
            n,
            np.tile(np.arange(n), 7),
            np.concatenate(cols),
            np.concatenate([ones, -ones, ones, -ones, ones, -ones, -ones]),
            0.0,
            0.0,
        )

    def add_reactive_power(self) -> None:
        """The inverters' Q (qa absorbed, qi injected, Mvar >= 0) where a voltage row can bind, and their rating polygon.

        Q only acts on the voltage rows, step by step (no energy): absorbing is offered at steps
        where an upper voltage row can bind whatever the active power does, injecting where a
        lower one can; elsewhere Q = 0 (it would only cost). This keeps the LP small.
        """
        agg, cfg = self.agg, self.cfg
        self.use_q = bool(
            cfg.q_support
            and self.v_sens_q is not None
            and agg.pv_s_mva is not None
            and np.any(agg.pv_s_mva > 0)
        )
        if not self.use_q:
            return
        assert agg.pv_s_mva is not None and self.v_sens_q is not None
        vp, vn = np.clip(self.v_sens, 0, None), np.clip(self.v_sens, None, 0)
        over = ((self.pn_hi @ vp.T + self.pn_lo @ vn.T) > self.vhi - cfg.margin_pu).any(axis=1)
        under = ((self.pn_lo @ vp.T + self.pn_hi @ vn.T) < self.vlo + cfg.margin_pu).any(axis=1)
        qcap = cfg.q_max_frac * agg.pv_s_mva
        qcost = self.dt * cfg.q_eur_per_mvarh
        self.qa_hi = np.where(over[:, None], qcap[None, :], 0.0)
        self.qi_hi = np.where(under[:, None], qcap[None, :], 0.0)
        # rows of the rating polygon for the union of offered steps (warm re-solves); where Q is
        # not offered now its bound is 0 and such a row cannot bind (cu >= 0, p_out <= S)
        qa_hs = np.where(self.mask("q_over", over)[:, None], qcap[None, :], 0.0)
        qi_hs = np.where(self.mask("q_under", under)[:, None], qcap[None, :], 0.0)
        tn = (self.T, self.nf)
        self.var["qa"] = self.lp.var("qa", tn, 0.0, self.qa_hi, qcost)
        self.var["qi"] = self.lp.var("qi", tn, 0.0, self.qi_hi, qcost)
        self.q_terms = [
            (self.v_sens_q, self.var["qa"], np.zeros(tn), self.qa_hi),
            (-self.v_sens_q, self.var["qi"], np.zeros(tn), self.qi_hi),
        ]
        self._add_inverter_polygon(qa_hs, qi_hs)

    def _add_inverter_polygon(self, qa_hs: np.ndarray, qi_hs: np.ndarray) -> None:
        """Apparent power: the inscribed polygon of the rating circle, cos(th) P + sin(th) Q <= S cos(pi/N).

        P = output - curtailment; only the sides facing P >= 0 that can bind get rows.
        """
        agg, v = self.agg, self.var
        assert agg.pv_s_mva is not None and agg.pv_out_mw is not None
        s_inv = agg.pv_s_mva
        n_side = self.cfg.q_polygon_sides
        th = 2 * np.pi * (np.arange(n_side) + 0.5) / n_side
        th = th[(np.cos(th) > 1e-9) & (np.abs(np.sin(th)) > 1e-9)]
        p_out = np.minimum(agg.pv_out_mw, s_inv)
        s_in = s_inv * np.cos(np.pi / n_side)
        for n_a, a_ in enumerate(th.tolist()):
            ca, sa = float(np.cos(a_)), float(np.sin(a_))
            can = (ca * p_out + abs(sa) * (qi_hs if sa > 0 else qa_hs) > s_in + 1e-9) & (s_inv > 0)
            can = self.mask(f"inverter rating {n_a}", can)
            tt, jj = np.nonzero(can)
            if tt.size == 0:
                continue
            k = np.arange(tt.size)
            self.lp.rows_add(
                "inverter rating",
                tt.size,
                np.concatenate([k, k, k]),
                np.concatenate([v["cu"][tt, jj], v["qi"][tt, jj], v["qa"][tt, jj]]),
                np.concatenate(
                    [np.full(tt.size, -ca), np.full(tt.size, sa), np.full(tt.size, -sa)]
                ),
                -np.inf,
                s_in[jj] - ca * p_out[tt, jj],
            )

    def _soft_rows(self, spec: _SoftRows) -> None:
        """Rows lo <= sum_k coef_k @ var_k[t] <= hi with penalised slacks, for each (t, row) that can bind."""
        dens = [
            (c.toarray() if hasattr(c, "toarray") else np.asarray(c), v, vl, vh)
            for c, v, vl, vh in spec.terms
        ]
        d_hi: np.ndarray = sum(  # type: ignore[assignment]  # sum of (T, n_rows) arrays
            vh @ np.clip(d, 0, None).T + vl @ np.clip(d, None, 0).T for d, _, vl, vh in dens
        )
        d_lo: np.ndarray = sum(  # type: ignore[assignment]  # sum of (T, n_rows) arrays
            vl @ np.clip(d, 0, None).T + vh @ np.clip(d, None, 0).T for d, _, vl, vh in dens
        )
        keep = self.mask(
            "rows " + spec.group, (d_hi > spec.hi - spec.margin) | (d_lo < spec.lo + spec.margin)
        )
        tt, ii = np.nonzero(keep)
        if tt.size == 0:
            return
        nr = tt.size
        slo = self.lp.var(spec.group + ":lo", (nr,), 0.0, np.inf, spec.penalty)
        shi = self.lp.var(spec.group + ":hi", (nr,), 0.0, np.inf, spec.penalty)
        rr, cc, vv = [np.arange(nr), np.arange(nr)], [slo, shi], [np.ones(nr), -np.ones(nr)]
        for dense, var, _, _ in dens:
            r_, c_, v_ = _row_entries(dense, var, tt, ii)
            rr.append(r_)
            cc.append(c_)
            vv.append(v_)
        self.lp.rows_add(
            spec.group,
            nr,
            np.concatenate(rr),
            np.concatenate(cc),
            np.concatenate(vv),
            spec.lo[tt, ii],
            spec.hi[tt, ii],
        )
        t0 = self.agg.t0
        self.slack_groups[spec.group] = (
            slo,
            shi,
            [
                f"{spec.labels[i]} at step {t0 + t}"
                for t, i in zip(tt.tolist(), ii.tolist(), strict=True)
            ],
        )

    def _p_term(self, coef: Any) -> RowTerm:
        """The net device power's term of a network row with coefficients ``coef``."""
        tn = (self.T, self.nf)
        pn_b = (np.broadcast_to(self.pn_lo, tn), np.broadcast_to(self.pn_hi, tn))
        return (coef, self.var["pn"], *pn_b)

    def add_voltage_band(self) -> None:
        """Bus voltages within the band (less its margin) through dV/dP and dV/dQ, slack penalised per pu."""
        cfg = self.cfg
        bus_lbl = [f"bus {int(b)}" for b in self.inp.net.grid.bus.ids]
        terms = [self._p_term(self.v_sens), *self.q_terms]
        self._soft_rows(
            _SoftRows(
                "voltage band",
                terms,
                self.vlo,
                self.vhi,
                bus_lbl,
                cfg.slack_v_eur_per_pu,
                cfg.margin_pu,
            )
        )

    def add_branch_ratings(self) -> None:
        """Rated branches' active flow within what their rating leaves beside the reactive flow."""
        net, inp = self.inp.net, self.inp
        s_max = net.edge_s_max_mva * self.cfg.line_limit_pct / 100.0
        rated = np.isfinite(s_max)
        if not rated.any():
            return
        ri = np.flatnonzero(rated)
        # reactive flow: the base case's plus, conservatively, all the inverter Q offered at that
        # step below the branch (at steps where Q is not offered, nothing is added)
        q_off = np.maximum(self.qa_hi, self.qi_hi)
        qf = np.abs(inp.qflow0[:, rated]) + np.asarray(np.abs(self.ptdf[ri]) @ q_off.T).T
        pmax = np.sqrt(np.clip(s_max[None, rated] ** 2 - qf**2, 0, None))
        self._soft_rows(
            _SoftRows(
                "branch rating",
                [self._p_term(self.ptdf[ri])],
                -pmax - inp.flow0[:, rated],
                pmax - inp.flow0[:, rated],
                [net.edge_name[i] for i in ri],
                self.cfg.slack_mw_eur_per_mw,
                0.0,
            )
        )

    def add_transformer_rating(self) -> None:
        """The feeder's import within the transformers' rating (MW, both directions)."""
        net, p0 = self.inp.net, self.inp.p0_mw
        if not np.isfinite(net.trafo_s_max_mva):
            return
        smax = net.trafo_s_max_mva * self.cfg.trafo_limit_pct / 100.0
        self._soft_rows(
            _SoftRows(
                "transformer rating",
                [self._p_term(np.ones((1, self.nf)))],
                (-smax - p0)[:, None],
                (smax - p0)[:, None],
                ["transformers"],
                self.cfg.slack_mw_eur_per_mw,
                0.0,
            )
        )

    def add_peak(self) -> None:
        """peak >= p0 + sum_j pn (the peak charge's variable bounds every step's import)."""
        T, nf = self.T, self.nf
        self.lp.rows_add(
            "peak",
            T,
            np.concatenate([np.arange(T), np.repeat(np.arange(T), nf)]),
            np.concatenate([np.full(T, self.var["peak"][0]), self.var["pn"].ravel()]),
            np.concatenate([np.ones(T), -np.ones(T * nf)]),
            self.inp.p0_mw,
            np.inf,
        )

    def _worst_slack(self, xs: np.ndarray) -> tuple[dict[str, float], str]:
        """Largest slack per row group, and the worst row named (empty when none is used)."""
        slack: dict[str, float] = {}
        worst, worst_v = "", 0.0
        for g, (slo, shi, labels) in self.slack_groups.items():
            s = xs[slo] + xs[shi]
            slack[g] = float(s.max()) if s.size else 0.0
            if s.size and s.max() > max(worst_v, 1e-6):
                k = int(np.argmax(s))
                worst, worst_v = f"{g}: {labels[k]} (by {s[k]:.4g})", float(s[k])
        return slack, worst

    def solve(self, t_build: float) -> WindowPlan:
        """Solve with HiGHS (from the warm plan's basis where given) and read the targets (MW, Mvar)."""
        lp, warm = self.lp, self.inp.warm
        h = lp.to_highs(basis=warm.basis if warm is not None else None)
        warm_solves = int(h.getOptions().solver == "simplex" and warm is not None)
        build_s = time.perf_counter() - t_build
        t0 = time.perf_counter()
        xs, obj = lp.solve(h=h)
        solve_s = time.perf_counter() - t0
        targets = {
            "battery": lp.value(xs, "bc") - lp.value(xs, "bd"),
            "ev": lp.value(xs, "pc") - lp.value(xs, "pd"),
            "water_heater": lp.value(xs, "pw"),
            "pv_curtail": lp.value(xs, "cu"),
        }
        slack, worst = self._worst_slack(xs)
        if self.cfg.strict and worst:
            raise InfeasibleError(
                f"schedule: the flexibility cannot keep the network within limits; worst: {worst}",
                binding=worst,
            )
        if worst:
            log.debug("window at step %d needs a network slack: %s", self.agg.t0, worst)
        q = lp.value(xs, "qi") - lp.value(xs, "qa") if self.use_q else np.zeros((self.T, self.nf))
        basis = h.getBasis()
        return WindowPlan(
            targets,
            obj,
            solve_s,
            build_s,
            lp.n,
            lp.m,
            slack,
            worst,
            lp.value(xs, "pn"),
            q_mvar=q,
            structure=self.structure,
            basis=basis if basis.valid else None,
            warm_solves=warm_solves,
        )


def solve_window(inp: WindowInput) -> WindowPlan:
    """Solve one window's LP for ``inp.agg``; returns the per-bus class targets (T, nf) MW.

    Raises :class:`InfeasibleError` (``binding`` named) when the device limits cannot be met, or
    in ``strict`` mode when a network limit would need a slack.

    With ``cfg.q_support`` the inverters' reactive power is a decision too (``q_mvar`` of the
    result, generator convention): within ``q_max_frac`` x rating and an inscribed
    ``q_polygon_sides``-gon of the rating circle with the active power, acting on the voltage
    rows through dV/dQ, at ``q_eur_per_mvarh`` (losses) so it is used only where it helps.

    ``warm``: the previous solve of the same window (a twin-corrected re-solve changes only the
    base voltages, i.e. row bounds). Its row and Q masks are kept (the union with this solve's:
    extra rows that cannot bind and Q columns bounded at 0 leave the optimum unchanged), so the
    LP has the same columns and rows and the simplex starts from its optimal basis.
    """
    t_build = time.perf_counter()
    _check_feasible(inp.agg)
    m = _WindowLP(inp)
    m.add_device_variables()
    m.add_storage_dynamics()
    m.add_net_power()
    m.add_reactive_power()
    m.add_voltage_band()
    m.add_branch_ratings()
    m.add_transformer_rating()
    m.add_peak()
    return m.solve(t_build)


def plan_window(  # noqa: PLR0913
    agg: BusAggregate,
    net: NetworkModel,
    v0: np.ndarray,
    p0_mw: np.ndarray,
    flow0: np.ndarray,
    qflow0: np.ndarray,
    sig: Signals,
    cfg: PlanConfig,
    v_sens: np.ndarray | None = None,
    ptdf: Any = None,
    v_sens_q: np.ndarray | None = None,
    warm: WindowPlan | None = None,
) -> WindowPlan:
    """:func:`solve_window` with the fields of :class:`WindowInput` as arguments (the older call).

    Returns the window's :class:`WindowPlan`; see :func:`solve_window`.
    """
    return solve_window(
        WindowInput(agg, net, v0, p0_mw, flow0, qflow0, sig, cfg, v_sens, ptdf, v_sens_q, warm)
    )
