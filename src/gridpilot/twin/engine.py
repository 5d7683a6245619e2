"""The power-grid-model engine: single and batch power flow on a compiled grid."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, TypeGuard

import numpy as np
from power_grid_model import CalculationMethod, ComponentType, PowerGridModel
from power_grid_model.errors import PowerGridBatchError, PowerGridError

from gridpilot.errors import ValidationError
from gridpilot.model import ElementType, Grid
from gridpilot.twin.pgm import PgmNetwork, to_pgm

log = logging.getLogger(__name__)

CT = ComponentType

OUT_NODE = ["u_pu", "u_angle", "energized"]
OUT_BRANCH = ["p_from", "q_from", "p_to", "i_from", "i_to", "loading"]


def _as2d(a: np.ndarray | None, n: int, name: str, t: int | None) -> np.ndarray | None:
    if a is None:
        return None
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != n or (t is not None and arr.shape[0] not in (1, t)):
        raise ValidationError(f"{name}: expected shape ({n},) or (steps, {n}), got {np.shape(a)}")
    if not np.all(np.isfinite(arr)):
        raise ValidationError(f"{name}: contains NaN or infinite values")
    return arr


def _full(a: np.ndarray | None, t: int) -> TypeGuard[np.ndarray]:
    """``a`` can go to power-grid-model as a (t, n) update array without a copy."""
    return a is not None and a.shape[0] == t and a.flags.c_contiguous


def _open_ends(
    is_open: np.ndarray, pos: np.ndarray, at_from: np.ndarray, status: tuple[np.ndarray, np.ndarray]
) -> None:
    """Set to 0 the from (``at_from``) or to end status of branch ``pos[k]`` where switch k is open.

    ``is_open`` (t, n_switch) of the branch kind's switches; ``status``: (from, to) (t, n_branch).
    """
    if not pos.size:
        return
    for mask, arr in ((at_from, status[0]), (~at_from, status[1])):
        cols = pos[mask]
        if cols.size:
            r, c = np.nonzero(is_open[:, mask])
            arr[r, cols[c]] = 0


class PgmEngine:
    """A grid compiled once into a power-grid-model instance; calculations with updates."""

    name = "power-grid-model"

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.net: PgmNetwork = to_pgm(grid)
        self.model = PowerGridModel(self.net.input, system_frequency=grid.f_hz)
        sw = grid.switch
        ln, tr = grid.line, grid.transformer
        # per sym_load block: does it take its component's columns in order, all with share 1?
        self._block_identity = [
            bool(pos.size == len(grid[comp]) and np.array_equal(pos, np.arange(pos.size)))
            for comp, pos, _share, _start in self.net.load_blocks
        ]
        self._block_unit_share = [
            bool(np.all(np.asarray(share) == 1.0)) for _c, _p, share, _s in self.net.load_blocks
        ]
        blocks = (
            self.net.load_blocks
        )  # one block of every load in order, share 1: no gather, no copy
        self._whole_load_block = (
            len(blocks) == 1
            and blocks[0][0] == "load"
            and blocks[0][1].size == self.net.n_sym_load
            and self._block_identity[0]
            and self._block_unit_share[0]
        )
        self._sw_line = np.flatnonzero(sw["et"] == ElementType.LINE)
        self._sw_trafo = np.flatnonzero(sw["et"] == ElementType.TRANSFORMER)
        self._sw_line_pos = (
            ln.position_map(sw["element"][self._sw_line])
            if self._sw_line.size
            else np.zeros(0, np.int64)
        )
        self._sw_line_from = (
            ln["from_bus"][self._sw_line_pos] == sw["bus"][self._sw_line]
            if self._sw_line.size
            else np.zeros(0, bool)
        )
        self._sw_trafo_pos = (
            tr.position_map(sw["element"][self._sw_trafo])
            if self._sw_trafo.size
            else np.zeros(0, np.int64)
        )
        self._sw_trafo_hv = (
            tr["hv_bus"][self._sw_trafo_pos] == sw["bus"][self._sw_trafo]
            if self._sw_trafo.size
            else np.zeros(0, bool)
        )

    # --- building updates ---------------------------------------------------------------------
    def _inputs(
        self,
        t: int | None,
        inj: Mapping[str, np.ndarray | None],
        switch_closed: np.ndarray | None,
    ) -> tuple[dict[str, np.ndarray | None], np.ndarray | None, int]:
        """The injection arrays as (1 or t, n) floats, the switch states (1 or t, n_switch) and t."""
        g = self.grid
        arrays = {
            "load_p_mw": _as2d(inj.get("load_p_mw"), len(g.load), "load_p_mw", t),
            "load_q_mvar": _as2d(inj.get("load_q_mvar"), len(g.load), "load_q_mvar", t),
            "storage_p_mw": _as2d(inj.get("storage_p_mw"), len(g.storage), "storage_p_mw", t),
            "ev_p_mw": _as2d(inj.get("ev_p_mw"), len(g.ev_charger), "ev_p_mw", t),
            "flex_p_mw": _as2d(inj.get("flex_p_mw"), len(g.flex_load), "flex_p_mw", t),
            "gen_p_mw": _as2d(inj.get("gen_p_mw"), len(g.generator), "gen_p_mw", t),
            "gen_q_mvar": _as2d(inj.get("gen_q_mvar"), len(g.generator), "gen_q_mvar", t),
        }
        sc = None
        if switch_closed is not None:
            sc = np.asarray(switch_closed, dtype=bool)
            if sc.ndim == 1:
                sc = sc[None, :]
            if sc.shape[-1] != len(g.switch):
                raise ValidationError(
                    f"switch_closed: expected {len(g.switch)} values per step, got {sc.shape[-1]}"
                )
        rows = [a.shape[0] for a in arrays.values() if a is not None] + (
            [sc.shape[0]] if sc is not None else []
        )
        return arrays, sc, max(rows, default=1) if t is None else t

    def _load_update(
        self, arrays: dict[str, np.ndarray | None], t: int, unit: float
    ) -> dict[str, np.ndarray]:
        """The sym_load update: every load block's columns (scaled by its share), W/var."""
        net = self.net
        base = net.input[CT.sym_load]
        whole = self._whole_load_block and unit == 1.0  # the load array is the update as it is
        lp, lq = arrays["load_p_mw"], arrays["load_q_mvar"]
        keys = {"storage": "storage_p_mw", "ev_charger": "ev_p_mw", "flex_load": "flex_p_mw"}
        p_given = [
            arrays["load_p_mw" if c == "load" else keys[c]] is not None for c, *_ in net.load_blocks
        ]
        q_given = [
            arrays["load_q_mvar"] is not None if c == "load" else False for c, *_ in net.load_blocks
        ]
        p = lp if whole and _full(lp, t) else np.empty((t, net.n_sym_load))
        # reactive power only where an array sets some: else PGM keeps the input values
        q = None
        if any(q_given):
            q = lq if whole and _full(lq, t) else np.empty((t, net.n_sym_load))
        if not all(p_given):  # columns no array sets keep the grid's value
            p[:] = base["p_specified"]
        if q is not None and not all(q_given):
            q[:] = base["q_specified"]
        for (comp, pos, share, start), ident, unit_share in zip(
            net.load_blocks, self._block_identity, self._block_unit_share, strict=True
        ):
            sl = slice(start, start + pos.size)
            scale = unit if unit_share else share * unit
            pairs = [(arrays["load_p_mw" if comp == "load" else keys[comp]], p)]
            if comp == "load" and q is not None:
                pairs.append((arrays["load_q_mvar"], q))
            for a, out in pairs:
                if a is not None and a is not out:
                    np.multiply(a if ident else a[:, pos], scale, out=out[:, sl])
        return {"p_specified": p} | ({"q_specified": q} if q is not None else {})

    def _switch_update(self, sc: np.ndarray, t: int) -> dict[Any, dict[str, np.ndarray]]:
        """Line, transformer and link status updates from the switch states (an open switch opens its end)."""
        g, net = self.grid, self.net
        upd: dict[Any, dict[str, np.ndarray]] = {}
        sc = np.broadcast_to(sc, (t, sc.shape[1]))
        ln, tr = g.line, g.transformer
        fs = np.broadcast_to(ln["in_service"], (t, len(ln))).astype(np.int8)
        ts = fs.copy()
        _open_ends(~sc[:, self._sw_line], self._sw_line_pos, self._sw_line_from, (fs, ts))
        upd[CT.line] = {"from_status": fs, "to_status": ts}
        if len(tr):
            hs = np.broadcast_to(tr["in_service"], (t, len(tr))).astype(np.int8)
            ls = hs.copy()
            _open_ends(~sc[:, self._sw_trafo], self._sw_trafo_pos, self._sw_trafo_hv, (hs, ls))
            upd[CT.transformer] = {"from_status": hs, "to_status": ls}
        if net.bus_switch_pos.size:
            upd[CT.link] = {
                "from_status": sc[:, net.bus_switch_pos].astype(np.int8),
                "to_status": np.ones((t, net.bus_switch_pos.size), np.int8),
            }
        return upd

    def build_update(
        self,
        t: int | None,
        inj: Mapping[str, np.ndarray | None],
        switch_closed: np.ndarray | None,
        *,
        in_watts: bool = False,
    ) -> dict:
        """Columnar batch update of ``t`` scenarios (``t`` None: infer from the arrays).

        ``in_watts``: the injection arrays are already in W/var (see
        :func:`~gridpilot.twin.inputs.step_injections`' ``scale``); a full (t, n) array then goes
        to power-grid-model as it is, without a copy.
        """
        unit = 1.0 if in_watts else 1e6
        arrays, sc, t = self._inputs(t, inj, switch_closed)
        upd: dict = {}
        net = self.net
        # Updates carry no "id" columns: they hold every element of a component in input order,
        # which power-grid-model accepts (and then skips the id lookup per scenario).
        if net.n_sym_load and any(
            arrays[k] is not None
            for k in ("load_p_mw", "load_q_mvar", "storage_p_mw", "ev_p_mw", "flex_p_mw")
        ):
            upd[CT.sym_load] = self._load_update(arrays, t, unit)
        if (
            arrays["gen_p_mw"] is not None or arrays["gen_q_mvar"] is not None
        ) and CT.sym_gen in net.input:
            gen: dict[str, np.ndarray] = {}
            for key, attr in (("gen_p_mw", "p_specified"), ("gen_q_mvar", "q_specified")):
                a = arrays[key]
                if a is not None:
                    gen[attr] = (
                        a
                        if unit == 1.0 and _full(a, t)
                        else np.multiply(np.broadcast_to(a, (t, a.shape[1])), unit)
                    )
            upd[CT.sym_gen] = gen
        if sc is not None:
            upd.update(self._switch_update(sc, t))
        return upd

    # --- calculations ----------------------------------------------------------------------------
    def output_types(self, full: bool = True) -> dict:
        """Columnar output request: node voltages, branch flows, source powers."""
        out: dict = {
            CT.node: OUT_NODE if full else ["u_pu", "energized"],
            CT.line: OUT_BRANCH if full else ["p_from", "p_to", "loading"],
            CT.source: ["p", "q"],
        }
        if CT.transformer in self.net.input:
            out[CT.transformer] = OUT_BRANCH if full else ["p_from", "p_to", "loading"]
        return out

    def run(
        self,
        update: dict | None,
        outputs: dict,
        tolerance: float = 1e-8,
        max_iterations: int = 30,
        threading: int = -1,
    ) -> tuple[dict, np.ndarray, float]:
        """Run PGM; returns (output, converged per scenario, seconds). Never raises on divergence."""
        t0 = time.perf_counter()
        kwargs: dict[str, Any] = {
            "symmetric": True,
            "error_tolerance": tolerance,
            "max_iterations": max_iterations,
            "calculation_method": CalculationMethod.newton_raphson,
            "output_component_types": outputs,
        }
        if update:
            n = next(iter(next(iter(update.values())).values())).shape[0]
            out = self.model.calculate_power_flow(
                update_data=update, threading=threading, continue_on_batch_error=True, **kwargs
            )
            ok = np.ones(n, bool)
            err: PowerGridBatchError | None = self.model.batch_error
            if err is not None:
                ok[np.asarray(err.failed_scenarios, dtype=np.int64)] = False
                log.debug("power-grid-model: %d of %d scenarios failed", int((~ok).sum()), n)
            return out, ok, time.perf_counter() - t0
        try:
            out = self.model.calculate_power_flow(**kwargs)
            return out, np.ones(1, bool), time.perf_counter() - t0
        except PowerGridError as exc:
            log.debug("power-grid-model: the power flow failed: %s", exc)
            return {}, np.zeros(1, bool), time.perf_counter() - t0
