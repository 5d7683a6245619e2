"""The named steps of :meth:`gridpilot.twin.Twin.timeseries`: checking the step count against
the given arrays, each chunk's injections, and the per-step outputs filled chunk by chunk."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gridpilot.errors import ValidationError
from gridpilot.model import Grid, Profiles
from gridpilot.twin.injections import Injections
from gridpilot.twin.inputs import step_injections
from gridpilot.twin.results import TimeSeriesResult

# per-step scalars a batch always keeps
STEP_KEYS: tuple[str, ...] = ("losses_kw", "vmin_pu", "vmax_pu", "max_loading_pct", "source_p_mw")


def batch_steps(steps: int | None, injections: Injections) -> int:
    """The number of steps: ``steps`` or the rows of the (T, n) arrays given (96 without any);
    a :class:`ValidationError` when it is not positive or the arrays disagree with it."""
    lens = injections.rows()
    if steps is None:
        steps = max(lens.values(), default=96)
    if steps <= 0:
        raise ValidationError(f"steps: must be positive, got {steps}")
    wrong = {k: n for k, n in lens.items() if n != steps}
    if wrong:
        raise ValidationError(f"time series arrays must have {steps} rows; got {wrong}")
    return steps


def step_hours(prof: Profiles) -> float:
    """The profiles' step length in hours (a quarter hour for a single step)."""
    step_s = (
        float((prof.index[1] - prof.index[0]) / np.timedelta64(1, "s")) if prof.steps > 1 else 900.0
    )
    return step_s / 3600.0


@dataclass(frozen=True)
class ChunkSource:
    """Where a chunk's injections come from: the grid's profiles for the steps not given, the
    arrays given (per step (T, n) or fixed (n,)), all scaled by ``unit`` (1e6: W/var)."""

    grid: Grid
    prof: Profiles
    cols: dict[str, np.ndarray]
    given: Injections
    start: int
    unit: float

    def injections(self, a: int, b: int) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """Injections and switch states of the batch's steps ``a .. b``."""
        sel = slice(self.start + a, self.start + b)
        inj = step_injections(self.grid, self.prof, self.cols, sel, scale=self.unit)
        unit = self.unit
        for k, v in self.given.powers().items():
            if v is not None:
                vv = v[a:b] if v.ndim == 2 else v
                inj[k] = vv * unit if unit != 1.0 else vv
        sc = self.given.switch_closed
        return inj, (sc[a:b] if sc is not None and sc.ndim == 2 else sc)


@dataclass
class BatchArrays:
    """A batch's per-step outputs, filled chunk by chunk (``v``/``ll``/``tl``: None when that
    output is not kept)."""

    res: dict[str, np.ndarray]
    vmin_bus: np.ndarray
    vmax_bus: np.ndarray
    conv: np.ndarray
    v: np.ndarray | None
    ll: np.ndarray | None
    tl: np.ndarray | None

    @classmethod
    def empty(
        cls, steps: int, sizes: tuple[int, int, int], keep: tuple[bool, bool, bool]
    ) -> BatchArrays:
        """Arrays for ``steps`` steps; ``sizes``: buses, lines, transformers; ``keep``: whether
        voltages, line and transformer loadings are kept."""
        nb, nl, nt = sizes
        return cls(
            res={k: np.empty(steps) for k in STEP_KEYS},
            vmin_bus=np.full(steps, -1, np.int64),  # -1 where a step has no solution
            vmax_bus=np.full(steps, -1, np.int64),
            conv=np.ones(steps, bool),
            v=np.empty((steps, nb), np.float32) if keep[0] else None,
            ll=np.empty((steps, nl), np.float32) if keep[1] else None,
            tl=np.empty((steps, nt), np.float32) if keep[2] else None,
        )

    def part(self, a: int, b: int) -> dict[str, np.ndarray | None]:
        """Views into the rows ``a .. b`` that one chunk writes."""
        part: dict[str, np.ndarray | None] = {k: arr[a:b] for k, arr in self.res.items()}
        part.update(
            vmin_bus=self.vmin_bus[a:b],
            vmax_bus=self.vmax_bus[a:b],
            ok=self.conv[a:b],
            v=None if self.v is None else self.v[a:b],
            ll=None if self.ll is None else self.ll[a:b],
            tl=None if self.tl is None else self.tl[a:b],
        )
        return part

    def nan_failed(self, a: int, b: int) -> None:
        """NaN in every value of the rows ``a .. b`` whose power flow did not converge."""
        bad_rows = np.flatnonzero(~self.conv[a:b])
        if bad_rows.size:
            for arr in self.res.values():
                arr[a:b][bad_rows] = np.nan
            for opt in (self.v, self.ll, self.tl):
                if opt is not None:
                    opt[a:b][bad_rows] = np.nan

    def result(
        self, grid: Grid, index: Any, engine: str, calc_s: float, meta: dict[str, Any]
    ) -> TimeSeriesResult:
        """The filled arrays as the batch's :class:`TimeSeriesResult` over ``index``."""
        return TimeSeriesResult(
            index=index,
            bus_id=grid.bus.ids,
            line_id=grid.line.ids,
            trafo_id=grid.transformer.ids,
            losses_kw=self.res["losses_kw"],
            vmin_pu=self.res["vmin_pu"],
            vmin_bus=self.vmin_bus,
            vmax_pu=self.res["vmax_pu"],
            vmax_bus=self.vmax_bus,
            max_loading_pct=self.res["max_loading_pct"],
            source_p_mw=self.res["source_p_mw"],
            converged=self.conv,
            engine=engine,
            v_pu=self.v,
            line_loading_pct=self.ll,
            trafo_loading_pct=self.tl,
            calc_s=calc_s,
            meta=meta,
        )
