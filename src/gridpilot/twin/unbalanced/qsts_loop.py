"""Drive the compiled QSTS step loop chunk by chunk and collect its :class:`QstsResult`.

Memory is bounded by one chunk of load powers (branches × ``chunk`` complex) plus the
statistics and one loss value per step; no per-step voltages are kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from gridpilot.errors import ConvergenceError, ValidationError
from gridpilot.kernels import check_caches_once
from gridpilot.twin.unbalanced.faststep import Run, Steps, run_chunk
from gridpilot.twin.unbalanced.qsts_fast import pack, stat_arrays, write_back
from gridpilot.twin.unbalanced.qsts_stats import Accumulator, QstsResult
from gridpilot.twin.unbalanced.schur import schur_solve

if TYPE_CHECKING:
    from gridpilot.twin.unbalanced.qsts import QstsOptions
    from gridpilot.twin.unbalanced.twin import UnbalancedTwin


def _rating(twin: UnbalancedTwin) -> np.ndarray:
    meta = twin.net.branch_meta
    rating = np.array([m[3] for m in meta], float) if meta else np.zeros(0)
    return np.where(rating > 0, rating, np.inf)


LARGE_FEEDER = 1000  # load branches from which the deeper Anderson history pays


def anderson_depth(accel: int, load_branches: int) -> int:
    """Anderson depth of the compiled loop: ``accel`` when given (>= 0), else 3 on feeders
    under ``LARGE_FEEDER`` load branches and 8 above. Measured (96-288 steps of 15 min,
    history kept across steps): ieee123 6.0 iterations per step at 3, 6.9 at 8; ieee8500
    16.6 at 3, 13.1 at 8."""
    if accel < -1:
        raise ValidationError(f"accel must be -1 (auto), 0 (plain) or a depth, got {accel}")
    if accel >= 0:
        return accel
    return 3 if load_branches < LARGE_FEEDER else 8


PRED_PAIRS = 2  # default pairs of the step predictor
OP_STEPS = 96  # steps whose mean load powers linearise the re-solve response (restart)


def mean_powers(twin: UnbalancedTwin, opts: QstsOptions) -> np.ndarray | None:
    """The load powers (VA per branch) averaged over the ``OP_STEPS`` steps from the run's
    start, however many it has (a run's first steps do not depend on its length): the
    operating point of the re-solve response (:mod:`.response`); None without it."""
    from gridpilot.twin.unbalanced.qsts import shape_table

    if not opts.restart:
        return None
    table, row = shape_table(twin, opts, 0, OP_STEPS)
    return np.asarray(twin.loads.s_va * table.mean(axis=1)[row], complex)


def predictor_pairs(predict: int) -> int:
    """Pairs the step predictor fits (``QstsOptions.predict``: -1 = ``PRED_PAIRS``). Measured
    (96 steps of 15 min, bench shape): ieee8500 13.2 → 11.9 iterations per step with 2 or 3
    pairs, ieee123 6.0 → 4.6 (2) / 4.7 (3)."""
    if predict < -1:
        raise ValidationError(f"predict must be -1 (auto), 0 (off) or pairs, got {predict}")
    return PRED_PAIRS if predict < 0 else predict


def run_compiled(
    twin: UnbalancedTwin,
    opts: QstsOptions,
    progress: Callable[[int, int], None] | None,
    t0: float,
) -> QstsResult:
    """Run ``opts`` on the compiled engine (same rules as the Python runner)."""
    check_caches_once()
    br = twin.net.branch_rows
    acc = Accumulator(twin.net.nodes, twin.net.vbase_v, 0 if br is None else br.shape[0])
    depth = anderson_depth(opts.accel, twin.loads.m)
    pairs = predictor_pairs(opts.predict)
    opt = np.array([opts.tol_pu, float(twin.opts.max_iter), float(depth), float(pairs),
                    float(opts.restart)])  # fmt: skip
    f0 = twin.factorisations
    run = pack(twin, acc, _rating(twin), opt, mean_powers(twin, opts))
    v = np.zeros(twin.net.n, complex)
    schur_solve(run.f, twin.net.i_source.astype(complex), v)
    setup = time.perf_counter() - t0
    n_log = len(run.rg.stamp) + int(np.sum(run.st.kind == 1)) + 2 * len(run.iv.nrows)
    w = max(opts.warmup_steps, 0)
    if w:
        scratch = Accumulator(twin.net.nodes, twin.net.vbase_v, len(run.sa.rating))
        warm = run._replace(sa=stat_arrays(twin, scratch, run.sa.rating))
        _steps(twin, opts, warm, v, -w, 0, np.zeros(w), np.zeros((0, 0)), None)
        run.rg.ops[:] = 0
        run.cp.ops[:] = 0
    loss = np.zeros(opts.steps)
    logs = np.zeros((n_log, opts.steps)) if opts.keep_taps else np.zeros((0, 0))
    c0 = time.process_time()
    iters = _steps(twin, opts, run, v, 0, opts.steps, loss, logs, progress)
    cpu = time.process_time() - c0
    write_back(twin, run)
    _inverters_back(twin, run)
    acc.steps = opts.steps
    res = _result(twin, opts, run, acc, loss, logs, time.perf_counter() - t0, iters)
    res.setup_s, res.warmup_steps, res.loop_cpu_s = setup, w, cpu
    res.factorisations = twin.factorisations - f0
    return res


def _steps(  # noqa: PLR0913
    twin: UnbalancedTwin, opts: QstsOptions, run: Run, v: np.ndarray, first: int, stop: int,
    loss: np.ndarray, logs: np.ndarray, progress: Callable[[int, int], None] | None,
) -> int:  # fmt: skip
    """Steps ``first … stop`` (relative to ``opts.start_h``) in chunks; iterations taken."""
    from gridpilot.twin.unbalanced.qsts import shape_table

    iters, n_log = 0, logs.shape[0]
    s_va = np.ascontiguousarray(twin.loads.s_va, complex)
    for k0 in range(first, stop, opts.chunk):
        k1 = min(k0 + opts.chunk, stop)
        # the shapes' values only (a few rows): the loop builds each step's powers, where a
        # branches × steps array cost ieee8500 a week ~10 % more CPU (a fresh 25 MB a week)
        mult, row = shape_table(twin, opts, k0, k1)
        lg = np.zeros((n_log, k1 - k0)) if logs.shape[1] else np.zeros((0, 0))
        a, b = k0 - first, k1 - first
        done, it = run_chunk(run, Steps(s_va, mult, row), k0, opts.start_h * 3600.0,
                             opts.resolution_s, v, loss[a:b], lg)  # fmt: skip
        iters += it
        if logs.shape[1]:
            logs[:, a:b] = lg
        if done < k1 - k0:
            write_back(twin, run)
            if run.iv.cnt[2]:
                raise ConvergenceError(
                    f"{twin.grid.name}: inverter controls did not settle in "
                    f"{int(run.iv.opt[1])} control iterations at step {k0 + done}",
                    steps=[k0 + done],
                )
            raise ConvergenceError(
                f"{twin.grid.name}: power flow did not converge in {twin.opts.max_iter} "
                f"iterations at step {k0 + done}",
                steps=[k0 + done],
            )
        if progress and k1 > 0:
            progress(k1, stop)
    return iters


def _inverters_back(twin: UnbalancedTwin, run: Run) -> None:
    """An ``InverterTwin``'s ``last`` state and control-iteration count from the run."""
    iv = run.iv
    if not len(iv.nrows):
        return
    from gridpilot.twin.unbalanced.inverters import InverterState, InverterTwin

    if isinstance(twin, InverterTwin):
        twin.control_iterations += int(iv.cnt[1])
        twin.last = InverterState(list(twin.inv.names), iv.p[:, None].copy(),
                                  iv.q[:, None].copy(), iv.vm[:, None].copy(), 0)  # fmt: skip


def _result(  # noqa: PLR0913
    twin: UnbalancedTwin, opts: QstsOptions, run: Run, acc: Accumulator, loss: np.ndarray,
    logs: np.ndarray, elapsed: float, iters: int,
) -> QstsResult:  # fmt: skip
    h = opts.resolution_s / 3600.0
    tap_ops = {s.ctl.name.lower(): int(run.rg.ops[i]) for i, s in enumerate(twin.regs)}
    cap_ops = {s.cap: 0 for s in twin.caps}
    for i, s in enumerate(twin.caps):
        cap_ops[s.cap] += int(run.cp.ops[i])
    tap_series: dict[str, np.ndarray] = {}
    cap_series: dict[str, np.ndarray] = {}
    inv_p: dict[str, np.ndarray] = {}
    inv_q: dict[str, np.ndarray] = {}
    if opts.keep_taps:
        tap_series = {s.ctl.name.lower(): logs[i] for i, s in enumerate(twin.regs)}
        stamped = list(twin.net.cap_stamps)
        nr = len(twin.regs)
        for name, st in twin.cap_states().items():
            j = stamped.index(name) if name in stamped else -1
            cap_series[name] = (
                logs[nr + j].astype(int) if j >= 0 else np.full(opts.steps, sum(st), int)
            )
        ni, j0 = len(run.iv.nrows), nr + len(stamped)
        names = list(getattr(getattr(twin, "inv", None), "names", []))[:ni]
        inv_p = {n: logs[j0 + i].copy() for i, n in enumerate(names)}
        inv_q = {n: logs[j0 + ni + i].copy() for i, n in enumerate(names)}
    return QstsResult(
        grid=twin.grid.name, steps=acc.steps, resolution_s=opts.resolution_s, nodes=acc.nodes,
        vmin_pu=acc.vmin, vmax_pu=acc.vmax, hours_outside_a=acc.outside * h,
        vuf_buses=acc.buses, vuf_max_pct=acc.vuf_max, vuf_hours_above_2pct=acc.vuf_above * h,
        losses_kw=loss, tap_ops=tap_ops, cap_ops=cap_ops, branch_meta=twin.net.branch_meta,
        overload_hours=acc.overload * h, max_loading=acc.max_loading, elapsed_s=elapsed,
        factorisations=0, iterations=iters, tap_series=tap_series, cap_series=cap_series,
        inverter_p_kw=inv_p, inverter_q_kvar=inv_q,
    )  # fmt: skip
