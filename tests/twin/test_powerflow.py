"""The twin's power flow: published results, pandapower agreement, batch consistency."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.errors import ValidationError
from gridpilot.model import load_grid
from gridpilot.twin import Injections, Twin


def test_case33bw_base_case(case33) -> None:
    r = Twin(case33).powerflow()
    assert r.converged
    assert abs(r.losses_kw - 202.7) / 202.7 < 0.01  # Baran & Wu: 202.7 kW
    assert abs(r.vmin_pu - 0.913) <= 0.002 and r.vmin_bus == 18  # paper bus 18
    # power balance: source = load + losses
    assert r.source_p_mw.sum() == pytest.approx(case33.load["p_mw"].sum() + r.losses_mw, abs=1e-9)


def test_case69_base_case() -> None:
    r = Twin(load_grid("case69")).powerflow()
    assert abs(r.losses_kw - 224.95) / 224.95 < 0.01  # Baran & Wu 69-bus: 224.9 kW
    assert abs(r.vmin_pu - 0.9092) <= 0.002 and r.vmin_bus == 65


def _pandapower_nets() -> dict:
    import pandapower.networks as pn

    return {
        "cigre-mv": lambda: pn.create_cigre_network_mv(with_der="all"),
        "oberrhein": pn.mv_oberrhein,
    }


@pytest.mark.parametrize("name", ["cigre-mv", "oberrhein"])
def test_agrees_with_pandapower(name: str) -> None:
    import pandapower as pp

    from gridpilot.model import from_pandapower

    net = _pandapower_nets()[name]()
    g = from_pandapower(net, name)
    r = Twin(g).powerflow()
    pp.runpp(net)
    ref = net.res_bus.vm_pu.reindex(g.bus.ids).to_numpy()
    assert np.nanmax(np.abs(ref - r.v_pu)) < 1e-4
    assert r.losses_mw == pytest.approx(
        net.res_line.pl_mw.sum() + net.res_trafo.pl_mw.sum(), rel=1e-3
    )


def test_case33bw_agrees_with_pandapower(case33) -> None:
    import pandapower as pp
    import pandapower.networks as pn

    net = pn.case33bw()
    pp.runpp(net)
    r = Twin(case33).powerflow()
    np.testing.assert_allclose(
        r.v_pu, net.res_bus.vm_pu.to_numpy(), atol=1e-4
    )  # paper bus k = pp bus k-1


def test_simbench_agrees_with_pandapower() -> None:
    import pandapower as pp
    import simbench as sb

    from gridpilot.model import from_pandapower

    net = sb.get_simbench_net("1-MV-rural--0-sw")
    g = from_pandapower(net, "sb")
    assert g.profiles is not None and g.profiles.steps == 35136
    r = Twin(g).powerflow()
    pp.runpp(net)
    assert np.nanmax(np.abs(net.res_bus.vm_pu.reindex(g.bus.ids).to_numpy() - r.v_pu)) < 1e-4


def test_timeseries_matches_single_runs(case33) -> None:
    tw = Twin(case33)
    rng = np.random.default_rng(0)
    scale = rng.uniform(0.3, 1.2, (5, len(case33.load)))
    p = case33.load["p_mw"] * scale
    q = case33.load["q_mvar"] * scale
    ts = tw.timeseries(
        injections=Injections(load_p_mw=p, load_q_mvar=q), outputs=("v_pu", "line_loading_pct")
    )
    assert ts.steps == 5 and ts.converged.all()
    for t in range(5):
        r = tw.powerflow(Injections(load_p_mw=p[t], load_q_mvar=q[t]))
        np.testing.assert_allclose(ts.v_pu[t], r.v_pu, atol=1e-6)
        assert ts.losses_kw[t] == pytest.approx(r.losses_kw, rel=1e-6)
        assert ts.vmin_pu[t] == pytest.approx(r.vmin_pu, abs=1e-7)


def test_switching_batch_and_deenergised_buses(case33) -> None:
    tw = Twin(case33)
    closed = np.tile(case33.switch["closed"], (3, 1))
    closed[1, case33.switch.index_of(25)] = False  # open branch 25: buses 26..33 lost
    closed[2, case33.switch.index_of(25)] = False
    closed[2, case33.switch.index_of(37)] = True  # ...and fed back through tie 37 (25-29)
    inj = Injections(switch_closed=closed, load_p_mw=np.tile(case33.load["p_mw"], (3, 1)))
    ts = tw.timeseries(injections=inj, outputs=("v_pu",))
    assert ts.converged.all()
    dead = ts.v_pu[1] < 0.5
    assert set(case33.bus.ids[dead]) == set(range(26, 34))
    assert not (ts.v_pu[2] < 0.5).any()
    single = tw.powerflow(Injections(switch_closed=closed[1]))
    assert set(case33.bus.ids[~single.energised]) == set(range(26, 34))


def test_nonconverged_steps_reported(case33) -> None:
    tw = Twin(case33)
    p = np.tile(case33.load["p_mw"], (3, 1))
    p[1] *= 60.0  # voltage collapse
    ts = tw.timeseries(
        injections=Injections(
            load_p_mw=p, load_q_mvar=np.tile(case33.load["q_mvar"], (3, 1)) * [[1], [60], [1]]
        )
    )
    assert list(ts.failed_steps) == [1]
    assert np.isnan(ts.losses_kw[1]) and np.isfinite(ts.losses_kw[[0, 2]]).all()
    # a failed step names no bus (its arrays once held whatever memory was there)
    assert ts.vmin_bus[1] == -1 and ts.vmax_bus[1] == -1
    assert (ts.vmin_bus[[0, 2]] >= 0).all()
    r = tw.powerflow(Injections(load_p_mw=p[1], load_q_mvar=case33.load["q_mvar"] * 60))
    assert not r.converged


def test_bad_injection_shapes_are_clear(case33) -> None:
    tw = Twin(case33)
    with pytest.raises(ValidationError, match=r"load_p_mw: expected shape \(32,\)"):
        tw.powerflow(Injections(load_p_mw=np.ones(5)))
    with pytest.raises(ValidationError, match="NaN"):
        tw.powerflow(Injections(load_p_mw=np.full(32, np.nan)))
    with pytest.raises(ValidationError, match="outputs: unknown"):
        tw.timeseries(4, outputs=("volts",))


def test_default_profiles_drive_timeseries(case33) -> None:
    ts = Twin(case33).timeseries(96)
    assert ts.converged.all()
    assert ts.source_p_mw.max() > 1.5 * ts.source_p_mw.min()  # a daily shape, not a constant
