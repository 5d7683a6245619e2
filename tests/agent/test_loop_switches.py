"""The volt/var policy's tie swaps (:func:`~gridpilot.agent.policies.loop_switches`) on a grid
fed by two sources: a tie within one source's tree gives the switches on its loop; a tie
between the two trees gives none (it would parallel the sources) instead of raising (the
policy raised StopIteration every step on schutterwald)."""

from __future__ import annotations

import numpy as np

from gridpilot.agent.policies import loop_switches
from gridpilot.model import Grid
from gridpilot.twin import supply_tree


def two_feeders() -> Grid:
    """Sources at buses 1 and 11; feeder 1-2-3-4 with a tie 2-4 (a loop within it), feeder
    11-12-13, and a tie 3-13 between the two feeders. A remote switch on every line."""
    g = Grid("two-feeders")
    g.add("bus", id=[1, 2, 3, 4, 11, 12, 13], v_nom_kv=20.0)
    g.add("source", id=[1, 2], bus=[1, 11], vm_pu=1.0)
    frm, to = [1, 2, 3, 11, 12, 2, 3], [2, 3, 4, 12, 13, 4, 13]
    closed = [True, True, True, True, True, False, False]
    ids = list(range(1, len(frm) + 1))
    g.add("line", id=ids, from_bus=frm, to_bus=to, length_km=1.0, r_ohm_per_km=0.25,
          x_ohm_per_km=0.35, c_nf_per_km=0.0, max_i_ka=0.6)  # fmt: skip
    g.add("switch", id=ids, bus=frm, element=ids, et=0, closed=closed,
          normally_open=[not c for c in closed], remote=True)  # fmt: skip
    g.add("load", id=[1, 2], bus=[4, 13], p_mw=0.5, q_mvar=0.1)
    g.validate()
    return g


def test_a_tie_within_one_tree_gives_its_loop_and_one_between_two_sources_none() -> None:
    g = two_feeders()
    closed = np.asarray(g.switch["closed"], bool)
    tree = supply_tree(g, closed)
    within, between = int(g.switch.index_of(6)[0]), int(g.switch.index_of(7)[0])
    on_loop = sorted(int(g.switch.ids[k]) for k in loop_switches(g, closed, within, tree))
    assert on_loop == [2, 3]  # lines 2-3 and 3-4 close the loop 2-3-4 with tie 2-4
    assert loop_switches(g, closed, between, tree) == []
    assert loop_switches(g, closed, between) == []  # the tree built inside too
