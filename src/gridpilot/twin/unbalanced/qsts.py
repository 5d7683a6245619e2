"""Quasi-static time series with stateful controls (OpenDSS ``controlmode=time``).

Steps are solved in blocks: one factorisation, many right-hand sides. Within a block the
control state machine (arming after ``delay``, one tap per action then ``tapdelay``,
capacitor steps after ``delay``/``delay_off`` and ``dead_time``) runs over the measured
values step by step; at the first step where a control *acts*, the network is restamped and
refactorised, that step is re-solved until no more actions are due, and the next block
starts after it. Results are folded into running statistics (no per-step voltage arrays).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gridpilot.errors import ValidationError
from gridpilot.twin.unbalanced.lowrank import one_blas_thread
from gridpilot.twin.unbalanced.qsts_stats import Accumulator, QstsResult
from gridpilot.twin.unbalanced.timectl import TimeControls, measure
from gridpilot.twin.unbalanced.twin import UnbalancedTwin

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QstsOptions:
    """Steps, resolution (s), start (h), which load shape to follow and block sizes."""

    steps: int = 96
    resolution_s: float = 900.0
    start_h: float = 0.0
    shape: str = "yearly"  # "yearly" or "daily": which of each load's shapes to use
    block: int = 64
    max_block: int = 512
    min_block: int = 4
    keep_taps: bool = False
    tol_pu: float = 1e-6  # per-step convergence, pu (faststep.fixed_point; OpenDSS's 1e-4)
    engine: str = "auto"  # "compiled" (step loop in numba), "python" (block solves), "auto"
    chunk: int = 2048  # compiled engine: steps whose load powers are built at once
    accel: int = -1  # compiled engine: Anderson depth of the per-step fixed point (0: plain;
    # -1: by feeder size, see qsts_loop.anderson_depth)
    predict: int = -1  # compiled engine: previous steps the warm start of a step is
    # extrapolated from (0: the previous solution alone; -1: 2, see predict.py)
    restart: bool = True  # compiled engine: a control re-solve starts from the linear
    # response to the action (restart.py); False: from the solution before it
    warmup_steps: int = 0  # compiled engine: steps run before ``start_h`` for the controls
    # to settle (not recorded: a time chunk of a longer run, see qsts_parallel)


def shape_table(
    twin: UnbalancedTwin, opts: QstsOptions, first: int = 0, stop: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The load shapes the loads follow, evaluated at steps ``first … stop`` (shapes × steps;
    row 0 all ones: fixed loads and loads with no shape), and the row of each load branch."""
    g = twin.grid
    stop = opts.steps if stop is None else stop
    t_h = opts.start_h + (np.arange(first, stop) + 1) * opts.resolution_s / 3600.0
    rows: dict[str, int] = {}
    table = [np.ones(len(t_h))]
    of_load = np.zeros(len(g.loads), np.int64)
    default = "default" if "default" in g.loadshapes else None
    for i, ld in enumerate(g.loads):
        if ld.status == "fixed":
            continue
        name = (
            (ld.yearly or ld.daily or default) if opts.shape == "yearly" else (ld.daily or default)
        )
        if name is None:
            continue
        if name not in g.loadshapes:
            raise ValidationError(f"{ld.kind}.{ld.name}: unknown loadshape {name!r}")
        if name not in rows:
            rows[name] = len(table)
            table.append(_finite(name, g.loadshapes[name].at(t_h), t_h))
        of_load[i] = rows[name]
    return np.ascontiguousarray(np.array(table)), of_load[twin.loads.load_of]


def _finite(name: str, mult: np.ndarray, t_h: np.ndarray) -> np.ndarray:
    """``mult`` (loadshape ``name`` at hours ``t_h``), or a clear error at its first value
    that is not a finite number."""
    mult = np.asarray(mult, float)
    bad = np.flatnonzero(~np.isfinite(mult))
    if len(bad):
        i = int(bad[0])
        raise ValidationError(
            f"loadshape {name!r}: multiplier {mult[i]} at hour {t_h[i]:g} is not a finite number"
        )
    return mult


def load_multipliers(
    twin: UnbalancedTwin, opts: QstsOptions, first: int = 0, stop: int | None = None
) -> np.ndarray:
    """Multiplier per load branch and step (branches × steps ``first … stop``), from each
    load's shape (each shape evaluated once per call)."""
    table, row = shape_table(twin, opts, first, stop)
    return table[row]


class _Runner:
    """One QSTS run over a twin (keeps the control state and statistics)."""

    def __init__(self, twin: UnbalancedTwin, opts: QstsOptions) -> None:
        self.tw, self.o = twin, opts
        self.ctl = TimeControls()
        self.ctl.tap_ops.update({r.ctl.name.lower(): 0 for r in twin.regs})
        self.ctl.cap_ops.update({c.cap: 0 for c in twin.caps})
        br = twin.net.branch_rows
        self.acc = Accumulator(twin.net.nodes, twin.net.vbase_v, 0 if br is None else br.shape[0])
        rating = (
            np.array([m[3] for m in twin.net.branch_meta]) if twin.net.branch_meta else np.zeros(0)
        )
        self.rating = np.where(rating > 0, rating, np.inf)[:, None]
        self.taps_log: dict[str, list[float]] = {r.ctl.name.lower(): [] for r in twin.regs}
        self.caps_log: dict[str, list[int]] = {}
        self.inv_log: dict[str, tuple[list[float], list[float]]] = {}

    def measure(self, v: np.ndarray) -> tuple[list[np.ndarray], list[dict[str, np.ndarray]]]:
        """The measures of all controls for a block of solved steps."""
        return measure(self.tw, v)

    def sample_and_act(
        self, t_s: float, regs: list[np.ndarray], caps: list[dict[str, float]]
    ) -> bool:
        """One control sample at time ``t_s`` then the actions due; True if any acted."""
        return self.ctl.sample_and_act(self.tw, t_s, regs, caps)

    def record(
        self,
        v: np.ndarray,
        s: np.ndarray,
        taps: dict[str, float] | None = None,
        caps: dict[str, list[int]] | None = None,
    ) -> None:
        """Fold solved steps into the statistics (``taps``: those the steps were solved at;
        an ``InverterTwin``'s inverters at the set points its last solve settled on)."""
        last = getattr(self.tw, "last", None)
        if last is not None:
            s = self.tw.settled_powers(s)  # type: ignore[attr-defined]
        loss = self.tw.losses_va(v, s).real / 1e3
        br = self.tw.net.branch_rows
        loading = np.abs(br @ v) / self.rating if br is not None else None
        self.acc.add(v, loss, loading)
        if self.o.keep_taps:
            for name, tap in (taps or self.tw.taps()).items():
                self.taps_log[name].extend([tap] * v.shape[1])
            for name, st in (caps or self.tw.cap_states()).items():
                self.caps_log.setdefault(name, []).extend([sum(st)] * v.shape[1])
            if last is not None:
                for i, name in enumerate(last.names):
                    self.inv_log.setdefault(name, ([], []))
                    self.inv_log[name][0].extend(last.p_kw[i, : v.shape[1]])
                    self.inv_log[name][1].extend(last.q_kvar[i, : v.shape[1]])


def run_qsts(
    twin: UnbalancedTwin,
    opts: QstsOptions,
    progress: Callable[[int, int], None] | None = None,
) -> QstsResult:
    """Run ``opts.steps`` steps of ``opts.resolution_s`` seconds with stateful controls.

    Returns a :class:`QstsResult` (voltage extremes and hours outside Range A per
    node-phase, unbalance, losses, tap and capacitor operations per device, overloads)."""
    _check(opts)
    t0 = time.perf_counter()
    f0 = twin.factorisations
    saved = twin.opts
    twin.opts = dataclasses.replace(saved, tol_pu=opts.tol_pu)
    try:  # small dense BLAS calls in the loop: threads only add waiting (2-core machine: 500x)
        with one_blas_thread():
            return _run(twin, opts, progress, t0, f0)
    finally:
        twin.opts = saved


MAX_STEPS = 100_000_000  # a run keeps one loss value per step: 800 MB at most (3 years at 1 s)


def _check(opts: QstsOptions) -> None:
    """Options a run cannot start with: a clear error naming the field and the value."""
    if opts.steps <= 0 or not 0 < opts.resolution_s < np.inf:
        raise ValidationError(
            f"steps and resolution must be > 0, got {opts.steps}, {opts.resolution_s}"
        )
    if opts.steps > MAX_STEPS:
        raise ValidationError(
            f"steps must be at most {MAX_STEPS:,} in one run (split a longer study into "
            f"runs of time chunks), got {opts.steps:,}"
        )
    if not 0 < opts.tol_pu < np.inf:
        raise ValidationError(f"tol_pu must be a tolerance > 0 (pu), got {opts.tol_pu}")
    if opts.chunk < 1:
        raise ValidationError(f"chunk must be at least 1 step, got {opts.chunk}")


def _run(
    twin: UnbalancedTwin,
    opts: QstsOptions,
    progress: Callable[[int, int], None] | None,
    t0: float,
    f0: int,
) -> QstsResult:
    if opts.engine not in ("auto", "compiled", "python"):
        raise ValidationError(f"engine must be auto, compiled or python, got {opts.engine!r}")
    why: str | None = "engine='python' was asked"
    if opts.engine != "python":
        from gridpilot.twin.unbalanced.qsts_fast import unsupported

        why = unsupported(twin)
        if why is None:
            from gridpilot.twin.unbalanced.qsts_loop import run_compiled

            return run_compiled(twin, opts, progress, t0)
        if opts.engine == "compiled":
            raise ValidationError(f"engine: the compiled QSTS cannot run this twin: {why}")
        log.info("QSTS on the Python engine: %s", why)
    if opts.warmup_steps > 0:  # the Python runner has no warm-up: refuse, never ignore
        raise ValidationError(
            f"warmup_steps={opts.warmup_steps} needs the compiled QSTS engine, which does not "
            f"run here: {why}"
        )
    run = _Runner(twin, opts)
    s_all = twin.loads.s_va[:, None] * load_multipliers(twin, opts)
    return _loop(twin, opts, progress, t0, f0, run, s_all)


def _loop(  # noqa: PLR0913
    twin: UnbalancedTwin,
    opts: QstsOptions,
    progress: Callable[[int, int], None] | None,
    t0: float,
    f0: int,
    run: _Runner,
    s_all: np.ndarray,
) -> QstsResult:
    k, block, warm = 0, opts.block, None
    while k < opts.steps:
        stop = min(k + block, opts.steps)
        s = s_all[:, k:stop]
        v0 = None if warm is None else np.repeat(warm[:, None], stop - k, axis=1)
        v, _ = twin.solve(s, v0)
        taps, caps = twin.taps(), twin.cap_states()
        j = _scan(run, v, k)
        if j is None:
            run.record(v, s)
            warm, k = v[:, -1], stop
            block = min(block * 2, opts.max_block)
        else:
            if j:
                run.record(v[:, :j], s[:, :j], taps, caps)
            warm = _settle(run, s[:, j : j + 1], v[:, j], k + j)
            k += j + 1
            block = max(opts.min_block, min(2 * (j + 1), opts.max_block))
        if progress:
            progress(k, opts.steps)
    return _result(run, opts, time.perf_counter() - t0, twin.factorisations - f0)


def _t_s(opts: QstsOptions, step: int) -> float:
    return opts.start_h * 3600.0 + (step + 1) * opts.resolution_s


def _scan(run: _Runner, v: np.ndarray, k: int) -> int | None:
    """Run the control state machine over a solved block; the first step that acted."""
    if not run.tw.regs and not run.tw.caps:
        return None
    regs, caps = run.measure(v)
    for j in range(v.shape[1]):
        r = [x[:, j] for x in regs]
        c = [{key: float(val[j]) for key, val in m.items()} for m in caps]
        if run.sample_and_act(_t_s(run.o, k + j), r, c):
            return j
    return None


def _settle(run: _Runner, s: np.ndarray, v: np.ndarray, step: int) -> np.ndarray:
    """Re-solve one step after control actions until none is due; record it."""
    vv = v[:, None]
    for _ in range(100):
        vv, _ = run.tw.solve(s, vv)
        regs, caps = run.measure(vv)
        r = [x[:, 0] for x in regs]
        c = [{key: float(val[0]) for key, val in m.items()} for m in caps]
        if not run.sample_and_act(_t_s(run.o, step), r, c):
            break
    run.record(vv, s)
    return vv[:, 0]


def _result(run: _Runner, opts: QstsOptions, elapsed: float, factorisations: int) -> QstsResult:
    a, h = run.acc, opts.resolution_s / 3600.0
    return QstsResult(
        grid=run.tw.grid.name,
        steps=a.steps,
        resolution_s=opts.resolution_s,
        nodes=a.nodes,
        vmin_pu=a.vmin,
        vmax_pu=a.vmax,
        hours_outside_a=a.outside * h,
        vuf_buses=a.buses,
        vuf_max_pct=a.vuf_max,
        vuf_hours_above_2pct=a.vuf_above * h,
        losses_kw=np.concatenate(a.loss_kw) if a.loss_kw else np.zeros(0),
        tap_ops=run.ctl.tap_ops,
        cap_ops=run.ctl.cap_ops,
        branch_meta=run.tw.net.branch_meta,
        overload_hours=a.overload * h,
        max_loading=a.max_loading,
        elapsed_s=elapsed,
        factorisations=factorisations,
        tap_series={k: np.asarray(v) for k, v in run.taps_log.items()},
        cap_series={k: np.asarray(v) for k, v in run.caps_log.items()},
        inverter_p_kw={k: np.asarray(v[0]) for k, v in run.inv_log.items()},
        inverter_q_kvar={k: np.asarray(v[1]) for k, v in run.inv_log.items()},
    )
