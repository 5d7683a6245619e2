"""The demo fleet sized to where it connects: on a low-voltage grid (schutterwald, 0.4 kV lines
of ~100 kVA) a 0.65 MW wind turbine and 0.3 MW batteries overloaded their lines by themselves
(543 %, 1.17 pu, every plan refused); each device now takes at most ``HOSTING_SHARE`` of its
bus's connection, and the medium-voltage grids keep their fleet."""

from __future__ import annotations

import numpy as np

from gridpilot.agent import demo_grid
from gridpilot.agent.fleet import HOSTING_SHARE, connection_mva
from gridpilot.twin import Injections, Twin

SIZES = (
    ("generator", "p_mw"),
    ("storage", "p_max_mw"),
    ("ev_charger", "p_max_mw"),
    ("flex_load", "p_mw"),
)


def _share(g) -> float:
    """The largest device power over its bus's connection capacity."""
    cap = connection_mva(g)
    return max(float(np.max(g[t][c] / cap[g.bus.position_map(g[t]["bus"])])) for t, c in SIZES)


def test_devices_fit_their_connection_on_a_low_voltage_grid() -> None:
    g = demo_grid("schutterwald")
    assert _share(g) <= HOSTING_SHARE + 1e-12
    hours = g.storage["e_mwh"] / g.storage["p_max_mw"]
    assert np.allclose(hours, 4.0)  # a capped battery keeps its 1.2 MWh / 0.3 MW hours
    inj = {
        "load_p_mw": g.load["p_mw"] * 0.3,
        "load_q_mvar": g.load["q_mvar"] * 0.3,
        "gen_p_mw": g.generator["p_mw"],
    }
    res = Twin(g).powerflow(Injections.from_mapping(inj))
    assert res.converged and float(np.max(res.line_loading_pct)) < 100.0


def test_the_case33bw_fleet_is_the_documented_one() -> None:
    g = demo_grid("case33bw")
    assert sorted(g.generator["p_mw"].round(3).tolist()) == [0.15, 0.2, 0.2, 0.25, 0.3, 0.8]
    assert g.storage["p_max_mw"].tolist() == [0.3, 0.3]
    assert g.storage["e_mwh"].tolist() == [1.2, 1.2]
