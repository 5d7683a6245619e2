"""Shunt reactors (OpenDSS Reactor with bus2 on bus1, or delta) stamped with OpenDSS's own
Yprim: snapshot voltages, static taps and losses against OpenDSS on ieee13."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.model.importers.opendss import DssSession, grid_from_session
from gridpilot.model.threephase import Shunt
from gridpilot.model.threephase.balanced import balanced_view
from gridpilot.model.threephase.builtin import feeder_master
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.reference import (
    add_shape,
    compare,
    dss_qsts,
    dss_taps,
    dss_voltages,
    extremes_gap,
    reset_taps,
    tap_numbers,
    tighten,
)

REACTORS = [
    "new reactor.wye bus1=675 phases=3 kvar=600 kv=4.16",  # wye to ground (bus2 = 675.0.0.0)
    "new reactor.dl bus1=671 phases=3 kvar=400 kv=4.16 conn=delta",  # one terminal
    "new reactor.one bus1=652.1 bus2=652.0 phases=1 kvar=80 kv=2.4 rp=4000",  # with Rp
    "new reactor.rx bus1=680 phases=3 r=2 x=40",  # R + jX given
    "new reactor.series bus1=692 bus2=rx692 phases=3 r=0.01 x=0.05",  # stays a branch
    "new load.behind bus1=rx692 phases=3 kv=4.16 kw=100 kvar=20",
    "makebuslist",
]


def _pair(commands: list[str]) -> tuple[DssSession, UnbalancedTwin]:
    s = DssSession()
    s.compile(feeder_master("ieee13"))
    for cmd in commands:
        s.command(cmd)
    return s, UnbalancedTwin(grid_from_session(s, "ieee13"))


def test_shunt_reactors_are_imported_with_opendss_yprim() -> None:
    _, tw = _pair(REACTORS)
    g = tw.grid
    assert not any("reactor" in w for w in g.warnings)
    shunts = {sh.name: sh for sh in g.shunts}
    assert sorted(shunts) == ["dl", "one", "rx", "wye"]
    assert all(isinstance(sh, Shunt) and sh.kind == "reactor" for sh in shunts.values())
    assert [b.name for b in g.branches if b.kind == "reactor"] == ["series"]
    assert len(shunts["dl"].terminals) == 1 and shunts["dl"].y_prim.shape == (3, 3)
    assert shunts["rx"].terminals[1].nodes == (0, 0, 0)
    x = (4.16 / np.sqrt(3)) ** 2 * 1e3 / 200  # OpenDSS: phase kV² / kvar per phase
    assert shunts["wye"].y_prim[0, 0] == pytest.approx(1 / (1j * x), rel=1e-9)
    assert g.counts().by_type["shunt"] == 4


@pytest.mark.parametrize("mode", ["off", "static"])
def test_snapshot_with_shunt_reactors_matches_opendss(mode: str) -> None:
    s, tw = _pair(REACTORS)
    res = tw.powerflow(control_mode=mode)
    tighten(s, mode)
    s.command("solve")
    a = compare(res, dss_voltages(s))
    assert a.max_dv_pu < 1e-6 and a.max_dangle_deg < 1e-4, a
    if mode == "static":
        assert tap_numbers(res) == dss_taps(s)
    c = s.circuit  # our losses: source power minus loads (the shunts' R included)
    loads_kw = 0.0
    for name in c.Loads.AllNames:
        c.SetActiveElement(f"load.{name}")
        loads_kw += float(np.sum(np.asarray(c.ActiveCktElement.Powers)[0::2]))
    assert res.losses_kw == pytest.approx(-c.TotalPower[0] - loads_kw, rel=1e-5)
    _, plain = _pair([])  # the reactors matter: 0.6 MVAr at 675 moves its voltage
    assert compare(plain.powerflow(control_mode=mode), dss_voltages(s)).max_dv_pu > 1e-3


def test_balanced_view_takes_a_shunt_as_a_load() -> None:
    _, tw = _pair([REACTORS[0], "makebuslist"])
    _, base = _pair([])
    q = balanced_view(tw.grid).grid.load["q_mvar"].sum()
    q0 = balanced_view(base.grid).grid.load["q_mvar"].sum()
    v = tw.grid.bus_kv_ln["675"]  # 600 kvar at 4.16 kV, at the bus's nominal voltage
    assert q - q0 == pytest.approx(0.6 * (v * np.sqrt(3) / 4.16) ** 2, rel=1e-9)


def test_qsts_with_shunt_reactors_matches_opendss_in_both_engines() -> None:
    mult = 0.6 + 0.4 * np.sin(np.linspace(0, np.pi, 24))
    s, _ = _pair([*REACTORS[:4], "makebuslist"])  # rx692 has no voltage base in OpenDSS
    reset_taps(s)
    add_shape(s, "q", mult, 15)
    fast = UnbalancedTwin(grid_from_session(s, "ieee13")).qsts(24, 900.0, engine="compiled")
    slow = UnbalancedTwin(grid_from_session(s, "ieee13")).qsts(24, 900.0, engine="python")
    ref = dss_qsts(s, 24, 900.0)
    assert fast.tap_ops == slow.tap_ops == ref.tap_ops and sum(ref.tap_ops.values()) > 0
    assert extremes_gap(fast.nodes, fast.vmin_pu, fast.vmax_pu, ref) < 1e-6
    assert extremes_gap(slow.nodes, slow.vmin_pu, slow.vmax_pu, ref) < 1e-6
