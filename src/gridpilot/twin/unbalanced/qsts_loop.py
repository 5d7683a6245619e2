"""Drive the compiled QSTS step loop chunk by chunk and collect its :class:`QstsResult`.

Memory is bounded by one chunk of load powers (branches × ``chunk`` complex) plus the
statistics and one loss value per step; no per-step voltages are kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from gridpilot.errors import ConvergenceError
from gridpilot.twin.unbalanced.faststep import Run, run_chunk
from gridpilot.twin.unbalanced.qsts_fast import pack, write_back
from gridpilot.twin.unbalanced.qsts_stats import Accumulator, QstsResult
from gridpilot.twin.unbalanced.schur import schur_solve

if TYPE_CHECKING:
    from gridpilot.twin.unbalanced.qsts import QstsOptions
    from gridpilot.twin.unbalanced.twin import UnbalancedTwin


def _rating(twin: UnbalancedTwin) -> np.ndarray:
    meta = twin.net.branch_meta
    rating = np.array([m[3] for m in meta], float) if meta else np.zeros(0)
    return np.where(rating > 0, rating, np.inf)


def run_compiled(
    twin: UnbalancedTwin,
    opts: QstsOptions,
    progress: Callable[[int, int], None] | None,
    t0: float,
) -> QstsResult:
    """Run ``opts`` on the compiled engine (same rules as the Python runner)."""
    from gridpilot.twin.unbalanced.qsts import load_multipliers

    br = twin.net.branch_rows
    acc = Accumulator(twin.net.nodes, twin.net.vbase_v, 0 if br is None else br.shape[0])
    opt = np.array([opts.tol_pu, float(twin.opts.max_iter), float(max(opts.accel, 0))])
    run = pack(twin, acc, _rating(twin), opt)
    v = np.zeros(twin.net.n, complex)
    schur_solve(run.f, twin.net.i_source.astype(complex), v)
    loss = np.zeros(opts.steps)
    n_log = len(run.rg.stamp) + int(np.sum(run.st.kind == 1))
    logs = np.zeros((n_log, opts.steps)) if opts.keep_taps else np.zeros((0, 0))
    t_base, iters = opts.start_h * 3600.0, 0
    for k0 in range(0, opts.steps, opts.chunk):
        k1 = min(k0 + opts.chunk, opts.steps)
        s = np.ascontiguousarray(twin.loads.s_va[:, None] * load_multipliers(twin, opts, k0, k1))
        lg = np.zeros((n_log, k1 - k0)) if opts.keep_taps else np.zeros((0, 0))
        done, it = run_chunk(run, s, k0, t_base, opts.resolution_s, v, loss[k0:k1], lg)
        iters += it
        if opts.keep_taps:
            logs[:, k0:k1] = lg
        if done < k1 - k0:
            write_back(twin, run)
            raise ConvergenceError(
                f"{twin.grid.name}: power flow did not converge in {twin.opts.max_iter} "
                f"iterations at step {k0 + done}",
                steps=[k0 + done],
            )
        if progress:
            progress(k1, opts.steps)
    write_back(twin, run)
    acc.steps = opts.steps
    return _result(twin, opts, run, acc, loss, logs, time.perf_counter() - t0, iters)


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
    if opts.keep_taps:
        tap_series = {s.ctl.name.lower(): logs[i] for i, s in enumerate(twin.regs)}
        stamped = list(twin.net.cap_stamps)
        nr = len(twin.regs)
        for name, st in twin.cap_states().items():
            j = stamped.index(name) if name in stamped else -1
            cap_series[name] = (
                logs[nr + j].astype(int) if j >= 0 else np.full(opts.steps, sum(st), int)
            )
    return QstsResult(
        grid=twin.grid.name, steps=acc.steps, resolution_s=opts.resolution_s, nodes=acc.nodes,
        vmin_pu=acc.vmin, vmax_pu=acc.vmax, hours_outside_a=acc.outside * h,
        vuf_buses=acc.buses, vuf_max_pct=acc.vuf_max, vuf_hours_above_2pct=acc.vuf_above * h,
        losses_kw=loss, tap_ops=tap_ops, cap_ops=cap_ops, branch_meta=twin.net.branch_meta,
        overload_hours=acc.overload * h, max_loading=acc.max_loading, elapsed_s=elapsed,
        factorisations=1, iterations=iters, tap_series=tap_series, cap_series=cap_series,
    )  # fmt: skip
