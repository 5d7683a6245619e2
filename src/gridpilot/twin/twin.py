"""The :class:`Twin`: a grid compiled once, then power flows single or batch, fast."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from power_grid_model import ComponentType

from gridpilot.errors import ValidationError
from gridpilot.model import Grid
from gridpilot.twin.engine import PgmEngine
from gridpilot.twin.inputs import profiles_for, step_injections
from gridpilot.twin.results import PowerFlowResult, TimeSeriesResult

CT = ComponentType
OUTPUTS = ("v_pu", "line_loading_pct", "trafo_loading_pct")


class Twin:
    """The digital twin of one grid: compile once, calculate many times.

    ``Twin(grid)`` validates the grid and builds the engine's model once; :meth:`powerflow`
    runs one power flow (optionally with other injections or switch states, without changing
    the grid); :meth:`timeseries` runs a batch over time steps in chunks, keeping only the
    outputs asked for.
    """

    def __init__(self, grid: Grid, validate: bool = True) -> None:
        if validate:
            grid.validate(raise_on_error=True)
        self.grid = grid
        self.engine = PgmEngine(grid)
        self._full_out = self.engine.output_types(full=True)
        self._has_trafo = CT.transformer in self.engine.net.input

    # --- single ----------------------------------------------------------------------------------
    def powerflow(self, *, load_p_mw: np.ndarray | None = None, load_q_mvar: np.ndarray | None = None,
                  gen_p_mw: np.ndarray | None = None, gen_q_mvar: np.ndarray | None = None,
                  storage_p_mw: np.ndarray | None = None, ev_p_mw: np.ndarray | None = None,
                  flex_p_mw: np.ndarray | None = None, switch_closed: np.ndarray | None = None,
                  tolerance: float = 1e-8, max_iterations: int = 30) -> PowerFlowResult:
        """One AC power flow. Arguments override the grid's values (arrays in table order).

        Returns a :class:`PowerFlowResult`; ``converged`` is False (and values NaN) if the
        Newton-Raphson iteration did not converge.
        """
        inj = {"load_p_mw": load_p_mw, "load_q_mvar": load_q_mvar, "gen_p_mw": gen_p_mw,
               "gen_q_mvar": gen_q_mvar, "storage_p_mw": storage_p_mw, "ev_p_mw": ev_p_mw, "flex_p_mw": flex_p_mw}
        upd = None
        if any(v is not None for v in inj.values()) or switch_closed is not None:
            upd = self.engine.build_update(1, inj, switch_closed)
        out, ok, secs = self.engine.run(upd, self._full_out, tolerance, max_iterations, threading=0)
        return self._single_result(out, bool(ok[0]), secs, batched=upd is not None)

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
            converged=ok, iterations=-1, engine=self.engine.name,
            bus_id=g.bus.ids, v_pu=v, va_deg=np.rad2deg(col(CT.node, "u_angle", nb)),
            energised=(energ > 0) if ok else np.zeros(nb, bool),
            line_id=g.line.ids, line_p_from_mw=col(CT.line, "p_from", nl) / 1e6,
            line_q_from_mvar=col(CT.line, "q_from", nl) / 1e6, line_p_to_mw=col(CT.line, "p_to", nl) / 1e6,
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
    def timeseries(self, steps: int | None = None, *, start: int = 0,
                   load_p_mw: np.ndarray | None = None, load_q_mvar: np.ndarray | None = None,
                   gen_p_mw: np.ndarray | None = None, gen_q_mvar: np.ndarray | None = None,
                   storage_p_mw: np.ndarray | None = None, ev_p_mw: np.ndarray | None = None,
                   flex_p_mw: np.ndarray | None = None, switch_closed: np.ndarray | None = None,
                   outputs: Sequence[str] = (), chunk_steps: int | None = None, threading: int = -1,
                   progress: Callable[[int, int], Any] | None = None) -> TimeSeriesResult:
        """A batch of power flows over time steps.

        Injections given as (T, n) arrays are used as they are; those not given come from the
        grid's profiles (or the default shapes) for steps ``start .. start + steps``. ``outputs``
        selects full arrays to keep (``v_pu``, ``line_loading_pct``, ``trafo_loading_pct``);
        per-step losses, extremes and source power are always kept. Work runs in chunks of
        ``chunk_steps`` so memory stays bounded; ``progress(done, total)`` is called per chunk.
        Non-converged steps are flagged in ``converged`` (their values NaN), never hidden.
        """
        bad = sorted(set(outputs) - set(OUTPUTS))
        if bad:
            raise ValidationError(f"outputs: unknown {bad}; choose from {list(OUTPUTS)}")
        given = {"load_p_mw": load_p_mw, "load_q_mvar": load_q_mvar, "gen_p_mw": gen_p_mw,
                 "gen_q_mvar": gen_q_mvar, "storage_p_mw": storage_p_mw, "ev_p_mw": ev_p_mw, "flex_p_mw": flex_p_mw}
        lens = {k: np.shape(v)[0] for k, v in given.items() if v is not None and np.ndim(v) == 2}
        if switch_closed is not None and np.ndim(switch_closed) == 2:
            lens["switch_closed"] = np.shape(switch_closed)[0]
        if steps is None:
            steps = max(lens.values(), default=96)
        if steps <= 0:
            raise ValidationError(f"steps: must be positive, got {steps}")
        wrong = {k: n for k, n in lens.items() if n != steps}
        if wrong:
            raise ValidationError(f"time series arrays must have {steps} rows; got {wrong}")
        g = self.grid
        prof, cols = profiles_for(g, start + steps)
        if prof.steps < start + steps:
            raise ValidationError(f"steps: profiles have {prof.steps} steps, asked for {start}+{steps}")
        nb, nl, nt = len(g.bus), len(g.line), len(g.transformer)
        if chunk_steps is None:
            chunk_steps = int(np.clip(4_000_000 // max(nb + nl, 1), 16, 4096))
        keep_v = "v_pu" in outputs
        out_req = {CT.node: ["u_pu", "energized"], CT.line: ["p_from", "p_to", "loading"], CT.source: ["p"]}
        if self._has_trafo:
            out_req[CT.transformer] = ["p_from", "p_to", "loading"]
        res = {k: np.empty(steps) for k in ("losses_kw", "vmin_pu", "vmax_pu", "max_loading_pct", "source_p_mw")}
        vmin_bus = np.empty(steps, np.int64)
        vmax_bus = np.empty(steps, np.int64)
        conv = np.ones(steps, bool)
        v_all = np.empty((steps, nb), np.float32) if keep_v else None
        ll_all = np.empty((steps, nl), np.float32) if "line_loading_pct" in outputs else None
        tl_all = np.empty((steps, nt), np.float32) if "trafo_loading_pct" in outputs else None
        calc = 0.0
        for a in range(0, steps, chunk_steps):
            b = min(steps, a + chunk_steps)
            sel = slice(start + a, start + b)
            inj = step_injections(g, prof, cols, sel)
            for k, v in given.items():
                if v is not None:
                    inj[k] = np.asarray(v)[a:b] if np.ndim(v) == 2 else v
            sc = switch_closed[a:b] if switch_closed is not None and np.ndim(switch_closed) == 2 else switch_closed
            upd = self.engine.build_update(b - a, inj, sc)
            out, ok, secs = self.engine.run(upd, out_req, threading=threading)
            calc += secs
            conv[a:b] = ok
            u = out[CT.node]["u_pu"]
            en = out[CT.node]["energized"] > 0
            um = np.where(en, u, np.inf)
            kmin = np.argmin(um, axis=1)
            res["vmin_pu"][a:b] = um[np.arange(b - a), kmin]
            vmin_bus[a:b] = g.bus.ids[kmin]
            uM = np.where(en, u, -np.inf)
            kmax = np.argmax(uM, axis=1)
            res["vmax_pu"][a:b] = uM[np.arange(b - a), kmax]
            vmax_bus[a:b] = g.bus.ids[kmax]
            loss = (out[CT.line]["p_from"] + out[CT.line]["p_to"]).sum(axis=1)
            load = out[CT.line]["loading"]
            mx = load.max(axis=1) if nl else np.zeros(b - a)
            if self._has_trafo:
                loss = loss + (out[CT.transformer]["p_from"] + out[CT.transformer]["p_to"]).sum(axis=1)
                mx = np.maximum(mx, out[CT.transformer]["loading"].max(axis=1))
            res["losses_kw"][a:b] = loss / 1e3
            res["max_loading_pct"][a:b] = mx * 100
            res["source_p_mw"][a:b] = out[CT.source]["p"].sum(axis=1) / 1e6
            if v_all is not None:
                v_all[a:b] = u
            if ll_all is not None:
                ll_all[a:b] = load * 100
            if tl_all is not None and self._has_trafo:
                tl_all[a:b] = out[CT.transformer]["loading"] * 100
            if not ok.all():
                bad_rows = np.flatnonzero(~ok) + a
                for arr in res.values():
                    arr[bad_rows] = np.nan
                for arr in (v_all, ll_all, tl_all):
                    if arr is not None:
                        arr[bad_rows] = np.nan
            if progress is not None:
                progress(b, steps)
        step_s = float((prof.index[1] - prof.index[0]) / np.timedelta64(1, "s")) if prof.steps > 1 else 900.0
        return TimeSeriesResult(
            index=prof.index[start:start + steps], bus_id=g.bus.ids, line_id=g.line.ids, trafo_id=g.transformer.ids,
            losses_kw=res["losses_kw"], vmin_pu=res["vmin_pu"], vmin_bus=vmin_bus, vmax_pu=res["vmax_pu"],
            vmax_bus=vmax_bus, max_loading_pct=res["max_loading_pct"], source_p_mw=res["source_p_mw"],
            converged=conv, engine=self.engine.name, v_pu=v_all, line_loading_pct=ll_all,
            trafo_loading_pct=tl_all, calc_s=calc, meta={"step_h": step_s / 3600.0, "chunk_steps": chunk_steps},
        )


def powerflow(grid: Grid, **kwargs: Any) -> PowerFlowResult:
    """One power flow of ``grid`` (compiles a :class:`Twin`; keep a Twin for repeated work)."""
    return Twin(grid).powerflow(**kwargs)


def wall_ms(fn: Callable[[], Any], repeat: int = 20) -> float:
    """Median wall time of ``fn`` in milliseconds (for benchmarks and the CLI)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)
