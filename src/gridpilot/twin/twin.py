"""The :class:`Twin`: a grid compiled once, then power flows single or batch, fast."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from power_grid_model import ComponentType

from gridpilot.errors import ValidationError
from gridpilot.model import Grid
from gridpilot.twin.batch import BatchArrays, ChunkSource, batch_steps, step_hours
from gridpilot.twin.engine import PgmEngine
from gridpilot.twin.injections import Injections
from gridpilot.twin.inputs import profiles_for
from gridpilot.twin.radial import RadialEngine, RadialTopology
from gridpilot.twin.results import PowerFlowResult, TimeSeriesResult

CT = ComponentType
OUTPUTS = ("v_pu", "line_loading_pct", "trafo_loading_pct")
ENGINES = ("auto", "pgm", "radial")
# one step runs 8 lock-step lanes in the radial kernel; above this many nodes a single
# Newton-Raphson power flow of PGM is faster (measured: equal at ~300-500, 2x PGM at 5,000)
SINGLE_RADIAL_MAX_NODES = 500


class Twin:
    """The digital twin of one grid: compile once, calculate many times.

    ``Twin(grid)`` validates the grid and builds the engine's model once; :meth:`powerflow`
    runs one power flow (optionally with other injections or switch states, an
    :class:`~gridpilot.twin.Injections`, without changing the grid); :meth:`timeseries` runs a batch over time steps in chunks, keeping only the
    outputs asked for.

    ``engine`` picks the solver: ``"auto"`` (default) uses the batch radial kernel
    (:mod:`gridpilot.twin.radial`) wherever the energised network is radial or weakly meshed
    (loops by compensation) and power-grid-model for other meshes (and for steps the radial
    sweep did not converge, and for single power flows of radial networks above
    ``SINGLE_RADIAL_MAX_NODES`` nodes); ``"pgm"`` always uses power-grid-model; ``"radial"``
    always uses the radial kernel and raises :class:`~gridpilot.errors.ValidationError` on a
    mesh it cannot take. Results have the
    same types either way; their ``engine`` field says which ran.
    """

    def __new__(cls, grid: Any = None, *args: Any, **kwargs: Any) -> Any:
        """A three-phase grid (:class:`ThreePhaseGrid`) gets the unbalanced twin instead (an
        ``InverterTwin`` where it has enabled InvControls, see ``inverters.twin_for``)."""
        from gridpilot.model.threephase import ThreePhaseGrid

        if isinstance(grid, ThreePhaseGrid):
            from gridpilot.twin.unbalanced.inverters import twin_for

            return twin_for(grid)
        return super().__new__(cls)

    def __init__(self, grid: Grid, validate: bool = True, engine: str = "auto") -> None:
        if engine not in ENGINES:
            raise ValidationError(f"engine: must be one of {list(ENGINES)}, got {engine!r}")
        if validate:
            grid.validate(raise_on_error=True)
        self.grid = grid
        self.mode = engine
        self.engine = PgmEngine(grid)
        self._radial: RadialEngine | None = None
        self._full_out = self.engine.output_types(full=True)
        self._has_trafo = CT.transformer in self.engine.net.input

    @property
    def _in_watts(self) -> bool:
        """Chunk injections are built in W/var: the PGM engine takes them as they are."""
        return self.mode == "pgm"

    @property
    def radial(self) -> RadialEngine:
        """The radial kernel of this grid (built on first use)."""
        if self._radial is None:
            self._radial = RadialEngine(self.grid)
        return self._radial

    def _topology(self, switch_closed: np.ndarray | None) -> RadialTopology | None:
        """The radial topology to use for these switch states, or None for power-grid-model."""
        if self.mode == "pgm":
            return None
        topo, why = self.radial.topology(switch_closed)
        if topo is None and self.mode == "radial":
            raise ValidationError(
                f"engine='radial': the energised network is not radial ({why}); "
                "use engine='auto' or 'pgm'"
            )
        return topo

    # --- single ----------------------------------------------------------------------------------
    def _checked(self, injections: Injections | None, steps: int | None) -> Injections:
        """``injections`` (None: none) checked against this grid (and ``steps`` rows)."""
        if injections is None:
            return Injections()
        if not isinstance(injections, Injections):
            raise ValidationError(
                f"injections: expected an Injections, got {type(injections).__name__} "
                "(build one with Injections(...) or Injections.from_mapping(...))"
            )
        return injections.check(self.grid, steps)

    def powerflow(
        self,
        injections: Injections | None = None,
        *,
        tolerance: float = 1e-8,
        max_iterations: int = 30,
    ) -> PowerFlowResult:
        """One AC power flow. ``injections`` override the grid's values (arrays in table order,
        1-D; see :class:`Injections`); the grid itself is not changed.

        Returns a :class:`PowerFlowResult`; ``converged`` is False (and values NaN) if the
        Newton-Raphson iteration did not converge.
        """
        given = self._checked(injections, steps=1)
        inj = given.powers()
        sc = given.switch_closed
        if self.mode != "pgm":
            topo = self._topology(None if sc is None else sc.reshape(-1))
            if topo is not None and (self.mode == "radial" or topo.n <= SINGLE_RADIAL_MAX_NODES):
                res = self._radial_single(topo, inj, tolerance, max_iterations)
                if res.converged or self.mode == "radial":
                    return res
        upd = None
        if given.given():
            upd = self.engine.build_update(1, inj, sc)
        out, ok, secs = self.engine.run(upd, self._full_out, tolerance, max_iterations, threading=0)
        return self._single_result(out, bool(ok[0]), secs, batched=upd is not None)

    def _radial_single(
        self, topo: RadialTopology, inj: dict, tolerance: float, max_iterations: int
    ) -> PowerFlowResult:
        """One power flow with the radial kernel (NaN values if it did not converge).

        The sweep converges linearly, so a single flow stops at ``tolerance / 1000`` (a few more
        iterations, microseconds) to keep the power balance as tight as Newton-Raphson's.
        """
        g = self.grid
        t0 = time.perf_counter()
        p, q = self.radial.injections(1, inj)
        sol = self.radial.solve(
            topo,
            p,
            q,
            complex_v=True,
            tolerance=tolerance * 1e-3,
            max_iterations=max(max_iterations, 60),
            threads=1,
        )
        ok = bool(sol.converged[0])
        nb, nl, nt = len(g.bus), len(g.line), len(g.transformer)
        live = topo.node_of_bus >= 0
        vb = np.zeros(nb, np.complex128)
        if ok and sol.v is not None:
            vb[live] = sol.v[0, topo.node_of_bus[live]]
            fl = self.radial.branch_flows(topo, sol.v[0], p[0], q[0])
        else:
            vb[:] = np.nan
            nan_e, nan_s = np.full(nl + nt, np.nan), np.full(len(g.source), np.nan)
            fl = {k: nan_e for k in ("p_from_mw", "q_from_mvar", "p_to_mw", "i_ka", "loading")}
            fl.update(source_p_mw=nan_s, source_q_mvar=nan_s)
        return PowerFlowResult(
            converged=ok,
            iterations=int(sol.iterations[0]),
            engine=self.radial.name,
            bus_id=g.bus.ids,
            v_pu=np.abs(vb),
            va_deg=np.rad2deg(np.angle(vb)),
            energised=live if ok else np.zeros(nb, bool),
            line_id=g.line.ids,
            line_p_from_mw=fl["p_from_mw"][:nl],
            line_q_from_mvar=fl["q_from_mvar"][:nl],
            line_p_to_mw=fl["p_to_mw"][:nl],
            line_i_ka=fl["i_ka"][:nl],
            line_loading_pct=fl["loading"][:nl] * 100,
            trafo_id=g.transformer.ids,
            trafo_p_hv_mw=fl["p_from_mw"][nl:],
            trafo_p_lv_mw=fl["p_to_mw"][nl:],
            trafo_loading_pct=fl["loading"][nl:] * 100,
            source_p_mw=fl["source_p_mw"],
            source_q_mvar=fl["source_q_mvar"],
            calc_ms=(time.perf_counter() - t0) * 1e3,
        )

    def _single_result(self, out: dict, ok: bool, secs: float, batched: bool) -> PowerFlowResult:
        g = self.grid

        def col(ct: ComponentType, name: str, n: int) -> np.ndarray:
            if not ok or ct not in out:
                return np.full(n, np.nan)
            a = out[ct][name]
            return np.asarray(a[0] if batched else a, dtype=np.float64)

        nb, nl, nt = len(g.bus), len(g.line), len(g.transformer)
        energ = col(CT.node, "energized", nb)
        v = col(CT.node, "u_pu", nb)
        tr = self._has_trafo
        return PowerFlowResult(
            converged=ok,
            iterations=-1,
            engine=self.engine.name,
            bus_id=g.bus.ids,
            v_pu=v,
            va_deg=np.rad2deg(col(CT.node, "u_angle", nb)),
            energised=(energ > 0) if ok else np.zeros(nb, bool),
            line_id=g.line.ids,
            line_p_from_mw=col(CT.line, "p_from", nl) / 1e6,
            line_q_from_mvar=col(CT.line, "q_from", nl) / 1e6,
            line_p_to_mw=col(CT.line, "p_to", nl) / 1e6,
            line_i_ka=np.maximum(col(CT.line, "i_from", nl), col(CT.line, "i_to", nl)) / 1e3,
            line_loading_pct=col(CT.line, "loading", nl) * 100,
            trafo_id=g.transformer.ids,
            trafo_p_hv_mw=col(CT.transformer, "p_from", nt) / 1e6 if tr else np.zeros(0),
            trafo_p_lv_mw=col(CT.transformer, "p_to", nt) / 1e6 if tr else np.zeros(0),
            trafo_loading_pct=col(CT.transformer, "loading", nt) * 100 if tr else np.zeros(0),
            source_p_mw=col(CT.source, "p", len(g.source)) / 1e6,
            source_q_mvar=col(CT.source, "q", len(g.source)) / 1e6,
            calc_ms=secs * 1e3,
        )

    # --- batch -----------------------------------------------------------------------------------
    def timeseries(  # noqa: PLR0913 (the run's own options; the injections are one object)
        self,
        steps: int | None = None,
        *,
        start: int = 0,
        injections: Injections | None = None,
        outputs: Sequence[str] = (),
        chunk_steps: int | None = None,
        threading: int = -1,
        progress: Callable[[int, int], Any] | None = None,
    ) -> TimeSeriesResult:
        """A batch of power flows over time steps.

        ``injections`` (see :class:`Injections`) given as (T, n) arrays are used as they are,
        (n,) arrays at every step; those not given come from the grid's profiles (or the
        default shapes) for steps ``start .. start + steps``. ``outputs``
        selects full arrays to keep (``v_pu``, ``line_loading_pct``, ``trafo_loading_pct``);
        per-step losses, extremes and source power are always kept. Work runs in chunks of
        ``chunk_steps`` so memory stays bounded; ``progress(done, total)`` is called per chunk.
        Non-converged steps are flagged in ``converged`` (their values NaN), never hidden.
        ``threading`` is power-grid-model's (-1 sequential, 0 all cores, k threads); the radial
        kernel uses all cores unless it is a positive thread count. Per-step switch states
        (T, n_switch) are grouped by distinct state, each solved by the engine that fits it;
        ``meta["engine_steps"]`` counts the steps each engine solved.
        """
        bad = sorted(set(outputs) - set(OUTPUTS))
        if bad:
            raise ValidationError(f"outputs: unknown {bad}; choose from {list(OUTPUTS)}")
        given = self._checked(injections, steps=None)
        steps = batch_steps(steps, given)
        g = self.grid
        prof, cols = profiles_for(g, start + steps)
        if prof.steps < start + steps:
            raise ValidationError(
                f"steps: profiles have {prof.steps} steps, asked for {start}+{steps}"
            )
        nb, nl, nt = len(g.bus), len(g.line), len(g.transformer)
        if chunk_steps is None:  # the radial kernel keeps no per-branch outputs: larger chunks
            budget = 4_000_000 if self.mode == "pgm" else 16_000_000
            chunk_steps = int(np.clip(budget // max(nb + nl, 1), 16, 4096))
        keep = (
            ("v_pu" in outputs),
            ("line_loading_pct" in outputs),
            ("trafo_loading_pct" in outputs),
        )
        out_req = self._out_request()
        arrs = BatchArrays.empty(steps, (nb, nl, nt), keep)
        unit = 1e6 if self._in_watts else 1.0  # scaled once here instead of copied per chunk
        src = ChunkSource(g, prof, cols, given, start, unit)
        calc = 0.0
        used = {"radial": 0, "power-grid-model": 0}
        for a in range(0, steps, chunk_steps):
            b = min(steps, a + chunk_steps)
            inj, sc = src.injections(a, b)
            part = arrs.part(a, b)
            calc += self._chunk(b - a, inj, sc, part, keep, out_req, threading, used)
            arrs.nan_failed(a, b)
            if progress is not None:
                progress(b, steps)
        engine = "+".join(k for k, n in used.items() if n) or self.engine.name
        meta = {"step_h": step_hours(prof), "chunk_steps": chunk_steps, "engine_steps": used}
        return arrs.result(g, prof.index[start : start + steps], engine, calc, meta)

    def _out_request(self) -> dict[Any, list[str]]:
        """The power-grid-model attributes a batch reads, per component type."""
        out_req = {
            CT.node: ["u_pu", "energized"],
            CT.line: ["p_from", "p_to", "loading"],
            CT.source: ["p"],
        }
        if self._has_trafo:
            out_req[CT.transformer] = ["p_from", "p_to", "loading"]
        return out_req

    # --- one chunk of a batch ------------------------------------------------------------------
    def _chunk(  # noqa: PLR0913
        self,
        n: int,
        inj: dict,
        sc: np.ndarray | None,
        part: dict,
        keep: tuple[bool, bool, bool],
        out_req: dict,
        threading: int,
        used: dict[str, int],
    ) -> float:
        """Solve ``n`` steps into the views in ``part``; radial where possible. Returns seconds."""
        if self.mode == "pgm":
            used["power-grid-model"] += n
            return self._chunk_pgm(np.arange(n), n, inj, sc, part, keep, out_req, threading)
        scb = None if sc is None else np.asarray(sc, dtype=bool)  # checked by Injections.check
        if scb is None or scb.ndim == 1:
            groups: list[tuple[np.ndarray, np.ndarray | None]] = [(np.arange(n), scb)]
        else:
            uniq, inv = np.unique(scb, axis=0, return_inverse=True)
            inv = inv.reshape(-1)
            groups = [(np.flatnonzero(inv == u), uniq[u]) for u in range(uniq.shape[0])]
        secs = 0.0
        to_pgm: list[np.ndarray] = []
        for rows, s in groups:
            topo = self._topology(s)
            if topo is None:
                to_pgm.append(rows)
                continue
            secs += self._chunk_radial(topo, rows, n, inj, part, keep, threading)
            used["radial"] += rows.size
            failed = rows[~part["ok"][rows]]
            if failed.size and self.mode == "auto":
                to_pgm.append(failed)
                used["radial"] -= failed.size
        if to_pgm:
            rows = np.sort(np.concatenate(to_pgm))
            used["power-grid-model"] += rows.size
            secs += self._chunk_pgm(rows, n, inj, scb, part, keep, out_req, threading)
        return secs

    @staticmethod
    def _rows_of(inj: dict, rows: np.ndarray, n: int) -> dict:
        if rows.size == n:
            return inj
        return {
            k: (np.asarray(v)[rows] if v is not None and np.ndim(v) == 2 else v)
            for k, v in inj.items()
        }

    def _chunk_radial(  # noqa: PLR0913
        self,
        topo: RadialTopology,
        rows: np.ndarray,
        n: int,
        inj: dict,
        part: dict,
        keep: tuple[bool, bool, bool],
        threading: int,
    ) -> float:
        g = self.grid
        t0 = time.perf_counter()
        p, q = self.radial.injections(rows.size, self._rows_of(inj, rows, n))
        sol = self.radial.solve(
            topo,
            p,
            q,
            v_abs=keep[0],
            loading=keep[1] or keep[2],
            tolerance=1e-8,
            max_iterations=60,
            threads=threading if threading > 0 else None,
        )
        bus_ids = g.bus.ids[topo.node_bus] if topo.n else np.zeros(0, np.int64)
        ok = sol.converged
        part["ok"][rows] = ok
        part["vmin_pu"][rows] = sol.vmin_pu
        part["vmax_pu"][rows] = sol.vmax_pu
        part["vmin_bus"][rows] = (
            np.where(ok, bus_ids[np.maximum(sol.vmin_node, 0)], -1) if topo.n else -1
        )
        part["vmax_bus"][rows] = (
            np.where(ok, bus_ids[np.maximum(sol.vmax_node, 0)], -1) if topo.n else -1
        )
        part["losses_kw"][rows] = sol.losses_mw * 1e3
        part["max_loading_pct"][rows] = sol.max_loading * 100
        part["source_p_mw"][rows] = sol.source_p_mw
        if part["v"] is not None and sol.v_abs is not None:
            live = topo.node_of_bus >= 0
            vv = np.zeros((rows.size, len(g.bus)), np.float32)
            vv[:, live] = sol.v_abs[:, topo.node_of_bus[live]]
            part["v"][rows] = vv
        nl = len(g.line)
        if part["ll"] is not None and sol.loading is not None:
            part["ll"][rows] = sol.loading[:, :nl] * 100
        if part["tl"] is not None and sol.loading is not None:
            part["tl"][rows] = sol.loading[:, nl:] * 100
        return time.perf_counter() - t0

    def _chunk_pgm(  # noqa: PLR0913
        self,
        rows: np.ndarray,
        n: int,
        inj: dict,
        sc: np.ndarray | None,
        part: dict,
        keep: tuple[bool, bool, bool],
        out_req: dict,
        threading: int,
    ) -> float:
        g = self.grid
        m = rows.size
        sub = self._rows_of(inj, rows, n)
        if sc is not None and np.ndim(sc) == 2 and m != n:
            sc = np.asarray(sc)[rows]
        upd = self.engine.build_update(m, sub, sc, in_watts=self._in_watts)
        out, ok, secs = self.engine.run(upd, out_req, threading=threading)
        part["ok"][rows] = ok
        u = out[CT.node]["u_pu"]
        en = out[CT.node]["energized"] > 0
        ar = np.arange(m)
        all_on = bool(en.all())  # the usual case: no masking passes over (steps, buses)
        um = u if all_on else np.where(en, u, np.inf)
        kmin = np.argmin(um, axis=1)
        part["vmin_pu"][rows] = um[ar, kmin]
        part["vmin_bus"][rows] = np.where(ok, g.bus.ids[kmin], -1)  # -1: no solution
        uM = u if all_on else np.where(en, u, -np.inf)
        kmax = np.argmax(uM, axis=1)
        part["vmax_pu"][rows] = uM[ar, kmax]
        part["vmax_bus"][rows] = np.where(ok, g.bus.ids[kmax], -1)
        loss = (out[CT.line]["p_from"] + out[CT.line]["p_to"]).sum(axis=1)
        load = out[CT.line]["loading"]
        mx = load.max(axis=1) if len(g.line) else np.zeros(m)
        if self._has_trafo:
            loss = loss + (out[CT.transformer]["p_from"] + out[CT.transformer]["p_to"]).sum(axis=1)
            mx = np.maximum(mx, out[CT.transformer]["loading"].max(axis=1))
        part["losses_kw"][rows] = loss / 1e3
        part["max_loading_pct"][rows] = mx * 100
        part["source_p_mw"][rows] = out[CT.source]["p"].sum(axis=1) / 1e6
        if part["v"] is not None:
            part["v"][rows] = u
        if part["ll"] is not None:
            part["ll"][rows] = load * 100
        if part["tl"] is not None and self._has_trafo:
            part["tl"][rows] = out[CT.transformer]["loading"] * 100
        return secs


def powerflow(
    grid: Grid,
    injections: Injections | None = None,
    *,
    tolerance: float = 1e-8,
    max_iterations: int = 30,
) -> PowerFlowResult:
    """One power flow of ``grid`` (compiles a :class:`Twin`; keep a Twin for repeated work)."""
    return Twin(grid).powerflow(injections, tolerance=tolerance, max_iterations=max_iterations)


def wall_ms(fn: Callable[[], Any], repeat: int = 20) -> float:
    """Median wall time of ``fn`` in milliseconds (for benchmarks and the CLI)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)
