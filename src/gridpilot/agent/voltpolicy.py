"""Volt/var and congestion by look-ahead (:class:`VoltagePolicy`), and the switching helpers
it uses (:func:`loop_switches`, :func:`k_i`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gridpilot.agent.actions import Action, Plan
from gridpilot.agent.context import Context, _ok, batch_eval
from gridpilot.model import ElementType, Grid
from gridpilot.twin import Injections, supply_tree


@dataclass(frozen=True)
class _Lookahead:
    """One look-ahead of :class:`VoltagePolicy`: the context, the forecast multipliers of the
    worst step (per load), the other policies' and this policy's DR levels, the present switch
    states and whether there are batteries."""

    ctx: Context
    mult: np.ndarray
    other_dr: float
    my_dr: float
    closed: np.ndarray
    stor: bool


@dataclass(frozen=True)
class _Search:
    """The batch of candidate fixes: its results, within-limits flags, the best row, that row's
    DR level and configuration index, and the number of candidates simulated."""

    ev: dict[str, np.ndarray]
    ok: np.ndarray
    best: int
    dr_level: float
    config: int
    candidates: int


class VoltagePolicy:
    """Volt/var and congestion by look-ahead: forecast, simulate, fix predicted violations cheaply.

    Every ``every_steps`` steps it forecasts ``horizon_steps`` ahead and simulates the present
    configuration at the worst step. On a predicted violation it simulates, in one batch, tie
    swaps (close a tie, open a switch on the loop it forms) x DR levels, with batteries
    discharging, and picks: no violation first, then the lowest DR level, fewest switching
    operations, lowest losses. Without a predicted violation it releases DR when it can.
    """

    name = "voltvar"

    def __init__(
        self,
        every_steps: int = 5,
        horizon_steps: int = 30,
        margin_pu: float = 0.008,
        dr_levels: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0),
    ) -> None:
        self.every_steps = every_steps
        self.horizon_steps = horizon_steps
        self.margin_pu = margin_pu
        self.dr_levels = dr_levels

    def _worst_step_mult(self, ctx: Context) -> np.ndarray:
        ahead = np.arange(0, self.horizon_steps + 1, max(self.horizon_steps // 6, 1))
        mult = ctx.forecast_ratio(ahead)  # (k, n_load)
        tot = (mult * ctx.load_est_mw).sum(axis=1)
        return mult[int(np.argmax(tot))]

    def decide(self, ctx: Context) -> list[Plan]:
        """A volt/var plan, or none."""
        obs, g = ctx.obs, ctx.grid
        # look ahead every ``every_steps`` steps, and at once when the state estimate shows a
        # bus outside the band (not merely within the margin: near the band for hours in a
        # heatwave, that would run the look-ahead every step)
        if (
            (obs.t % self.every_steps and not ctx.estimated_violation())
            or not obs.energised.any()
            or (obs.fpi.any() and not obs.energised.all())
        ):
            return []
        own = self.name
        la = _Lookahead(
            ctx=ctx,
            mult=self._worst_step_mult(ctx),
            other_dr=max([v for k, v in ctx.dr_requests.items() if k != own], default=0.0),
            my_dr=ctx.dr_requests.get(own, 0.0),
            closed=obs.switch_closed,
            stor=len(g.storage) > 0,
        )
        # first: the present configuration at the present DR level
        base_inj = ctx.injections(dr_level=max(la.other_dr, la.my_dr), load_mult=la.mult)
        ev0 = batch_eval(ctx.twin, [base_inj], [la.closed])
        if bool(_ok(ev0, ctx.limits, self.margin_pu)[0]):
            return self._release(la)
        return self._fix(la, ev0)

    def _configs(self, ctx: Context, closed: np.ndarray) -> list[tuple[np.ndarray, list[Action]]]:
        """The present switch states and every tie swap (close a remote tie, open a switch on
        the loop it forms; isolation bounds and non-switchable ones left alone), with the
        actions that make each."""
        g = ctx.grid
        bnd = self._boundary(ctx)
        blocked = set(g.switch.index_of(bnd).tolist()) if bnd else set()
        configs: list[tuple[np.ndarray, list[Action]]] = [(closed.copy(), [])]
        ties = [int(k) for k in np.flatnonzero(~closed & g.switch["remote"]) if k not in blocked]
        tree = supply_tree(g, closed) if ties else None
        for t in ties:
            for s in loop_switches(g, closed, t, tree):
                if s in blocked or g.switch["kind"][s] == 0:
                    continue
                c = closed.copy()
                c[t], c[s] = True, False
                configs.append(
                    (
                        c,
                        [
                            Action("switch", int(g.switch.ids[s]), 0.0),
                            Action("switch", int(g.switch.ids[t]), 1.0),
                        ],
                    )
                )
        return configs

    def _release(self, la: _Lookahead) -> list[Plan]:
        """The forecast is within limits: release this policy's DR (the lowest level that keeps
        it so, with a wider margin) and its batteries, or nothing."""
        ctx, own = la.ctx, self.name
        g = ctx.grid
        # batteries discharging at another policy's set point (the flexibility schedule's)
        # are not this policy's to release
        mine = la.stor and ctx.shared.get("storage_by", own) == own
        if la.my_dr <= 0 and not (mine and np.any(ctx.storage_cmd_mw < 0)):
            return []
        # try releasing: lower DR level, batteries idle
        lower = [lv for lv in self.dr_levels if lv < la.my_dr] or [0.0]
        rows = [ctx.injections(dr_level=max(la.other_dr, lv), load_mult=la.mult) for lv in lower]
        for r in rows:
            if "storage_p_mw" in r:
                r["storage_p_mw"] = np.zeros(len(g.storage))
        ev = batch_eval(ctx.twin, rows, [la.closed] * len(rows))
        ok = _ok(ev, ctx.limits, self.margin_pu + 0.004)
        if not ok.any():
            return []
        lv = lower[int(np.flatnonzero(ok)[0])]
        acts = [Action("dr", None, lv)] + [Action("storage", int(i), 0.0) for i in g.storage.ids]
        return [
            Plan(
                acts,
                f"forecast within limits without it: release demand response to {lv:.2f}",
                own,
                {"forecast_worst_vmin_pu": round(float(ev["vmin_pu"][0]), 4), "dr_level": lv},
            )
        ]

    def _search(self, la: _Lookahead, configs: list[tuple[np.ndarray, list[Action]]]) -> _Search:
        """Every configuration x DR level (not below this policy's own) with the batteries
        discharging, in one batch; the best: within limits, lowest level, fewest switching
        operations, lowest losses (else the highest lowest voltage)."""
        ctx, g = la.ctx, la.ctx.grid
        rows_i, rows_c, meta = [], [], []
        for lv in self.dr_levels:
            if lv < la.my_dr:
                continue
            inj = ctx.injections(dr_level=max(la.other_dr, lv), load_mult=la.mult)
            if la.stor:
                inj["storage_p_mw"] = ctx.storage_deliverable(-g.storage["p_max_mw"])
            for ci, (c, _acts) in enumerate(configs):
                rows_i.append(inj)
                rows_c.append(c)
                meta.append((lv, ci))
        ev = batch_eval(ctx.twin, rows_i, rows_c)
        ok = _ok(ev, ctx.limits, self.margin_pu)
        if ok.any():
            cand = np.flatnonzero(ok)
            key = [(meta[i][0], len(configs[meta[i][1]][1]), ev["losses_kw"][i]) for i in cand]
            best = int(cand[min(range(len(cand)), key=lambda j: key[j])])
        else:
            best = int(np.nanargmax(np.where(ev["converged"], ev["vmin_pu"], -np.inf)))
        return _Search(ev, ok, best, meta[best][0], meta[best][1], len(rows_c))

    def _fix(self, la: _Lookahead, ev0: dict[str, np.ndarray]) -> list[Plan]:
        """A violation is forecast: the cheapest fix found by :meth:`_search` as a plan (DR at
        given buses where that suffices), or none when nothing would change."""
        ctx, own = la.ctx, self.name
        g = ctx.grid
        configs = self._configs(ctx, la.closed)
        found = self._search(la, configs)
        ev, ok, best, lv = found.ev, found.ok, found.best, found.dr_level
        acts = list(configs[found.config][1])
        dr_buses: list[int] | None = None
        if ok.any() and lv > 0 and lv != la.my_dr and np.ndim(ctx.dr_share):
            # DR by devices per bus (FlexDR): at the buses behind an undervoltage when that
            # suffices, the fewest buses first
            tg = self._targeted(ctx, la.mult, la.other_dr, configs[found.config][0], la.stor)
            if tg is not None:
                lv, dr_buses = tg
        if lv != la.my_dr or dr_buses:
            acts.append(Action("dr", None, lv))
        if la.stor:
            sp = ctx.storage_deliverable(-g.storage["p_max_mw"])
            acts += [
                Action("storage", int(i), float(v))
                for i, v in zip(g.storage.ids, sp, strict=True)
                if v != ctx.storage_cmd_mw[k_i(g, i)]
            ]
        if not acts:
            return []
        reason = (
            f"forecast lowest voltage {ev0['vmin_pu'][0]:.3f} pu / loading {ev0['max_loading_pct'][0]:.0f} % "
            f"in the next {self.horizon_steps} steps; fix: "
            + ", ".join(a.describe() for a in acts)
            + f" -> {ev['vmin_pu'][best]:.3f} pu, {ev['max_loading_pct'][best]:.0f} %"
            + ("" if ok.any() else " (best available, still outside limits)")
            + (f"; demand response at buses {dr_buses} only" if dr_buses else "")
        )
        data: dict[str, Any] = {
            "forecast_worst_vmin_pu": round(float(ev0["vmin_pu"][0]), 4),
            "after_vmin_pu": round(float(ev["vmin_pu"][best]), 4),
            "candidates": found.candidates,
            "dr_level": lv,
        }
        if dr_buses:
            data["dr_buses"] = dr_buses
        return [Plan(acts, reason, own, data)]

    def _targeted(  # noqa: C901, PLR0915
        self,
        ctx: Context,
        mult: np.ndarray,
        other_dr: float,
        closed: np.ndarray,
        stor: bool,
    ) -> tuple[float, list[int]] | None:
        """DR at the buses behind the lowest voltage: (level, bus ids) of the smallest subtree
        of the supply tree containing that bus (going up from it) whose devices alone keep the
        forecast within limits at the lowest level; None when the problem is no undervoltage or
        no such subtree short of the whole feeder suffices (then DR is feeder-wide)."""
        g, lim = ctx.grid, ctx.limits
        share = np.asarray(ctx.dr_share, np.float64)
        n_load = len(g.load)

        def inj_for(lv: float, mask: np.ndarray) -> dict[str, np.ndarray]:
            cut = np.maximum(other_dr * share, lv * share * mask)
            inj = ctx.injections(dr_level=max(other_dr, lv), load_mult=mult, load_cut=cut)
            if stor:
                inj["storage_p_mw"] = ctx.storage_deliverable(-g.storage["p_max_mw"])
            return inj

        base = inj_for(0.0, np.zeros(n_load))
        one = Injections.from_mapping(
            {k: v[None] for k, v in base.items()}, switch_closed=closed[None]
        )
        ts = ctx.twin.timeseries(1, injections=one, outputs=("v_pu",))
        v = np.asarray(ts.v_pu, np.float64)[0]
        on = v > 0.05
        if not on.any():
            return None
        b = int(np.argmin(np.where(on, v, np.inf)))
        if v[b] >= lim.v_min_pu + self.margin_pu:
            return None  # not an undervoltage (a loading problem): feeder-wide
        tree = supply_tree(g, closed)
        par = tree.parent
        anc: list[int] = []
        x = b
        while x >= 0 and par[x] >= 0:
            anc.append(x)
            x = int(par[x])
        n = len(g.bus)
        pos = np.full(n, -1, np.int64)
        pos[anc] = np.arange(len(anc))
        member = np.zeros((len(anc), n), bool)
        cur = np.arange(n)
        live = tree.supplied.copy()
        while live.any():
            hit = live & (pos[np.clip(cur, 0, None)] >= 0)
            member[pos[cur[hit]], np.flatnonzero(hit)] = True
            cur = np.where(live, par[np.clip(cur, 0, None)], -1)
            live = cur >= 0
        lb = g.bus.position_map(g.load["bus"])
        cands: list[np.ndarray] = []
        seen: set[bytes] = set()
        for i in range(len(anc)):
            m = member[i][lb] & (share > 0)
            if not m.any() or m.sum() == (share > 0).sum():
                continue
            if m.tobytes() in seen:
                continue
            seen.add(m.tobytes())
            cands.append(m)
        levels = [lv for lv in self.dr_levels if lv > 0]
        if not cands or not levels:
            return None
        rows = [inj_for(lv, m.astype(np.float64)) for m in cands for lv in levels]
        evb = batch_eval(ctx.twin, rows, [closed] * len(rows))
        okb = _ok(evb, lim, self.margin_pu).reshape(len(cands), len(levels))
        for i, m in enumerate(cands):  # nested, smallest first
            if okb[i].any():
                lv = levels[int(np.flatnonzero(okb[i])[0])]
                buses = sorted({int(x) for x in g.load["bus"][m]})
                return lv, buses
        return None

    @staticmethod
    def _boundary(ctx: Context) -> list[int]:
        return [int(x) for x in ctx.shared.get("boundary_switches", [])]


def loop_switches(grid: Grid, closed: np.ndarray, tie: int, tree: Any = None) -> list[int]:
    """Positions of closed line switches on the loop that closing switch position ``tie`` forms.

    Empty when the tie is not a line switch, one of its ends is unsupplied, or its ends hang
    from different sources (closing it would parallel two sources: no loop to open within one
    supply tree, and the guard refuses a network that is not radial). ``tree``: the
    :func:`~gridpilot.twin.supply_tree` of ``closed`` when the caller has it already.
    """
    sw, ln = grid.switch, grid.line
    if sw["et"][tie] != ElementType.LINE:
        return []
    p = int(ln.index_of(sw["element"][tie])[0])
    pm = grid.bus.position_map
    a, b = int(pm(ln["from_bus"][p : p + 1])[0]), int(pm(ln["to_bus"][p : p + 1])[0])
    tree = supply_tree(grid, closed) if tree is None else tree
    if not (tree.supplied[a] and tree.supplied[b]):
        return []

    def path(x: int) -> list[int]:
        out = [x]
        while tree.parent[x] >= 0:
            x = int(tree.parent[x])
            out.append(x)
        return out

    pa, pb = path(a), path(b)
    common = set(pa) & set(pb)
    if not common:  # two sources' trees
        return []
    loop_nodes = [x for x in pa if x not in common] + [x for x in pb if x not in common]
    loop_nodes += [next(x for x in pa if x in common)]
    on_loop = np.zeros(len(grid.bus), bool)
    on_loop[loop_nodes] = True
    ks = np.flatnonzero((sw["et"] == ElementType.LINE) & closed)
    q = ln.index_of(sw["element"][ks])
    f, t = pm(ln["from_bus"][q]), pm(ln["to_bus"][q])
    par = tree.parent
    hit = (q != p) & on_loop[f] & on_loop[t] & ((par[f] == t) | (par[t] == f))
    return [int(k) for k in ks[hit]]


def k_i(grid: Grid, storage_id: int) -> int:
    """Table position of a battery."""
    return int(grid.storage.index_of(int(storage_id))[0])


__all__ = ["VoltagePolicy", "k_i", "loop_switches"]
