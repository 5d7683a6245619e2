"""Property test: generated radial grids converge and balance power."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridpilot.model import Grid
from gridpilot.model.synthetic import synthetic_grid
from gridpilot.twin import Twin, is_radial


@st.composite
def radial_grids(draw: st.DrawFn) -> Grid:
    n = draw(st.integers(2, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    parents = [int(rng.integers(0, k)) for k in range(1, n)]
    g = Grid("random")
    g.add("bus", id=np.arange(n), v_nom_kv=np.full(n, 10.0))
    g.add("source", id=0, bus=0)
    g.add(
        "line",
        id=np.arange(n - 1),
        from_bus=parents,
        to_bus=np.arange(1, n),
        length_km=rng.uniform(0.05, 1.0, n - 1),
        r_ohm_per_km=rng.uniform(0.05, 0.6, n - 1),
        x_ohm_per_km=rng.uniform(0.05, 0.4, n - 1),
        c_nf_per_km=rng.uniform(0, 300, n - 1),
        max_i_ka=0.4,
    )
    p = rng.uniform(0.0, 0.3, n - 1)
    g.add("load", id=np.arange(n - 1), bus=np.arange(1, n), p_mw=p, q_mvar=p * 0.3)
    k = draw(st.integers(0, n - 1))
    if k:
        g.add("generator", id=np.arange(k), bus=rng.integers(1, n, k), p_mw=rng.uniform(0, 0.2, k))
    return g


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(radial_grids())
def test_radial_grids_converge_and_balance(g: Grid) -> None:
    assert is_radial(g)
    r = Twin(g).powerflow()
    assert r.converged
    injected = r.source_p_mw.sum() + g.generator["p_mw"].sum()
    assert injected == np.float64(injected)
    np.testing.assert_allclose(injected, g.load["p_mw"].sum() + r.losses_mw, atol=1e-7)
    assert r.losses_mw >= -1e-9


@settings(max_examples=5, deadline=None)
@given(st.integers(20, 600), st.integers(0, 1000))
def test_synthetic_grids_converge_and_balance(n: int, seed: int) -> None:
    g = synthetic_grid(n, seed=seed, profile_steps=96)
    r = Twin(g).powerflow()
    assert r.converged and r.energised.all()
    np.testing.assert_allclose(
        r.source_p_mw.sum() + g.generator["p_mw"].sum(),
        g.load["p_mw"].sum() + r.losses_mw,
        atol=1e-6,
    )
