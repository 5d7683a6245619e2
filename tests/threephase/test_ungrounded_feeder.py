"""IEEE 37, an ungrounded three-wire feeder (delta-delta substation transformer, open-delta
regulators), in the three-phase world and its loop: ground references of the feeders
(:func:`~gridpilot.model.threephase.grounding.grounded_buses`), the world's devices phase to
phase there (phase to ground they made the world's power flow diverge at every step), and the
open-delta bank's jumper folded into the bank in the balanced view (as a view line it closed a
loop with the bank: every plan refused as not radial, 2,900 % forecast loading)."""

from __future__ import annotations

import dataclasses

import networkx as nx
import numpy as np
import pytest

from gridpilot.agent import ThreePhaseWorld
from gridpilot.agent.cli import build_demo
from gridpilot.agent.world3p import three_phase_grid
from gridpilot.errors import ValidationError
from gridpilot.model.threephase.balanced import balanced_view
from gridpilot.model.threephase.grounding import grounded_buses

EVENING = 200 * 96 + 17 * 4


@pytest.mark.parametrize(
    ("name", "ungrounded"),
    [
        ("ieee13", set()),  # delta-wye substation transformer: wye grounded below
        ("ieee37", "all but the source"),
        ("ieee123", {"610"}),  # behind xfm1, delta-delta 4.16/0.48 kV
    ],
)
def test_grounded_buses_follow_the_windings(name: str, ungrounded: object) -> None:
    g = three_phase_grid(name)
    buses = set(g.bus_nodes())
    if ungrounded == "all but the source":
        ungrounded = buses - {g.source.terminal.bus}
    assert buses - grounded_buses(g) == ungrounded


def test_a_wye_grounded_substation_winding_grounds_an_ungrounded_feeder() -> None:
    g = three_phase_grid("ieee37")
    sub = next(t for t in g.transformers if t.name == "subxf")
    low = dataclasses.replace(sub.windings[1], conn="wye")
    g2 = dataclasses.replace(g, transformers=[
        dataclasses.replace(t, windings=[t.windings[0], low]) if t is sub else t
        for t in g.transformers
    ])  # fmt: skip
    # the feeder below the substation is grounded now; 775 (behind delta-delta xfm1) is not
    assert set(g2.bus_nodes()) - grounded_buses(g2) == {"775"}


def test_devices_on_ieee37_go_phase_to_phase_and_the_power_flow_converges() -> None:
    w = ThreePhaseWorld(three_phase_grid("ieee37"), start_step=EVENING, noise=0.0)
    dev = w.injections.grid.loads[w.injections.n_feeder :]
    assert dev and all(ld.conn == "delta" and 0 not in ld.terminal.nodes for ld in dev)
    kv_ll = 4.8
    assert {round(ld.kv, 6) for ld in dev} == {kv_ll}
    for _ in range(3):
        obs = w.observe()
        w.advance()
        assert obs.energised.all() and np.isfinite(obs.v_pu).all()
        assert obs.v_pu.min() > 0.85 and obs.v_pu.max() < 1.1
        assert obs.load_p_mw.sum() > 1.0


def test_devices_on_a_grounded_feeder_stay_phase_to_ground() -> None:
    w = ThreePhaseWorld(three_phase_grid("ieee123"), start_step=EVENING, noise=0.0)
    dev = w.injections.grid.loads[w.injections.n_feeder :]
    assert dev and all(ld.conn == "wye" and ld.terminal.nodes[-1] == 0 for ld in dev)
    assert all(len(ld.terminal.nodes) == 2 for ld in dev)


def test_the_open_delta_banks_jumper_is_folded_into_the_bank_and_the_view_is_radial() -> None:
    g3 = three_phase_grid("ieee37")
    view = balanced_view(g3)
    g = view.grid
    assert view.bank_lines == ["jumper"]
    assert "jumper" not in view.branch_line() and len(g.line) == len(g3.branches) - 1
    edges = [*zip(g.line["from_bus"], g.line["to_bus"], strict=True),
             *zip(g.transformer["hv_bus"], g.transformer["lv_bus"], strict=True)]  # fmt: skip
    tree = nx.Graph([(int(a), int(b)) for a, b in edges])
    assert len(edges) == len(g.bus) - 1 and nx.is_tree(tree)
    # the other feeders keep a view line per branch
    g123 = three_phase_grid("ieee123")
    assert balanced_view(g123).bank_lines == []


def test_the_loop_on_ieee37_acts_within_its_limits_and_refuses_nothing() -> None:
    orch = build_demo("ieee37")
    orch.run(10)
    h = orch.state()["headline"]
    assert h["dead_buses"] == 0 and h["refused"] == 0 and h["load_mw"] > 2.0
    assert 0.0 < h["max_loading_pct"] < 100.0
    events = [e["kind"] for e in orch.events]
    assert "policy_error" not in events
    with pytest.raises(ValidationError, match="common conductor"):
        orch.world.inject("fault", branch="jumper")
