"""The batch radial kernel against power-grid-model, and the twin's engine selection."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.errors import ValidationError
from gridpilot.model import Grid, load_grid
from gridpilot.twin import Injections, Twin
from gridpilot.twin.radial import RadialEngine, radial_topology

ATOL_PU = 1e-6


def _compare_single(g: Grid, inj: Injections | None = None) -> None:
    r = Twin(g, engine="radial").powerflow(inj)
    p = Twin(g, engine="pgm").powerflow(inj)
    assert r.engine == "radial" and p.engine == "power-grid-model"
    assert r.converged and p.converged
    np.testing.assert_array_equal(r.energised, p.energised)
    np.testing.assert_allclose(r.v_pu, p.v_pu, atol=ATOL_PU)
    np.testing.assert_allclose(r.va_deg[r.energised], p.va_deg[p.energised], atol=1e-4)
    np.testing.assert_allclose(r.line_p_from_mw, p.line_p_from_mw, atol=1e-6)
    np.testing.assert_allclose(r.line_q_from_mvar, p.line_q_from_mvar, atol=1e-6)
    np.testing.assert_allclose(r.line_p_to_mw, p.line_p_to_mw, atol=1e-6)
    np.testing.assert_allclose(r.line_i_ka, p.line_i_ka, atol=1e-7)
    np.testing.assert_allclose(r.line_loading_pct, p.line_loading_pct, atol=1e-4)
    np.testing.assert_allclose(r.trafo_p_hv_mw, p.trafo_p_hv_mw, atol=1e-6)
    np.testing.assert_allclose(r.trafo_loading_pct, p.trafo_loading_pct, atol=1e-4)
    np.testing.assert_allclose(r.source_p_mw, p.source_p_mw, atol=1e-6)
    np.testing.assert_allclose(r.source_q_mvar, p.source_q_mvar, atol=1e-6)
    assert r.losses_kw == pytest.approx(p.losses_kw, abs=1e-3)


@pytest.mark.parametrize("name", ["case33bw", "case69", "cigre-mv", "synthetic:300"])
def test_timeseries_agrees_with_pgm_on_every_bus_and_step(name: str) -> None:
    g = load_grid(name)
    outs = ("v_pu", "line_loading_pct", "trafo_loading_pct")
    r = Twin(g, engine="radial").timeseries(192, outputs=outs)
    p = Twin(g, engine="pgm").timeseries(192, outputs=outs)
    assert r.engine == "radial" and r.converged.all() and p.converged.all()
    assert r.v_pu is not None and p.v_pu is not None
    assert np.abs(r.v_pu - p.v_pu).max() < ATOL_PU
    np.testing.assert_allclose(r.losses_kw, p.losses_kw, atol=1e-4)
    np.testing.assert_allclose(r.source_p_mw, p.source_p_mw, atol=1e-7)
    np.testing.assert_allclose(r.vmin_pu, p.vmin_pu, atol=ATOL_PU)
    np.testing.assert_allclose(r.vmax_pu, p.vmax_pu, atol=ATOL_PU)
    np.testing.assert_allclose(r.max_loading_pct, p.max_loading_pct, atol=1e-3)
    np.testing.assert_allclose(r.line_loading_pct, p.line_loading_pct, atol=1e-3)
    if len(g.transformer):
        np.testing.assert_allclose(r.trafo_loading_pct, p.trafo_loading_pct, atol=1e-3)


@pytest.mark.parametrize("name", ["case33bw", "cigre-mv"])
def test_single_powerflow_agrees_with_pgm_in_every_field(name: str) -> None:
    _compare_single(load_grid(name))


def test_reconfigured_feeder_and_lost_buses(case33) -> None:
    closed = case33.switch["closed"].copy()
    closed[case33.switch.index_of([7, 14])] = False  # open two branches
    closed[case33.switch.index_of([33, 34])] = True  # close two ties: still radial
    assert radial_topology(case33, closed)[0] is not None
    _compare_single(case33, Injections(switch_closed=closed))
    closed[case33.switch.index_of(34)] = False  # now buses 9..14 are cut off
    r = Twin(case33).powerflow(Injections(switch_closed=closed))
    assert r.engine == "radial" and not r.energised.all()
    assert r.v_pu[~r.energised].max() == 0.0
    _compare_single(case33, Injections(switch_closed=closed))


def test_constant_current_and_impedance_loads(case33) -> None:
    g = case33.copy()
    g.load["i_share"] = 0.3
    g.load["z_share"] = np.linspace(0.0, 0.5, len(g.load))
    _compare_single(g)
    p = g.load["p_mw"] * 1.2
    inj = Injections(load_p_mw=np.tile(p, (20, 1)) * np.linspace(0.5, 1.5, 20)[:, None])
    r = Twin(g, engine="radial").timeseries(injections=inj, outputs=("v_pu",))
    q = Twin(g, engine="pgm").timeseries(injections=inj, outputs=("v_pu",))
    assert r.v_pu is not None and q.v_pu is not None
    assert np.abs(r.v_pu - q.v_pu).max() < ATOL_PU


def test_transformer_taps_on_either_side() -> None:
    g = load_grid("cigre-mv").copy()
    tr = g.transformer
    tr["tap_min"] = -8
    tr["tap_max"] = 8
    tr["tap_step_percent"] = 1.25
    tr["tap_pos"] = [3, -2]
    tr["tap_side"] = [0, 1]
    tr["pfe_kw"] = 30.0
    tr["i0_percent"] = 0.2
    _compare_single(g)


def _parallel_transformer_grid() -> Grid:
    """Two 110/20 kV transformers in parallel between bus pairs joined by bus switches."""
    g = Grid("parallel")
    g.add("bus", id=[0, 1, 2, 3, 4, 5], v_nom_kv=[110.0, 110.0, 20.0, 20.0, 20.0, 20.0])
    g.add("source", id=0, bus=0, vm_pu=1.02, sk_mva=3000.0)
    g.add(
        "transformer",
        id=[0, 1],
        hv_bus=[0, 1],
        lv_bus=[2, 3],
        sn_mva=25.0,
        vn_hv_kv=110.0,
        vn_lv_kv=20.0,
        vk_percent=12.0,
        vkr_percent=0.4,
        pfe_kw=14.0,
        i0_percent=0.07,
        shift_degree=150.0,
    )
    g.add(
        "line",
        id=[0, 1, 2],
        from_bus=[3, 4, 4],
        to_bus=[4, 5, 5],
        length_km=[2.0, 1.0, 1.5],
        r_ohm_per_km=0.12,
        x_ohm_per_km=0.11,
        c_nf_per_km=300.0,
        max_i_ka=0.4,
    )
    g.add(
        "switch",
        id=[0, 1, 2],
        bus=[0, 2, 5],
        element=[1, 3, 2],
        et=[2, 2, 0],
        closed=[True, True, False],
    )
    g.add("load", id=[0, 1], bus=[4, 5], p_mw=[6.0, 4.0], q_mvar=[1.5, 1.0])
    g.add("generator", id=0, bus=5, p_mw=2.0)
    return g


def test_bus_switches_and_parallel_branches_are_merged() -> None:
    g = _parallel_transformer_grid()
    topo, why = radial_topology(g)
    assert topo is not None, why
    assert topo.n == 4  # {0,1}, {2,3}, 4, 5
    _compare_single(g)  # line 2 is open at bus 5: its charging stays as a shunt at bus 4


def test_weakly_meshed_by_compensation(case33) -> None:
    """Closed ties make loops: the kernel cuts each at a chord and matches PGM on every output."""
    closed = case33.switch["closed"].copy()
    closed[case33.switch.index_of(33)] = True  # one loop
    topo, why = radial_topology(case33, closed)
    assert topo is not None and topo.loops == 1, why
    assert Twin(case33).powerflow(Injections(switch_closed=closed)).engine == "radial"
    _compare_single(case33, Injections(switch_closed=closed))
    closed[:] = True  # all five ties: five loops
    _compare_single(case33, Injections(switch_closed=closed))
    cigre = load_grid("cigre-mv")
    _compare_single(
        cigre, Injections(switch_closed=np.ones(len(cigre.switch), bool))
    )  # loops through transformers' feeders
    # a batch: every step of a time series with loops agrees with PGM
    inj = Injections(switch_closed=closed)
    r = Twin(case33, engine="radial").timeseries(300, injections=inj, outputs=("v_pu",))
    p = Twin(case33, engine="pgm").timeseries(300, injections=inj, outputs=("v_pu",))
    assert r.converged.all() and r.engine == "radial"
    np.testing.assert_allclose(r.v_pu, p.v_pu, atol=ATOL_PU)
    np.testing.assert_allclose(r.losses_kw, p.losses_kw, atol=1e-3)


def test_auto_picks_the_engine_and_radial_refuses_other_meshes() -> None:
    g = load_grid("oberrhein")
    closed = np.ones(
        len(g.switch), bool
    )  # joins the two substations' feeders: two sources in one island
    topo, why = radial_topology(g, closed)
    assert topo is None and "two sources" in why
    assert Twin(g).powerflow().engine == "radial"
    assert Twin(g).powerflow(Injections(switch_closed=closed)).engine == "power-grid-model"
    with pytest.raises(ValidationError, match="not radial"):
        Twin(g, engine="radial").powerflow(Injections(switch_closed=closed))


def test_engine_and_switch_arguments_are_checked(case33) -> None:
    with pytest.raises(ValidationError, match="engine: must be one of"):
        Twin(case33, engine="fast")
    with pytest.raises(ValidationError, match="switch_closed"):
        Twin(case33).powerflow(Injections(switch_closed=np.ones(3, bool)))


def test_switch_batch_mixes_engines_per_topology(case33) -> None:
    case33 = case33.copy()  # with a second source behind a normally-open line to bus 18
    case33.add("bus", id=34, v_nom_kv=12.66)
    case33.add("source", id=2, bus=34)
    case33.add(
        "line",
        id=38,
        from_bus=34,
        to_bus=18,
        length_km=1.0,
        r_ohm_per_km=0.3,
        x_ohm_per_km=0.3,
        max_i_ka=0.4,
    )
    case33.add("switch", id=38, bus=34, element=38, closed=False, normally_open=True)
    n = len(case33.switch)
    closed = np.tile(case33.switch["closed"], (6, 1))
    closed[1, case33.switch.index_of(38)] = True  # two sources in one island: PGM
    closed[3, case33.switch.index_of(33)] = True  # a loop: the kernel, by compensation
    closed[2, case33.switch.index_of(25)] = False  # buses lost
    closed[4, case33.switch.index_of([25, 37])] = [False, True]  # fed back through a tie
    assert closed.shape == (6, n)
    p = np.tile(case33.load["p_mw"], (6, 1)) * np.linspace(0.6, 1.1, 6)[:, None]
    inj = Injections(switch_closed=closed, load_p_mw=p)
    r = Twin(case33).timeseries(injections=inj, outputs=("v_pu",))
    q = Twin(case33, engine="pgm").timeseries(injections=inj, outputs=("v_pu",))
    assert r.engine == "radial+power-grid-model"
    assert r.meta["engine_steps"] == {"radial": 5, "power-grid-model": 1}
    assert r.v_pu is not None and q.v_pu is not None
    assert np.abs(r.v_pu - q.v_pu).max() < ATOL_PU
    np.testing.assert_allclose(r.losses_kw, q.losses_kw, atol=1e-4)
    assert (r.v_pu[2] == 0).sum() == 8
    assert r.converged.all()


def test_nonconverged_steps_are_reported_not_hidden(case33) -> None:
    p = np.tile(case33.load["p_mw"], (4, 1))
    q = np.tile(case33.load["q_mvar"], (4, 1))
    p[2] *= 60.0
    q[2] *= 60.0
    inj = Injections(load_p_mw=p, load_q_mvar=q)
    r = Twin(case33, engine="radial").timeseries(injections=inj, outputs=("v_pu",))
    assert list(r.failed_steps) == [2]
    assert np.isnan(r.losses_kw[2]) and r.v_pu is not None and np.isnan(r.v_pu[2]).all()
    assert np.isfinite(r.losses_kw[[0, 1, 3]]).all()
    # the step after a failure starts flat again and still agrees with PGM
    ref = Twin(case33, engine="pgm").timeseries(injections=inj)
    np.testing.assert_allclose(r.vmin_pu[[0, 1, 3]], ref.vmin_pu[[0, 1, 3]], atol=ATOL_PU)
    single = Twin(case33, engine="radial").powerflow(Injections(load_p_mw=p[2], load_q_mvar=q[2]))
    assert not single.converged and np.isnan(single.v_pu).all()


def test_kernel_blocks_and_threads_give_the_same_answer() -> None:
    g = load_grid("synthetic:200")
    eng = RadialEngine(g)
    topo, _ = eng.topology()
    assert topo is not None
    rng = np.random.default_rng(1)
    t = 301  # not a multiple of the lanes or blocks
    p = g.load["p_mw"] * rng.uniform(0.2, 1.3, (t, len(g.load)))
    pm, qm = eng.injections(t, {"load_p_mw": p})
    one = eng.solve(topo, pm, qm, threads=1, complex_v=True)
    two = eng.solve(topo, pm, qm, threads=2, complex_v=True)
    assert one.converged.all() and two.converged.all()
    assert one.v is not None and two.v is not None
    assert np.abs(one.v - two.v).max() < 1e-9
    # each step on its own (no warm start) gives the same voltages
    for k in (0, 150, 300):
        s = eng.solve(topo, pm[k : k + 1], qm[k : k + 1], complex_v=True)
        assert s.v is not None and np.abs(s.v[0] - one.v[k]).max() < 1e-9


def test_auto_sends_big_single_flows_to_pgm_and_batches_to_the_kernel() -> None:
    g = load_grid("synthetic:600")
    assert Twin(g).powerflow().engine == "power-grid-model"
    forced = Twin(g, engine="radial").powerflow()
    assert forced.engine == "radial" and forced.converged
    np.testing.assert_allclose(forced.v_pu, Twin(g, engine="pgm").powerflow().v_pu, atol=ATOL_PU)
    assert Twin(g).timeseries(16).engine == "radial"
