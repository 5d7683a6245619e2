"""The compiled QSTS engine (numba step loop, Schur-complement solves) against the Python
runner and against OpenDSS: same operations, same statistics, any chunking."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gridpilot.errors import ValidationError
from gridpilot.model import load_grid
from gridpilot.model.importers.opendss import DssSession, grid_from_session
from gridpilot.model.threephase.builtin import feeder_master
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.network import variable_y
from gridpilot.twin.unbalanced.qsts_fast import unsupported
from gridpilot.twin.unbalanced.reference import add_shape, dss_qsts, reset_taps
from gridpilot.twin.unbalanced.schur import build_schur, schur_solve


def _shape(n: int, minutes: float, seed: int = 3) -> np.ndarray:
    t = np.arange(n) * minutes / 60.0
    rng = np.random.default_rng(seed)
    return 0.5 + 0.4 * np.sin(2 * np.pi * (t - 8) / 24) ** 2 + 0.06 * rng.standard_normal(n)


def _twin(master: Path, mult: np.ndarray, minutes: float) -> tuple[DssSession, UnbalancedTwin]:
    s = DssSession()
    s.compile(master)
    reset_taps(s)
    add_shape(s, "q", mult, minutes)
    return s, UnbalancedTwin(grid_from_session(s, master.stem))


def test_schur_solve_is_as_accurate_as_the_full_factorisation() -> None:
    _, tw = _twin(feeder_master("ieee13"), _shape(4, 15), 15)
    rng = np.random.default_rng(0)
    b = rng.standard_normal(tw.net.n) + 1j * rng.standard_normal(tw.net.n)
    f = build_schur(tw.net, tw.y_loads)
    out = np.zeros(tw.net.n, complex)
    schur_solve(f, b, out)
    ref = tw.factor().solve(b[:, None])[:, 0]
    y = tw.net.y_fixed + variable_y(tw.net) + tw.y_loads
    res_ours, res_ref = np.abs(y @ out - b).max(), np.abs(y @ ref - b).max()
    assert res_ours <= 10 * res_ref + 1e-12 * np.abs(b).max()
    assert np.abs(out - ref).max() <= 1e-7 * np.abs(ref).max()  # Y is ill-conditioned
    assert len(f.kn) > 0 and len(f.nk) + len(f.kn) == tw.net.n


def test_compiled_engine_matches_python_runner_and_opendss() -> None:
    steps = 96
    mult = _shape(steps, 15)
    s, tw = _twin(feeder_master("ieee13"), mult, 15)
    fast = tw.qsts(steps, 900.0, engine="compiled", keep_taps=True)
    _, tw2 = _twin(feeder_master("ieee13"), mult, 15)
    slow = tw2.qsts(steps, 900.0, engine="python", keep_taps=True)
    ref = dss_qsts(s, steps, 900.0)
    assert sum(ref.tap_ops.values()) > 10
    assert fast.tap_ops == slow.tap_ops == ref.tap_ops
    for name, series in fast.tap_series.items():
        assert np.array_equal(series, slow.tap_series[name])
    assert np.abs(fast.vmin_pu - slow.vmin_pu).max() < 1e-6
    assert np.abs(fast.vmax_pu - slow.vmax_pu).max() < 1e-6
    assert np.abs(fast.losses_kw - slow.losses_kw).max() < 1e-3 * np.abs(slow.losses_kw).max()
    assert np.abs(fast.max_loading - slow.max_loading).max() < 1e-5
    assert np.abs(fast.vuf_max_pct - slow.vuf_max_pct).max() < 1e-4
    # the compiled statistics compare squared magnitudes: the same counts
    assert np.array_equal(fast.hours_outside_a, slow.hours_outside_a)
    assert fast.hours_outside_a.max() > 0
    assert np.array_equal(fast.vuf_hours_above_2pct, slow.vuf_hours_above_2pct)
    assert np.array_equal(fast.overload_hours, slow.overload_hours)
    assert fast.iterations >= steps and fast.factorisations == 1
    assert tw.taps() == tw2.taps()  # the twin is left where the run ended


def test_chunks_do_not_change_the_run() -> None:
    steps = 60
    mult = _shape(steps, 15)
    _, tw = _twin(feeder_master("ieee13"), mult, 15)
    a = tw.qsts(steps, 900.0, engine="compiled")
    _, tw2 = _twin(feeder_master("ieee13"), mult, 15)
    b = tw2.qsts(steps, 900.0, engine="compiled", chunk=7)
    assert a.tap_ops == b.tap_ops
    assert np.array_equal(a.vmin_pu, b.vmin_pu) and np.array_equal(a.losses_kw, b.losses_kw)


def _ieee123_pair(steps: int, kw_a: dict[str, Any], kw_b: dict[str, Any]) -> tuple[Any, Any]:
    """ieee123 under the same 15-min shape (seed 1), run compiled with two sets of options."""
    mult = _shape(steps, 15, seed=1)
    out = []
    for kw in (kw_a, kw_b):
        _, tw = _twin(feeder_master("ieee123"), mult, 15)
        out.append(tw.qsts(steps, 900.0, engine="compiled", **kw))
    return out[0], out[1]


def test_plain_fixed_point_and_anderson_reach_the_same_run() -> None:
    steps = 48
    mult = _shape(steps, 15)
    _, tw = _twin(feeder_master("ieee13"), mult, 15)
    a = tw.qsts(steps, 900.0, engine="compiled", accel=0)
    _, tw2 = _twin(feeder_master("ieee13"), mult, 15)
    b = tw2.qsts(steps, 900.0, engine="compiled", accel=3)
    assert a.tap_ops == b.tap_ops
    assert np.abs(a.vmin_pu - b.vmin_pu).max() < 1e-6


def test_deep_anderson_history_kept_across_steps_reaches_the_plain_run() -> None:
    # depth 8 with pairs from earlier steps: a stalled mix must not pass as converged (it
    # did once on this run: an extreme 1.6e-4 pu off), and it must cost fewer iterations
    # (re-solves from the plain start: from the linearised response the plain fixed point
    # needs as few, measured 1938 against 1947; plain starts 2301 against 2127)
    a, b = _ieee123_pair(480, {"accel": 0, "restart": False}, {"accel": 8, "restart": False})
    ops_a, ops_b = sum(a.tap_ops.values()), sum(b.tap_ops.values())
    assert ops_a > 100 and abs(ops_a - ops_b) <= 0.01 * ops_a
    assert np.abs(a.vmin_pu - b.vmin_pu).max() < 1e-5
    assert np.abs(a.vmax_pu - b.vmax_pu).max() < 1e-5
    assert b.iterations < a.iterations


def test_anderson_depth_auto_and_bad_value() -> None:
    from gridpilot.twin.unbalanced.qsts_loop import LARGE_FEEDER, anderson_depth

    assert anderson_depth(-1, 95) == 3 and anderson_depth(-1, LARGE_FEEDER) == 8
    assert anderson_depth(0, 5000) == 0 and anderson_depth(5, 10) == 5
    _, tw = _twin(feeder_master("ieee13"), _shape(4, 15), 15)
    with pytest.raises(ValidationError, match=r"accel must be .* got -2"):
        tw.qsts(4, 900.0, engine="compiled", accel=-2)


def test_unknown_engine_is_a_named_error_and_overridden_solve_falls_back() -> None:
    _, tw = _twin(feeder_master("ieee13"), _shape(4, 15), 15)
    with pytest.raises(ValidationError, match="engine"):
        tw.qsts(4, 900.0, engine="gpu")

    class Custom(UnbalancedTwin):
        def solve(self, s_steps: np.ndarray, v0: np.ndarray | None = None):  # type: ignore[no-untyped-def]
            return super().solve(s_steps, v0)

    c = Custom(tw.grid)
    assert unsupported(c) is not None and unsupported(tw) is None
    with pytest.raises(ValidationError, match="compiled"):
        c.qsts(4, 900.0, engine="compiled")
    assert c.qsts(4, 900.0).steps == 4  # auto: the Python runner


def test_time_chunks_with_warmup_merge_into_one_run() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from gridpilot.twin.unbalanced.qsts import QstsOptions
    from gridpilot.twin.unbalanced.qsts_parallel import qsts_on, time_chunks

    steps = 96
    mult = _shape(steps, 15)
    _, tw = _twin(feeder_master("ieee13"), mult, 15)
    grid = tw.grid
    whole = UnbalancedTwin(grid).qsts(steps, 900.0)
    opts = QstsOptions(steps=steps, resolution_s=900.0)
    chunks = time_chunks(opts, 3, 8)
    assert [c.steps for c in chunks] == [32, 32, 32] and chunks[1].warmup_steps == 8
    assert chunks[2].start_h == pytest.approx(16.0)
    with ThreadPoolExecutor(2) as ex:
        split = qsts_on(ex, grid, opts, parts=3, warmup_steps=8)
    assert split.steps == steps and len(split.losses_kw) == steps
    assert split.warmup_steps == 16
    # the first chunk is exact; later ones start from settled controls after the warm-up
    assert np.allclose(split.losses_kw[:32], whole.losses_kw[:32])
    ops_whole, ops_split = sum(whole.tap_ops.values()), sum(split.tap_ops.values())
    assert abs(ops_split - ops_whole) <= 0.25 * ops_whole
    # regulators may rest elsewhere in their band after a warm-up: within a band's width
    assert np.abs(split.vmax_pu - whole.vmax_pu).max() < 1e-2


def test_compiled_kernels_are_cached_after_a_run() -> None:
    """Every cached kernel of the engine has on-disk code after one run (so ``gridpilot
    warmup`` covers them and the CLI does not announce a compile on each start)."""
    from gridpilot.kernels import cold_modules

    _, tw = _twin(feeder_master("ieee13"), _shape(4, 15), 15)
    tw.qsts(2, 900.0)
    mods = [f"gridpilot.twin.unbalanced.{m}" for m in ("schur", "fastctl", "faststep", "loads")]
    assert cold_modules(mods) == []


def test_step_predictor_is_exact_on_a_linear_map() -> None:
    from gridpilot.twin.unbalanced.predict import close, make_pred, predict

    rng = np.random.default_rng(0)
    jac = rng.standard_normal((6, 4)) + 1j * rng.standard_normal((6, 4))
    s_p, s_q = rng.standard_normal(4), rng.standard_normal(4)  # P and Q on two shapes
    v0 = rng.standard_normal(6) + 0j
    p = make_pred(2, 6, 4)
    v = v0.copy()
    for t, (a, b) in enumerate([(1.0, 0.5), (1.3, 0.7), (0.8, 0.9), (1.1, 0.2)]):
        s = a * s_p + 1j * b * s_q
        exact = v0 + jac @ s.real + 1j * (jac @ s.imag)
        predict(p, s, v)
        if t == 3:  # two pairs span both shapes: the start is the solution
            assert np.abs(v - exact).max() < 1e-6 * np.abs(exact - v0).max()
        v[:] = exact
        close(p, v)


def test_step_predictor_keeps_the_run_and_saves_iterations() -> None:
    # the warm start extrapolated from the previous steps moves only the start: the same
    # operations per regulator, extremes within the tolerance, fewer iterations
    a, b = _ieee123_pair(192, {"predict": 0}, {})
    assert sum(a.tap_ops.values()) > 100 and a.tap_ops == b.tap_ops
    assert np.abs(a.vmin_pu - b.vmin_pu).max() < 1e-6
    assert np.abs(a.vmax_pu - b.vmax_pu).max() < 1e-6
    assert b.iterations < 0.85 * a.iterations
    with pytest.raises(ValidationError, match=r"predict must be .* got -2"):
        UnbalancedTwin(load_grid("ieee13")).qsts(4, 900.0, engine="compiled", predict=-2)


def test_restart_from_the_linear_response_keeps_the_run_and_saves_iterations() -> None:
    # a control re-solve starting from the response to the tap move or capacitor step
    # moves only the start: the same operations per device, extremes within the tolerance,
    # fewer iterations (measured 192 steps: 4.60 -> 4.24 per step)
    a, b = _ieee123_pair(192, {"restart": False}, {})
    assert sum(a.tap_ops.values()) > 100 and a.tap_ops == b.tap_ops
    assert a.cap_ops == b.cap_ops
    assert np.abs(a.vmin_pu - b.vmin_pu).max() < 1e-6
    assert np.abs(a.vmax_pu - b.vmax_pu).max() < 1e-6
    assert b.iterations < 0.95 * a.iterations


def test_restart_response_of_a_tap_is_its_ratio_downstream() -> None:
    # ieee13's regulators scale their phase downstream: the measured relative response of
    # each is ~1 (per log of the tap) at the far end of its phase and ~0 at the source
    from gridpilot.twin.unbalanced.qsts import QstsOptions
    from gridpilot.twin.unbalanced.qsts_fast import pack
    from gridpilot.twin.unbalanced.qsts_stats import Accumulator

    tw = UnbalancedTwin(load_grid("ieee13"))
    acc = Accumulator(tw.net.nodes, tw.net.vbase_v, 0)
    run = pack(tw, acc, np.zeros(0), np.array([QstsOptions().tol_pu, 50.0, 3.0, 2.0, 1.0]))
    assert len(run.rg.stamp) == 3
    for r in range(3):
        g = run.rs.g[run.rs.row[run.rg.stamp[r]]]
        assert np.abs(g).max() > 0.5  # the regulated phase downstream
        assert np.abs(g).min() < 1e-3  # the source side does not move
    off = pack(tw, acc, np.zeros(0), np.array([QstsOptions().tol_pu, 50.0, 3.0, 2.0, 0.0]))
    assert off.rs.g.shape[0] == 0 and (off.rs.row < 0).all()


def test_uncontrolled_capacitors_are_factorised_and_a_change_factorises_again() -> None:
    """ieee123's four capacitors have no CapControl: they stay out of the Schur nodes, and
    opening one between two runs of the same twin gives the run of a fresh twin with it
    open (one more factorisation), not the run with the bank still closed."""
    from gridpilot.twin.unbalanced.qsts_fast import engine
    from gridpilot.twin.unbalanced.schur import variable_nodes

    tw = UnbalancedTwin(load_grid("ieee123"))
    assert not tw.caps
    eng = engine(tw)
    assert len(eng.f.kq) == len(variable_nodes(tw.net, set())) < len(variable_nodes(tw.net))
    taps0 = {s.ctl.name: tw.grid.transformer(s.xf).windings[s.ctl.tap_winding - 1].tap
             for s in tw.regs}  # fmt: skip
    before = tw.qsts(24, 900.0)
    for reg, tap in taps0.items():  # the run left its taps: back to the fresh twin's
        tw.set_tap(reg, tap)
    name = tw.grid.capacitors[0].name
    tw.set_cap(name, [0] * len(tw.grid.capacitors[0].states))
    f0 = tw.factorisations
    after = tw.qsts(24, 900.0)
    assert tw.factorisations == f0 + 1
    fresh = UnbalancedTwin(load_grid("ieee123"))
    fresh.set_cap(name, [0] * len(fresh.grid.capacitors[0].states))
    ref = fresh.qsts(24, 900.0)
    np.testing.assert_allclose(after.vmin_pu, ref.vmin_pu, atol=1e-9)
    np.testing.assert_allclose(after.losses_kw, ref.losses_kw, rtol=1e-9)
    assert np.abs(after.vmin_pu - before.vmin_pu).max() > 1e-4  # the bank mattered
