"""FLISR: fault location, isolation and service restoration, decided in milliseconds.

:class:`FlisrEngine` precomputes per grid the sections (zones bounded by switches), a radial
power-flow solver and the pre-fault state; :meth:`FlisrEngine.respond` turns the control
room's :class:`~gridpilot.control.location.Indications` into an ordered switching plan:

1. **locate** the faulted section(s) (:func:`~gridpilot.control.location.locate`);
2. **isolate**: open every closed switch bounding them; a bound that is not remote-controllable
   widens the isolated zone across it (said in ``notes``);
3. **restore**: reclose the tripped breaker when it is not a bound (the upstream part), then
   for each de-energised healthy island pick a radial way to feed it through normally-open
   ties: one tie, two ties with a cut between them, then branch exchanges (close a switch,
   open one on the loop it makes); every candidate of a round is checked at once by the
   batched radial AC power flow (:mod:`gridpilot.control.radialpf`) on the affected feeders,
   holding voltages in band and branches within rating. If nothing feasible restores an island
   whole, the sections of least priority-weighted load are shed, greedily, until it is;
4. optionally **verify** the final state by a full power flow in the twin.

The plan opens before it closes, never closes a switch that bounds an isolated section, and
closes each island through exactly one tie per part, so two sources are never paralleled and
the network stays radial.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridpilot.control.flisr_graph import (
    adjacency,
    close_order,
    components,
    csr,
    dead_islands,
    exchanges,
    forest_path,
    pick_best,
    reach_batch,
    unique_rows,
    warm_kernels,
)
from gridpilot.control.location import Indications, Location, indications_for_fault, locate
from gridpilot.control.radialpf import (
    S_BASE_MVA,
    RadialRegion,
    RadialSolver,
)
from gridpilot.control.sections import Sections, SectionState, subtree_mask
from gridpilot.control.upstream import Upstream
from gridpilot.control.verdict import TwinVerdict, twin_verdict
from gridpilot.errors import InfeasibleError, ValidationError
from gridpilot.model import ElementType, Grid, SwitchKind

TWIN_VERIFY_MAX_BUSES = 200  # "auto" verification in the twin up to this grid size
SWAP_STEPS = 1  # add-back steps that also try swaps (re-close one shed part, cut another)
EXCHANGE_STARTS = 1  # branch-exchange rounds start from the least-violating configuration only
# candidate sweeps stop at this voltage change (pu): 100x below the 1e-5 pu calibration margin
SWEEP_TOL_PU = 1e-7
# margin (%) on the estimated loading of the transformers feeding a region's roots
ROOT_TRAFO_MARGIN_PCT = 0.5


@dataclass(frozen=True)
class Limits:
    """Operating limits a restoration plan must hold.

    ``v_min_pu``/``v_max_pu``: voltage band (set an emergency band here); ``max_loading_pct``:
    branch loading limit. With ``relax_to_prefault`` the band is widened to what the grid
    already had before the fault (a feeder that ran at 0.91 pu is not asked for 0.95).
    """

    v_min_pu: float = 0.95
    v_max_pu: float = 1.05
    max_loading_pct: float = 100.0
    relax_to_prefault: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.v_min_pu < self.v_max_pu:
            raise ValidationError(
                f"limits: need 0 < v_min_pu < v_max_pu, got {self.v_min_pu}, {self.v_max_pu}"
            )
        if self.max_loading_pct <= 0:
            raise ValidationError(
                f"limits: max_loading_pct must be positive, got {self.max_loading_pct}"
            )


@dataclass
class SwitchAction:
    """One step of a switching plan: switch id, ``close`` (True) or open, and why."""

    switch: int
    close: bool
    reason: str  # isolate | reclose | sectionalise | restore

    def as_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "switch": self.switch,
            "action": "close" if self.close else "open",
            "reason": self.reason,
        }


@dataclass
class FlisrResult:
    """A FLISR decision: where the fault is, what to switch, and what it achieves.

    Switch, line and load lists hold ids. Powers in kW: ``interrupted_kw`` lost supply at the
    trip, ``isolated_kw`` of it lies inside the isolated sections, ``restorable_kw`` is the
    rest that a closable path could reach, ``restored_kw`` what the plan brings back,
    ``shed_kw`` restorable load deliberately left off, ``unserved_kw`` everything interrupted
    and not restored. ``vmin_pu_after``/``max_loading_pct_after`` describe the grid after the
    plan (``verified_by`` says by which power flow: ``"twin"``, ``"radial-sweep"`` or ``"none"``).
    ``verified`` is False when the twin's check of the final state fails the plan's own
    ``limits_used`` even after planning again (``notes`` say why); such a plan must not be
    executed unattended (the CLI exits with status 3). ``decision_ms`` is wall time from
    indications to verified plan; ``decision_cpu_ms`` the CPU time of the deciding thread over
    the same span (on a busy machine the difference is time spent waiting for a core).
    """

    location: Location
    located_lines: list[int]
    isolated_sections: list[int]
    isolate: list[int]
    restore: list[int]
    open_for_restore: list[int]
    plan: list[SwitchAction]
    shed_loads: list[int]
    interrupted_kw: float
    isolated_kw: float
    restorable_kw: float
    restored_kw: float
    shed_kw: float
    unserved_kw: float
    vmin_pu_after: float
    max_loading_pct_after: float
    limits_used: dict[str, float]
    verified_by: str
    decision_ms: float
    switch_closed_after: np.ndarray
    locked_open: list[int]
    notes: list[str] = field(default_factory=list)
    decision_cpu_ms: float = float("nan")
    verified: bool = True

    @property
    def restored_share(self) -> float:
        """Restored share of restorable load (1.0 when nothing was restorable)."""
        return self.restored_kw / self.restorable_kw if self.restorable_kw > 1e-9 else 1.0

    def summary(self) -> dict[str, Any]:
        """The headline fields as plain JSON-able values."""
        return {
            "located": self.located_lines,
            "located_sections": self.isolated_sections,
            "candidates": [
                {
                    "section": c.section,
                    "lines": c.line_ids,
                    "confidence": c.confidence,
                    "cost": c.cost,
                }
                for c in self.location.candidates[:5]
            ],
            "isolate": self.isolate,
            "restore": self.restore,
            "open_for_restore": self.open_for_restore,
            "plan": [a.as_dict() for a in self.plan],
            "shed": self.shed_loads,
            "interrupted_kw": round(self.interrupted_kw, 3),
            "isolated_kw": round(self.isolated_kw, 3),
            "restorable_kw": round(self.restorable_kw, 3),
            "restored_kw": round(self.restored_kw, 3),
            "shed_kw": round(self.shed_kw, 3),
            "unserved_kw": round(self.unserved_kw, 3),
            "restored_share": round(self.restored_share, 6),
            "vmin_pu_after": round(self.vmin_pu_after, 6),
            "max_loading_pct_after": round(self.max_loading_pct_after, 3),
            "limits": self.limits_used,
            "verified": self.verified,
            "verified_by": self.verified_by,
            "decision_ms": round(self.decision_ms, 3),
            "decision_cpu_ms": round(self.decision_cpu_ms, 3),
            "notes": self.notes,
        }


@dataclass
class _Prefault:
    st: SectionState
    v_pu: np.ndarray
    vmin_pu: float
    vmax_pu: float
    max_loading_pct: float
    trafo_loading_pct: np.ndarray
    margin_v_pu: float = 0.0
    margin_loading_pct: float = 0.0
    v_complex: np.ndarray | None = None  # pre-fault bus voltages, complex pu (0 when dead)
    closed: np.ndarray | None = None  # the pre-fault switch states
    upstream: Upstream | None = None  # linear model of the grid seen from a feeder head
    source_of: np.ndarray | None = None  # per section: the source section feeding it (-1 none)


@dataclass
class _Region:
    buses: np.ndarray
    branches: np.ndarray
    roots: np.ndarray
    v_root: np.ndarray
    pair_sw: np.ndarray  # switch positions on region branches
    pair_br: np.ndarray  # local branch index of each
    bus_sections: np.ndarray
    root_trafo: list[np.ndarray]  # transformer positions feeding each root (LV side)
    root_trafo_pct: np.ndarray  # their loading (%) in the state before restoring the region
    model: RadialRegion  # the region compiled for the radial sweep
    in_service: np.ndarray  # region branches in service


@dataclass
class _Case:
    """What a restoration search works from (fixed over re-planning)."""

    interrupted: np.ndarray
    iso: np.ndarray
    locked: np.ndarray
    pre: _Prefault
    limits: tuple[float, float, float]


@dataclass
class _Restoration:
    """Switch states after restoring, the switches opened/closed, shed sections, and the
    sweep's minimum voltage / maximum loading of each restored region."""

    work: np.ndarray
    opens: list[int]
    closes: list[int]
    shed: list[int]
    vmin: list[float]
    load: list[float]


class FlisrEngine:
    """FLISR for one grid: sections, solver and pre-fault state computed once.

    ``limits``: the :class:`Limits` a plan must hold; ``verify``: ``"twin"`` (replay the final
    state in the twin's full power flow), ``"radial"`` (trust the radial sweep) or ``"auto"``
    (twin for grids up to :data:`TWIN_VERIFY_MAX_BUSES` buses). ``budget_ms``: after this
    much search time, exchange rounds stop and shedding takes the least-violation cut each step
    (a plan is always returned; only its quality degrades).
    """

    def __init__(
        self,
        grid: Grid,
        limits: Limits | None = None,
        verify: str = "auto",
        max_rounds: int = 1,
        budget_ms: float = 50.0,
    ) -> None:
        if verify not in ("auto", "twin", "radial"):
            raise ValidationError(f"verify: choose 'auto', 'twin' or 'radial', got {verify!r}")
        self.grid = grid
        self.limits = limits or Limits()
        self.sections = Sections(grid)
        self.solver = RadialSolver(grid)
        self.verify = (
            verify
            if verify != "auto"
            else ("twin" if len(grid.bus) <= TWIN_VERIFY_MAX_BUSES else "radial")
        )
        self.max_rounds = max_rounds
        self.budget_ms = budget_ms
        self._deadline = float("inf")
        self._extra_margin = (0.0, 0.0)  # (pu, %) added after a failed twin check (re-plan)
        self._twin: Any = None
        self._island_memo: dict[bytes, tuple[np.ndarray, float, float]] = {}  # within one decision
        self._pgm: Any = None  # private copy of the twin's PGM model for final-state checks
        self._pgm_out: dict[Any, list[str]] = {}
        self._pre: dict[bytes, _Prefault] = {}
        sw = grid.switch
        nl, nt = len(grid.line), len(grid.transformer)
        # branch (solver numbering) of every switch
        et = sw["et"]
        br = np.full(len(sw), -1, np.int64)
        m = et == ElementType.LINE
        if m.any():
            br[m] = grid.line.position_map(sw["element"][m], "line")
        m = et == ElementType.TRANSFORMER
        if m.any():
            br[m] = nl + grid.transformer.position_map(sw["element"][m], "transformer")
        bpos = self.solver.bus_switch_pos
        br[bpos] = nl + nt + np.arange(bpos.size)
        self.switch_branch = br
        sec = self.sections
        self.branch_section = np.concatenate(
            [sec.of_line, sec.of_trafo, np.full(bpos.size, -1, np.int64)]
        )
        self.is_breaker = sw["kind"] == SwitchKind.BREAKER
        tr = grid.transformer
        self._trafo_lv = (
            grid.bus.position_map(tr["lv_bus"], "bus") if len(tr) else np.zeros(0, np.int64)
        )
        warm_kernels()
        self.prefault(sw["closed"].copy())

    # --- state --------------------------------------------------------------------------------------
    @property
    def twin(self) -> Any:
        """The grid's :class:`~gridpilot.twin.Twin` (built on first use)."""
        if self._twin is None:
            from gridpilot.twin import Twin

            self._twin = Twin(self.grid, validate=False, engine="pgm")
        return self._twin

    def _twin_check(self, closed: np.ndarray) -> tuple[bool, float, float, float]:
        """Full power flow of a switch state in the twin's power-grid-model: (converged, vmin_pu,
        vmax_pu over energised buses, max line/transformer loading in %).

        Runs on a private copy of the twin's compiled model, updated in place with every
        branch's status (so no state leaks between calls), asking only for the outputs read
        here: PGM's per-call cost on small grids is mostly building output buffers.
        """
        from power_grid_model import CalculationMethod, ComponentType
        from power_grid_model.errors import PowerGridError

        eng = self.twin.engine
        if self._pgm is None:
            self._pgm = eng.model.copy()
            ct = ComponentType
            self._pgm_out = {ct.node: ["u_pu", "energized"], ct.line: ["loading"]}
            if ct.transformer in eng.net.input:
                self._pgm_out[ct.transformer] = ["loading"]
        upd = eng.build_update(1, {}, closed)
        self._pgm.update(
            update_data={
                c: {k: np.ascontiguousarray(a[0]) for k, a in d.items()} for c, d in upd.items()
            }
        )
        try:
            out = self._pgm.calculate_power_flow(
                symmetric=True,
                error_tolerance=1e-8,
                max_iterations=30,
                calculation_method=CalculationMethod.newton_raphson,
                output_component_types=self._pgm_out,
            )
        except PowerGridError:
            return False, float("nan"), float("nan"), float("nan")
        node = out[ComponentType.node]
        v = node["u_pu"][node["energized"] > 0]
        load = [np.asarray(out[c]["loading"]) for c in self._pgm_out if c != ComponentType.node]
        both = np.concatenate(load) * 100 if load else np.zeros(0)
        return (
            True,
            float(v.min()) if v.size else float("nan"),
            float(v.max()) if v.size else float("nan"),
            float(both.max()) if both.size else 0.0,
        )

    def prefault(self, closed: np.ndarray) -> _Prefault:
        """Section tree and bus voltages of a switch state (cached per state)."""
        key = np.packbits(closed).tobytes()
        pre = self._pre.get(key)
        if pre is None:
            st = self.sections.state(closed)
            r = self.twin.powerflow(switch_closed=closed)
            v = np.where(r.energised, r.v_pu, 0.0) if r.converged else np.ones(len(self.grid.bus))
            vc = v * np.exp(1j * np.deg2rad(np.nan_to_num(r.va_deg))) if r.converged else None
            pre = _Prefault(
                st,
                v,
                float(r.vmin_pu) if r.converged else 1.0,
                float(r.vmax_pu) if r.converged else 1.0,
                float(r.max_loading_pct) if r.converged else 0.0,
                np.nan_to_num(r.trafo_loading_pct)
                if r.converged
                else np.zeros(len(self.grid.transformer)),
                v_complex=vc,
                closed=closed.copy(),
            )
            if r.converged and not st.looped:
                self._calibrate(pre, closed, r)
            if len(self._pre) > 64:
                self._pre.clear()
            self._pre[key] = pre
        return pre

    def _calibrate(self, pre: _Prefault, closed: np.ndarray, r: Any) -> None:
        """Margins that cover the radial sweep's difference from the twin in this state."""
        g = self.grid
        roots = g.bus.position_map(g.source["bus"][g.source["in_service"]])
        st = branch_status_all(self, closed)
        res = self.solver.solve(
            np.arange(len(g.bus)),
            np.arange(self.solver.branch_from.size),
            roots,
            g.source["vm_pu"][g.source["in_service"]],
            st[None, :],
        )
        on = r.energised & res.supplied[0]
        if on.any():
            pre.margin_v_pu = float(np.max(np.abs(res.v_pu[0][on] - r.v_pu[on]))) + 1e-5
        nl = len(g.line)
        twin_load = np.concatenate(
            [np.nan_to_num(r.line_loading_pct), np.nan_to_num(r.trafo_loading_pct)]
        )
        mine = res.loading_pct[0][: nl + len(g.transformer)]
        pre.margin_loading_pct = float(np.max(twin_load - mine, initial=0.0)) + 0.01

    def _limits(self, pre: _Prefault) -> tuple[float, float, float]:
        lim = self.limits
        if not lim.relax_to_prefault:
            return lim.v_min_pu, lim.v_max_pu, lim.max_loading_pct
        return (
            min(lim.v_min_pu, pre.vmin_pu - 1e-6),
            max(lim.v_max_pu, pre.vmax_pu + 1e-6),
            max(lim.max_loading_pct, pre.max_loading_pct + 1e-6),
        )

    # --- entry points -------------------------------------------------------------------------------
    def respond_to_faults(
        self,
        line_ids: int | Iterable[int],
        switch_closed: np.ndarray | None = None,
        locked_open: Iterable[int] = (),
        fpi_failures: dict[int, bool | None] | None = None,
    ) -> FlisrResult:
        """Simulate protection for faults on ``line_ids`` and respond (tests, CLI, benchmarks).

        The indications come from :func:`indications_for_fault`; the decision sees only them.
        An unknown line id is an UnknownComponentError; an energised faulted line that no
        switch can interrupt (a grid without switches, a fault in a source section) is an
        InfeasibleError.
        """
        closed = (
            self.grid.switch["closed"].copy()
            if switch_closed is None
            else np.asarray(switch_closed, bool)
        )
        ind = indications_for_fault(self.grid, line_ids, closed, fpi_failures, self.sections)
        if not ind.tripped:
            self._no_device(line_ids, closed)
        return self.respond(ind, switch_closed=closed, locked_open=locked_open)

    def _no_device(self, line_ids: int | Iterable[int], closed: np.ndarray) -> None:
        """Raise :class:`InfeasibleError` when an energised faulted line has no switch between
        it and its source that could interrupt it (nothing for FLISR to operate)."""
        ids = [line_ids] if isinstance(line_ids, (int, np.integer)) else list(line_ids)
        sec, g = self.sections, self.grid
        st = sec.state(closed)
        fsec = sec.of_line[g.line.index_of([int(x) for x in ids])]
        live = [int(x) for x, s in zip(ids, fsec, strict=True) if st.energised[s]]
        if not live:
            return  # a fault on a dead line trips nothing and needs no action
        hint = (
            f"grid {g.name!r} has no switches"
            + (
                " (a MATPOWER case gets them only when it marks ties as status-0 branches;"
                " see docs/flisr.md)"
                if g.meta.get("source") == "matpower"
                else ""
            )
            if not len(g.switch)
            else "its section holds a source: only the upstream grid can clear it"
        )
        raise InfeasibleError(
            f"flisr: no switch can interrupt a fault on line(s) {live}: {hint}", "switches"
        )

    def respond(
        self,
        ind: Indications,
        switch_closed: np.ndarray | None = None,
        locked_open: Iterable[int] = (),
    ) -> FlisrResult:
        """Locate, isolate and restore from indications; returns a :class:`FlisrResult`.

        ``switch_closed``: switch states before the trip (default the grid's); the breakers in
        ``ind.tripped`` are taken as open now. ``locked_open``: switch ids that must stay open
        (bounds of sections isolated earlier, e.g. a fault during an earlier restoration).
        """
        t0 = time.perf_counter()
        c0 = time.thread_time()
        self._deadline = t0 + self.budget_ms / 1e3
        self._island_memo.clear()
        g = self.grid
        sec = self.sections
        sw = g.switch
        pre_closed = (
            sw["closed"].copy() if switch_closed is None else np.asarray(switch_closed, bool).copy()
        )
        if pre_closed.shape != (len(sw),):
            raise ValidationError(
                f"switch_closed: expected {len(sw)} values, got {pre_closed.shape}"
            )
        trip_pos = sw.index_of(ind.tripped) if ind.tripped else np.zeros(0, np.int64)
        pre_closed[trip_pos] = True
        locked = np.zeros(len(sw), bool)
        lk = list(locked_open)
        if lk:
            locked[sw.index_of(lk)] = True
        pre = self.prefault(pre_closed)
        notes: list[str] = []
        loc = locate(g, ind, pre_closed, sec)
        notes += loc.notes
        tripped = np.asarray(loc.tripped, np.int64)
        now = pre_closed.copy()
        now[tripped] = False
        st_trip = sec.state(now)
        interrupted = pre.st.energised & ~st_trip.energised
        # --- isolation -------------------------------------------------------------------------------
        iso = np.zeros(sec.n, bool)
        iso[loc.sections] = True
        if np.any(iso & sec.source):
            notes.append("a located section holds a source: only the upstream grid can clear it")
        for _ in range(sec.n):
            b = sec.bounds(iso)
            manual = b[now[b] & ~sec.sw_remote[b]]
            if manual.size == 0:
                break
            for s in manual:
                other = sec.sw_b[s] if iso[sec.sw_a[s]] else sec.sw_a[s]
                iso[other] = True
                notes.append(
                    f"switch {int(sw.ids[s])} is manual: isolated zone widened to section {int(other)}"
                )
        bounds = sec.bounds(iso)
        to_open = bounds[now[bounds]]
        # remote first, breakers last among them (order of the plan)
        to_open = to_open[np.argsort(~sec.sw_remote[to_open], kind="stable")]
        work = now.copy()
        work[to_open] = False
        locked[bounds] = True
        plan = [SwitchAction(int(sw.ids[s]), False, "isolate") for s in to_open]
        # upstream: reclose tripped devices that do not bound an isolated section
        for t in tripped:
            if not locked[t]:
                work[t] = True
                plan.append(SwitchAction(int(sw.ids[t]), True, "reclose"))
        # --- restoration (planned again with wider margins if the twin check fails) --------------
        lims = self._limits(pre)
        vmin_l, vmax_l, load_l = lims
        case = _Case(interrupted, iso, locked, pre, lims)
        rest = self._restore_all(work, case)
        verdict: TwinVerdict | None = None
        if self.verify == "twin":
            rest, verdict, more = self._verified(work, rest, case)
            notes += more
        work = rest.work
        for s in rest.opens:
            plan.append(SwitchAction(int(sw.ids[s]), False, "sectionalise"))
        for s in rest.closes:
            plan.append(SwitchAction(int(sw.ids[s]), True, "restore"))
        restore_open, restore_close = rest.opens, rest.closes
        # --- accounting ------------------------------------------------------------------------------
        st_end = sec.state(work)
        if st_end.looped:
            notes.append("warning: final state has a loop")
        kw = sec.p_mw * 1e3
        restorable = self._restorable(interrupted, iso, locked, st_end)
        restored = interrupted & ~iso & st_end.energised
        shed_mask = restorable & ~st_end.energised
        shed_loads = sec.loads_of(np.flatnonzero(shed_mask))
        verified_by, verified = "radial-sweep", True
        vmin_after = min(rest.vmin) if rest.vmin else float(pre.vmin_pu)
        load_after = max(rest.load) if rest.load else float(pre.max_loading_pct)
        if verdict is not None:
            verified = verdict.within
            verified_by = "twin" if verified else "none"
            if verdict.converged:
                vmin_after, load_after = verdict.vmin_pu, verdict.max_loading_pct
        decision_ms = (time.perf_counter() - t0) * 1e3
        decision_cpu_ms = (time.thread_time() - c0) * 1e3
        located_lines = sorted({int(x) for s in loc.sections for x in g.line.ids[sec.lines_of(s)]})
        return FlisrResult(
            location=loc,
            located_lines=located_lines,
            isolated_sections=[int(s) for s in np.flatnonzero(iso)],
            isolate=[int(sw.ids[s]) for s in to_open],
            restore=[int(sw.ids[s]) for s in restore_close],
            open_for_restore=[int(sw.ids[s]) for s in restore_open],
            plan=plan,
            shed_loads=[int(x) for x in g.load.ids[shed_loads]],
            interrupted_kw=float(kw[interrupted].sum()),
            isolated_kw=float(kw[interrupted & iso].sum()),
            restorable_kw=float(kw[restorable].sum()),
            restored_kw=float(kw[restored].sum()),
            shed_kw=float(kw[shed_mask].sum()),
            unserved_kw=float(kw[interrupted & ~restored].sum()),
            vmin_pu_after=vmin_after,
            max_loading_pct_after=load_after,
            limits_used={
                "v_min_pu": round(vmin_l, 6),
                "v_max_pu": round(vmax_l, 6),
                "max_loading_pct": round(load_l, 3),
            },
            verified_by=verified_by,
            verified=verified,
            decision_ms=decision_ms,
            decision_cpu_ms=decision_cpu_ms,
            switch_closed_after=work,
            locked_open=[int(sw.ids[s]) for s in np.flatnonzero(locked)],
            notes=notes,
        )

    def _restore_all(self, work: np.ndarray, case: _Case) -> _Restoration:
        """Restore every dead healthy island from switch states ``work`` (after isolation)."""
        sec = self.sections
        out = _Restoration(work.copy(), [], [], [], [], [])
        for _pass in range(4):
            st_w = sec.state(out.work)
            dead = case.interrupted & ~case.iso & ~st_w.energised
            dead[out.shed] = False
            if not dead.any():
                break
            islands = dead_islands(sec, out.work, dead)
            progress = False
            for isl in sorted(islands, key=lambda a: -float(sec.weight[a].sum())):
                st_w = sec.state(out.work)
                res = self._restore_island(isl, out.work, case.locked, st_w, case.pre, case.limits)
                if res is None:
                    continue
                new_closed, opens, closes, shed, vmin_r, load_r = res
                if not closes:
                    continue
                progress = True
                out.work = new_closed
                out.opens += opens
                out.closes += closes
                out.shed += shed
                out.vmin.append(vmin_r)
                out.load.append(load_r)
            if not progress:
                break
        return out

    def _verified(
        self, work: np.ndarray, first: _Restoration, case: _Case
    ) -> tuple[_Restoration, TwinVerdict, list[str]]:
        """Check a restoration in the twin; if it fails the limits, plan again with the sweep's
        margins widened by the excess (twice at most), then fall back to isolation and
        reclosing alone if that holds. Returns the restoration kept, its verdict and notes."""
        verdict = twin_verdict(self._twin_check(first.work), case.limits)
        if verdict.within:
            return first, verdict, []
        notes: list[str] = []
        best, best_v = first, verdict
        extra_v, extra_l = 0.0, 0.0
        if first.closes:
            notes.append(f"twin check of the first plan: {verdict.reason}; planned again")
        for _ in range(2 if first.closes else 0):
            extra_v += verdict.v_excess_pu + 0.002
            extra_l += verdict.load_excess_pct + 1.0
            self._extra_margin = (extra_v, extra_l)
            self._island_memo.clear()
            try:
                again = self._restore_all(work, case)
            finally:
                self._extra_margin = (0.0, 0.0)
                self._island_memo.clear()
            verdict = twin_verdict(self._twin_check(again.work), case.limits)
            if verdict.within:
                notes.append(
                    f"twin check passed with margins widened by {extra_v:.4f} pu / {extra_l:.1f} %"
                )
                return again, verdict, notes
            if verdict.converged and verdict.excess < best_v.excess:
                best, best_v = again, verdict
        bare = _Restoration(work.copy(), [], [], [], [], [])
        bare_v = twin_verdict(self._twin_check(work), case.limits) if first.closes else best_v
        if bare_v.within:
            notes.append(
                "no restoration passed the twin check: the plan isolates and recloses only"
            )
            return bare, bare_v, notes
        notes.append(
            f"not verified: the twin check fails ({best_v.reason})"
            + (
                "; isolation and reclosing alone already fail it"
                if bare_v.converged and not bare_v.within
                else ""
            )
        )
        return best, best_v, notes

    def baseline(self, ind: Indications, switch_closed: np.ndarray | None = None) -> float:
        """Restored kW of the isolate-only baseline: open the bounds, reclose the breaker, no ties."""
        g, sec, sw = self.grid, self.sections, self.grid.switch
        closed = (
            sw["closed"].copy() if switch_closed is None else np.asarray(switch_closed, bool).copy()
        )
        trip = sw.index_of(ind.tripped) if ind.tripped else np.zeros(0, np.int64)
        closed[trip] = True
        pre = self.prefault(closed)
        loc = locate(g, ind, closed, sec)
        now = closed.copy()
        now[np.asarray(loc.tripped, np.int64)] = False
        interrupted = pre.st.energised & ~sec.state(now).energised
        iso = np.zeros(sec.n, bool)
        iso[loc.sections] = True
        b = sec.bounds(iso)
        now[b] = False
        for t in loc.tripped:
            if t not in set(b.tolist()):
                now[t] = True
        st = sec.state(now)
        return float(sec.p_mw[interrupted & ~iso & st.energised].sum() * 1e3)

    # --- internals ----------------------------------------------------------------------------------
    def _restorable(
        self, interrupted: np.ndarray, iso: np.ndarray, locked: np.ndarray, st_end: SectionState
    ) -> np.ndarray:
        """Interrupted healthy sections that some closable path joins to a live section."""
        sec = self.sections
        usable = (
            (~locked)
            & (sec.sw_remote | self.grid.switch["closed"])
            & ~iso[sec.sw_a]
            & ~iso[sec.sw_b]
        )
        lab = components(sec.n, sec.sw_a[usable], sec.sw_b[usable])
        live_lab = np.zeros(sec.n, bool)
        live_lab[lab[st_end.energised & ~iso]] = True
        return interrupted & ~iso & live_lab[lab]

    def _region(
        self, sections: np.ndarray, st: SectionState, pre: _Prefault, extra_sw: np.ndarray
    ) -> _Region:
        """Buses, branches and roots of the feeders holding ``sections`` (plus entry switches)."""
        sec = self.sections
        ins = np.zeros(sec.n, bool)
        ins[sections] = True
        ins &= ~sec.source
        # top sections: energised region sections whose parent is a source section
        par = st.parent
        tops = np.flatnonzero(ins & (par >= 0) & sec.source[np.maximum(par, 0)])
        root_sw = st.parent_switch[tops]
        # entries from a source section directly
        src_side = sec.source[sec.sw_a[extra_sw]] | sec.source[sec.sw_b[extra_sw]]
        link_sw = np.concatenate([root_sw, extra_sw[src_side]]).astype(np.int64)
        br_in = np.flatnonzero(ins[np.maximum(self.branch_section, 0)] & (self.branch_section >= 0))
        # bus-bus switches with both sides in the region
        bsw = self.solver.bus_switch_pos
        nl_nt = self.solver.n_line + self.solver.n_trafo
        both = ins[sec.sw_a[bsw]] & ins[sec.sw_b[bsw]] if bsw.size else np.zeros(0, bool)
        link_br = self.switch_branch[link_sw]
        branches = np.unique(np.concatenate([br_in, nl_nt + np.flatnonzero(both), link_br]))
        bus_in = ins[sec.of_bus]
        lf, lt = self.solver.branch_from[link_br], self.solver.branch_to[link_br]
        roots = np.unique(np.concatenate([lf[~bus_in[lf]], lt[~bus_in[lt]]]))
        keep = bus_in.copy()
        keep[roots] = True
        buses = np.flatnonzero(keep)
        branches = branches[
            keep[self.solver.branch_from[branches]] & keep[self.solver.branch_to[branches]]
        ]
        # switches on region branches
        sw_br = self.switch_branch
        in_reg = np.zeros(
            self.solver.branch_from.size + 1, bool
        )  # last slot: switches without a branch
        in_reg[branches] = True
        pair_sw = np.flatnonzero(in_reg[sw_br])
        pair_br = np.searchsorted(branches, sw_br[pair_sw])
        v_root = pre.v_pu[roots]
        v_root = np.where(v_root > 0.5, v_root, 1.0)
        lv = self._trafo_lv
        root_trafo = [
            np.flatnonzero((lv == r) & self.grid.transformer["in_service"]) for r in roots
        ]
        root_trafo_pct = self._root_trafo_pct(roots, root_trafo, st, pre)
        return _Region(
            buses,
            branches,
            roots,
            v_root,
            pair_sw,
            pair_br,
            sec.of_bus[buses],
            root_trafo,
            root_trafo_pct,
            self.solver.prepare(buses, branches, roots, v_root),
            self.solver.in_service[branches],
        )

    def _attach_upstream(
        self, region: _Region, work: np.ndarray, st: SectionState, pre: _Prefault
    ) -> None:
        """Feed the region's roots through the grid upstream of them (in place).

        Each root gets its Thevenin impedance, a virtual source at the open-circuit voltage and,
        as a constant-power load on the root, what it feeds outside the region; the sources are
        then trimmed so that, in the ``work`` state, each root sits at its present voltage (the
        pre-fault voltage raised by the load the trip removed). Without an upstream model the
        roots stay held at their pre-fault voltages.
        """
        up = self._upstream(pre)
        if up is None or not region.roots.size:
            return
        removed = (pre.v_pu > 0.5) & ~st.energised[self.sections.of_bus]
        v_now, z, v_open, s_tot = up.equivalent(region.roots, removed, self.solver)
        if not np.all(np.isfinite(v_now)) or np.any(v_now < 0.5):
            return
        cond = self._conducting(region, work[None, :])
        ideal = self.solver.prepare(region.buses, region.branches, region.roots, v_now)
        res = self.solver.run(ideal, cond, tol=SWEEP_TOL_PU, max_iter=40)
        if not res.converged[0]:
            return
        s_other = s_tot - res.root_s_mva[0] / S_BASE_MVA  # fed by the root outside the region
        model = self.solver.prepare(region.buses, region.branches, region.roots, v_open, z, s_other)
        real_root = model.bt[model.k_real :]
        for _ in range(8):  # trim the sources: the roots at their present voltage in ``work``
            res = self.solver.run(model, cond, tol=SWEEP_TOL_PU, max_iter=40)
            if not res.converged[0]:
                return
            err = v_now - res.v_pu[0][real_root]
            model.v_root = model.v_root + err
            if np.max(np.abs(err)) < 1e-8:
                break
        region.model = model
        region.v_root = v_now

    def _root_trafo_pct(
        self, roots: np.ndarray, trafos: list[np.ndarray], st: SectionState, pre: _Prefault
    ) -> np.ndarray:
        """Loading (%) of the transformers feeding each root in the present state: the
        pre-fault loading less the load the trip removed from their source section (the
        apparent power of the de-energised loads that section fed before the fault)."""
        sec, sv = self.sections, self.solver
        out = np.zeros(roots.size)
        if not any(t.size for t in trafos):
            return out
        if pre.source_of is None:
            src = np.full(sec.n, -1, np.int64)
            for s_ in pre.st.order.tolist():
                p_ = int(pre.st.parent[s_])
                src[s_] = s_ if sec.source[s_] or p_ < 0 else src[p_]
            pre.source_of = src
        va = pre.v_pu
        s_bus = (sv.s_p + sv.s_i * va + sv.s_z * va**2) * (va > 0.5)
        removed = (va > 0.5) & ~st.energised[sec.of_bus]
        src_bus = pre.source_of[sec.of_bus]
        sn = self.grid.transformer["sn_mva"]
        for j, trs in enumerate(trafos):
            if not trs.size:
                continue
            lost = s_bus[removed & (src_bus == sec.of_bus[roots[j]])].sum() * S_BASE_MVA
            base = float(np.max(pre.trafo_loading_pct[trs]))
            out[j] = max(base - abs(lost) / float(sn[trs].sum()) * 100, 0.0)
        return out

    def _upstream(self, pre: _Prefault) -> Upstream | None:
        """The pre-fault state's linear model (built once per state); None if unavailable."""
        if pre.upstream is None and pre.v_complex is not None and pre.closed is not None:
            pre.upstream = Upstream(
                self.grid, self.solver, branch_status_all(self, pre.closed), pre.v_complex
            )
        return pre.upstream if pre.upstream is not None and pre.upstream.ok else None

    @staticmethod
    def _conducting(region: _Region, states: np.ndarray) -> np.ndarray:
        """(T, k) conducting flag of the region's branches in switch states ``states``."""
        t_n = states.shape[0]
        blocked = np.zeros((t_n, region.branches.size), bool)
        opened = ~states[:, region.pair_sw]
        if opened.any():
            tt, pp = np.nonzero(opened)
            blocked[tt, region.pair_br[pp]] = True
        return ~blocked & region.in_service[None, :]

    def _evaluate(
        self,
        region: _Region,
        states: np.ndarray,
        limits: tuple[float, float, float],
        pre: _Prefault,
        base: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Violation (0 = feasible), vmin, max loading and radial flag of candidate states.

        Row 0 of the batch is ``base`` (the state before restoring this island): the change of
        power drawn at each root against it, added to the pre-fault loading of the transformers
        feeding that root, estimates their loading. Limits are tightened by the calibration
        margins of the radial sweep against the twin.
        """
        allst = np.concatenate([base[None, :], states])
        cond = self._conducting(region, allst)
        res = self.solver.run(
            region.model, cond, tol=SWEEP_TOL_PU, max_iter=20, warm_from_first=True
        )
        vmin_l, vmax_l, load_l = limits
        vmin_l += pre.margin_v_pu + self._extra_margin[0]
        vmax_l -= pre.margin_v_pu + self._extra_margin[0]
        vmin = np.where(np.isfinite(res.vmin_pu), res.vmin_pu, 1.0)[1:]
        vmax = np.where(np.isfinite(res.vmax_pu), res.vmax_pu, 1.0)[1:]
        load = res.max_loading_pct[1:].copy()
        # the sweep's loadings carry its calibration margin; the estimate of the transformers
        # feeding the roots (from the change of power drawn through the upstream model) its own
        over = load + pre.margin_loading_pct
        if len(self.grid.transformer):
            ds = np.abs(res.root_s_mva[1:]) - np.abs(res.root_s_mva[0])[None, :]
            sn = self.grid.transformer["sn_mva"]
            for j, trs in enumerate(region.root_trafo):
                if trs.size:
                    est = region.root_trafo_pct[j] + ds[:, j] / float(sn[trs].sum()) * 100
                    load = np.maximum(load, est)
                    over = np.maximum(over, est + ROOT_TRAFO_MARGIN_PCT)
        viol = (
            np.maximum(0, vmin_l - vmin)
            + np.maximum(0, vmax - vmax_l)
            + np.maximum(0, over + self._extra_margin[1] - load_l) / 100
        )
        ok = res.radial[1:] & res.converged[1:]
        viol = np.where(ok, viol, np.inf)
        return viol, vmin, load, res.radial[1:]

    def _restore_island(
        self,
        isl: np.ndarray,
        work: np.ndarray,
        locked: np.ndarray,
        st: SectionState,
        pre: _Prefault,
        limits: tuple[float, float, float],
    ) -> tuple[np.ndarray, list[int], list[int], list[int], float, float] | None:
        """Best radial way to feed one dead island; None when it has no usable tie."""
        sec = self.sections
        inisl = np.zeros(sec.n, bool)
        inisl[isl] = True
        a, b = sec.sw_a, sec.sw_b
        usable = sec.sw_remote & ~locked
        live = st.energised
        entry = np.flatnonzero(~work & usable & ((inisl[a] & live[b]) | (inisl[b] & live[a])))
        if entry.size == 0:
            return None
        # region: island + the live feeders behind every entry (load may move between them)
        live_side = np.where(inisl[a[entry]], b[entry], a[entry])
        feeders = self._feeder_sections(st, live_side)
        feeders = feeders[~inisl[feeders]]
        region = self._region(np.concatenate([isl, feeders]), st, pre, entry)
        self._attach_upstream(region, work, st, pre)
        # local graph: island sections 0..ki-1, feeder sections ki..k-1, LIVE (sources) = k
        ki = isl.size
        loc_secs = np.concatenate([isl, feeders]).astype(np.int64)
        k = loc_secs.size
        lid = np.full(sec.n, -1, np.int64)
        lid[loc_secs] = np.arange(k)
        lid[sec.source] = k
        both = (lid[a] >= 0) & (lid[b] >= 0) & (a != b) & ((lid[a] < k) | (lid[b] < k))
        tree_e = np.flatnonzero(both & work)
        opn = np.flatnonzero(both & ~work & usable)
        ent_mask = inisl[a[opn]] != inisl[b[opn]]
        e_sw = np.concatenate([tree_e, opn[~ent_mask], opn[ent_mask]])
        e_u = lid[a[e_sw]]
        e_v = lid[b[e_sw]]
        n_tree = tree_e.size
        n_first_entry = n_tree + int((~ent_mask).sum())
        cuttable = np.concatenate(
            [sec.sw_remote[tree_e] & ~locked[tree_e], np.ones(opn.size, bool)]
        )
        base_on = np.zeros(e_sw.size, bool)
        base_on[:n_tree] = True
        weight_local = np.concatenate([sec.weight[loc_secs], [0.0]])
        live_req = np.arange(ki, k)

        ptr, adj_e, adj_o = csr(k + 1, e_u, e_v)

        def served(cfgs: np.ndarray) -> np.ndarray:
            """(N, k+1) bool: local nodes joined to LIVE by the closed edges of each config."""
            return reach_batch(np.ascontiguousarray(cfgs), ptr, adj_e, adj_o, k)

        # the same island, region and switch states give the same search (several passes)
        key = b"|".join(
            x.tobytes() for x in (isl, loc_secs, e_sw, work[region.pair_sw], cuttable, region.roots)
        )
        hit = self._island_memo.get(key)
        if hit is not None:
            on, cur_vmin, cur_load = hit[0].copy(), hit[1], hit[2]
        else:
            w_isl = weight_local[:ki]

            def ev(
                cfgs: np.ndarray, srv: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
                states = np.repeat(work[None, :], cfgs.shape[0], axis=0)
                states[:, e_sw] = cfgs
                v_, vm_, ld_, _ = self._evaluate(region, states, limits, pre, work)
                keeps = srv[:, live_req].all(axis=1)
                return np.where(keeps, v_, np.inf), vm_, ld_, srv[:, :ki] @ w_isl

            # round 0: one tie, or two ties with a cut on the path between them
            cfg_list: list[np.ndarray] = []
            tree_adj = adjacency(k, e_u[:n_tree], e_v[:n_tree])
            ent_idx = np.arange(n_first_entry, e_sw.size)
            for i in ent_idx:
                on = base_on.copy()
                on[i] = True
                cfg_list.append(on)
            att = {int(i): int(e_u[i] if e_u[i] < ki else e_v[i]) for i in ent_idx}
            for x in range(ent_idx.size):
                for y in range(x + 1, ent_idx.size):
                    i, j = int(ent_idx[x]), int(ent_idx[y])
                    path = forest_path(tree_adj, att[i], att[j])
                    for e in path:
                        if not cuttable[e]:
                            continue
                        on = base_on.copy()
                        on[i] = on[j] = True
                        on[e] = False
                        cfg_list.append(on)
            configs = unique_rows(np.array(cfg_list, bool).reshape(-1, e_sw.size))
            viol, vmin, load, wsv = ev(configs, served(configs))
            best = pick_best(configs, viol, vmin, base_on, wsv)
            # branch exchange rounds from the least-violating configuration(s)
            rounds = 0
            while (
                viol[best] > 0 and rounds < self.max_rounds and time.perf_counter() < self._deadline
            ):
                rounds += 1
                starts = np.argsort(viol, kind="stable")[:EXCHANGE_STARTS]
                moves: list[np.ndarray] = []
                for s_i in starts:
                    if not np.isfinite(viol[s_i]):
                        continue
                    moves.append(exchanges(k, e_u, e_v, configs[int(s_i)], cuttable))
                mv_cfg = unique_rows(
                    np.concatenate(moves) if moves else np.zeros((0, e_sw.size), bool)
                )
                if not mv_cfg.shape[0]:
                    break
                mv, mvmin, mload, mw = ev(mv_cfg, served(mv_cfg))
                stalled = mv.min() >= viol.min() - 1e-12
                configs = np.concatenate([configs, mv_cfg])
                viol, vmin = np.concatenate([viol, mv]), np.concatenate([vmin, mvmin])
                load, wsv = np.concatenate([load, mload]), np.concatenate([wsv, mw])
                best = pick_best(configs, viol, vmin, base_on, wsv)
                if stalled:
                    break
            on = configs[best].copy()
            # shedding: open the cut with the best violation relief per weighted load lost, until
            # feasible; then add back, greedily, any shed part that fits
            cur_viol = float(viol[best])
            cur_vmin, cur_load = float(vmin[best]), float(load[best])
            cur_w = float(wsv[best])

            guard = 0
            shed_any = cur_viol > 0
            while cur_viol > 0 and guard < 2 * k + 4:
                guard += 1
                cut = np.flatnonzero(on & cuttable)
                cands = np.repeat(on[None, :], cut.size, axis=0)
                cands[np.arange(cut.size), cut] = False
                srv_c = served(cands)
                okc = srv_c[:, :ki].any(axis=1) & srv_c[:, live_req].all(axis=1)
                cands, srv_c, cut = cands[okc], srv_c[okc], cut[okc]
                if not cands.shape[0]:
                    on = base_on.copy()
                    cur_viol, cur_vmin, cur_load = 0.0, float("nan"), float("nan")
                    break
                cv, cvmin, cload, w = ev(cands, srv_c)
                feas = np.flatnonzero(cv <= 0)
                lost = np.maximum(cur_w - w, 1e-9)
                gain = np.where(np.isfinite(cv), (cur_viol - cv) / lost, -np.inf)
                pick = int(np.argmax(gain)) if np.max(gain) > 0 else int(np.argmin(cv))
                if (
                    time.perf_counter() > self._deadline
                ):  # out of budget: least violation, converge fast
                    pick = int(np.argmin(cv))
                if feas.size and w[feas].max() >= w[pick] - 1e-12:
                    pick = int(feas[np.argmax(w[feas])])
                on = cands[pick]
                cur_viol, cur_vmin, cur_load, cur_w = (
                    float(cv[pick]),
                    float(cvmin[pick]),
                    float(cload[pick]),
                    float(w[pick]),
                )
                if cur_viol > 0:
                    # one batch for the next steps: keep cutting in the order of this step's
                    # relief per weighted kW, and go straight to the first prefix that is feasible
                    # (or the least-violating one); the add-back below returns what was overdone
                    rank = np.argsort(-gain, kind="stable")
                    rank = rank[(gain[rank] > 0) & (rank != pick)]
                    steps: list[np.ndarray] = []
                    c = on
                    for r in rank.tolist():
                        if c[cut[r]]:
                            c = c.copy()
                            c[cut[r]] = False
                            steps.append(c)
                    if steps:
                        pc = np.array(steps)
                        srv_p = served(pc)
                        okp = srv_p[:, :ki].any(axis=1) & srv_p[:, live_req].all(axis=1)
                        pc, srv_p = pc[okp], srv_p[okp]
                    if steps and pc.shape[0]:
                        pv, pvmin, pload, pw = ev(pc, srv_p)
                        fp = np.flatnonzero(pv <= 0)
                        j = int(fp[0]) if fp.size else int(np.argmin(pv))
                        if pv[j] < cur_viol:
                            on = pc[j]
                            cur_viol, cur_vmin, cur_load, cur_w = (
                                float(pv[j]),
                                float(pvmin[j]),
                                float(pload[j]),
                                float(pw[j]),
                            )
            # add back, greedily, what fits: re-close one shed part, alone or while cutting
            # another part (a swap), keeping the most weighted load served; one batch per step
            for step in range(2 * k + 4 if shed_any else 0):
                if time.perf_counter() > self._deadline + self.budget_ms / 1e3:
                    break
                srv = served(on[None, :])[0]
                add = np.flatnonzero(~on & (srv[e_u] != srv[e_v]))
                if not add.size:
                    break
                cutc = np.flatnonzero(on & cuttable) if step < SWAP_STEPS else np.zeros(0, np.int64)
                na, nc = add.size, cutc.size
                adds = np.repeat(on[None, :], na * (nc + 1), axis=0)
                adds[np.arange(adds.shape[0]), np.repeat(add, nc + 1)] = True
                sw_rows = np.flatnonzero(np.tile(np.arange(nc + 1) < nc, na))
                adds[sw_rows, np.tile(cutc, na)] = False
                srv_a = served(adds)
                better = (srv_a[:, :ki] @ w_isl > cur_w + 1e-12) & srv_a[:, live_req].all(axis=1)
                adds, srv_a = adds[better], srv_a[better]
                if not adds.shape[0]:
                    break
                av, avmin, aload, w = ev(adds, srv_a)
                feas = np.flatnonzero(av <= 0)
                if not feas.size:
                    break
                pick = int(feas[np.argmax(w[feas])])
                on = adds[pick]
                cur_vmin, cur_load, cur_w = float(avmin[pick]), float(aload[pick]), float(w[pick])
            self._island_memo[key] = (on.copy(), cur_vmin, cur_load)
        srv = served(on[None, :])[0]
        # sections left dead keep their switches as they were: open only what separates
        keep = base_on & ~on & ~srv[e_u] & ~srv[e_v]
        on = on | keep
        served_mask = srv[:ki]
        if not served_mask.any():
            return None
        # make sure unserved sections stay cut off: keep their switches as they are (dead)
        new = work.copy()
        new[e_sw] = on
        changed = np.flatnonzero(new != work)
        opens = [int(s) for s in changed if not new[s]]
        closes_set = [int(s) for s in changed if new[s]]
        closes = close_order(closes_set, sec, new, st.energised)
        shed = [int(isl[i]) for i in np.flatnonzero(~served_mask)]
        return new, opens, closes, shed, cur_vmin, cur_load

    def _feeder_sections(self, st: SectionState, live_sections: np.ndarray) -> np.ndarray:
        """Sections of the feeders (subtrees below a source section) holding ``live_sections``."""
        sec = self.sections
        tops: list[int] = []
        for s in np.unique(live_sections):
            s = int(s)
            if sec.source[s]:
                continue
            while st.parent[s] >= 0 and not sec.source[st.parent[s]]:
                s = int(st.parent[s])
            tops.append(s)
        if not tops:
            return np.zeros(0, np.int64)
        return np.flatnonzero(subtree_mask(st.parent, tops))


def branch_status_all(engine: FlisrEngine, closed: np.ndarray) -> np.ndarray:
    """Conducting flag of every solver branch (lines, transformers, bus switches) for switch states."""
    from gridpilot.model import branch_status

    st = branch_status(engine.grid, closed)
    return np.concatenate(
        [
            st["line_from"] & st["line_to"],
            st["trafo_hv"] & st["trafo_lv"],
            st["busswitch"][engine.solver.bus_switch_pos],
        ]
    )


__all__ = ["FlisrEngine", "FlisrResult", "Limits", "SwitchAction", "indications_for_fault"]
