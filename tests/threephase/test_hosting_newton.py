"""Hosting capacity's chord (fixed-Jacobian Newton) columns and linear unbalance estimate."""

from __future__ import annotations

import numpy as np

from gridpilot.twin.hosting import HostingOptions, Scenario, hosting_capacity
from gridpilot.twin.hosting.feeder import Feeder, phase_nodes
from gridpilot.twin.hosting.sensitivity import estimate_kw, unbalance_crossing
from gridpilot.twin.hosting.study import settle_base
from gridpilot.twin.unbalanced import SolveOptions, unbalance_factor

from .conftest import session_and_grid

LIGHT = Scenario("light", 0, 0.4, 1.0)


def _base(name: str):  # type: ignore[no-untyped-def]
    g = session_and_grid(name)[1]
    nodes = phase_nodes(g)
    fd = Feeder(g, nodes)
    return g, fd, settle_base(fd, LIGHT)


def test_chord_columns_equal_the_engine_fixed_point_without_fallback() -> None:
    _, fd, base = _base("ieee123")
    cols = np.arange(0, len(fd.nodes), 7)
    est, y = estimate_kw(fd, base.v, cols, base.der_pu, HostingOptions(), base.chord)
    p_w = np.clip(np.nan_to_num(est, posinf=500.0), 10.0, 2000.0) * 1e3
    s = np.repeat(base.s, cols.size, axis=1)
    s[fd.branch[cols], np.arange(cols.size)] = -p_w * base.der_pu
    guess = base.v[:, None] + y * p_w[None, :]
    assert base.chord is not None
    v, left = base.chord.solve(s, guess, 1e-8, 15)
    assert not left.any()  # every column converged by the chord alone
    fd.twin.opts = SolveOptions(max_iter=400, tol_pu=1e-11)
    ref, iters = fd.twin.solve(s, guess)
    vb = fd.twin.net.vbase_v[:, None]
    assert np.max(np.abs(v - ref) / vb) < 1e-7
    assert iters > 10  # the fixed point needs many more steps than the chord's few


def test_linear_unbalance_crossing_lands_on_the_limit() -> None:
    _, fd, base = _base("ieee13")
    assert base.chord is not None
    cols = np.arange(len(fd.nodes))
    k = fd.node_idx[cols]
    rhs = np.zeros((fd.twin.net.n, cols.size), complex)
    rhs[k, cols] = base.der_pu / np.conj(base.v[k])
    y = base.chord.apply_inv(rhs)
    p_w = unbalance_crossing(fd, base.v, y, 2.0)
    use = np.flatnonzero(np.isfinite(p_w) & (p_w < 1e6))
    assert use.size >= 3
    s = np.repeat(base.s, use.size, axis=1)
    s[fd.branch[use], np.arange(use.size)] = -p_w[use] * base.der_pu
    v, left = base.chord.solve(s, base.v[:, None] + y[:, use] * p_w[use], 1e-8, 20)
    assert not left.any()
    vuf0 = 100 * unbalance_factor(base.v[fd.tri])
    vuf = 100 * unbalance_factor(np.moveaxis(v[fd.tri], 2, 0))[:, vuf0 <= 2.0]
    worst = vuf.max(axis=1)
    # the exact VUF at the linear crossing: near the limit, closer the smaller the size
    assert np.all(np.abs(worst - 2.0) < 0.3), worst
    small = p_w[use] < 300e3
    assert small.any() and np.all(np.abs(worst[small] - 2.0) < 0.05), worst[small]


def test_chord_study_equals_fixed_point_study(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import gridpilot.twin.hosting.study as st

    g = session_and_grid("ieee13")[1]
    fast = hosting_capacity(g, [LIGHT], HostingOptions(der="pv"))
    monkeypatch.setattr(st, "Chord", lambda *a: None)  # the engine's fixed point only
    slow = hosting_capacity(g, [LIGHT], HostingOptions(der="pv"))
    assert np.array_equal(fast.hc_kw, slow.hc_kw) and fast.limit == slow.limit


def test_critical_hour_converges_beyond_the_columns_iteration_limit() -> None:
    """The study's columns stop early (a size far beyond every limit fails); the hour's own
    power flow may need more steps (ieee8500 at its EV peak: > 30) and gets them."""
    g = session_and_grid("ieee123")[1]
    fd = Feeder(g, phase_nodes(g)[:6])
    few = SolveOptions(max_iter=3, tol_pu=1e-8)
    fd.twin.opts = few
    base = settle_base(fd, Scenario("peak", 0, 1.0, 1.0))
    assert fd.twin.opts is few  # restored for the columns
    assert np.all(np.abs(base.v[fd.node_idx]) > 0)
