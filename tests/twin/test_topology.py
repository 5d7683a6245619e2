"""Topology from switch states."""

from __future__ import annotations

import numpy as np

from gridpilot.twin import buses_lost_if_open, energised, is_radial, meshes, supply_tree


def test_case33_radial_and_ties(case33) -> None:
    assert is_radial(case33)
    closed = case33.switch["closed"].copy()
    closed[case33.switch.index_of(33)] = True
    assert not is_radial(case33, closed)  # closing a tie makes a loop


def test_meshes_count_loops_and_sources_in_parallel(case33) -> None:
    closed = case33.switch["closed"].copy()
    assert meshes(case33, closed) == 0
    closed[case33.switch.index_of([33, 34])] = True
    assert meshes(case33, closed) == 2  # two ties closed: two independent loops
    g = case33.copy()
    g.add("source", id=2, bus=18)  # a second source in the one island
    assert meshes(g, closed) == 3 and meshes(g) == 1


def test_buses_lost_if_open(case33) -> None:
    assert sorted(buses_lost_if_open(case33, 6)) == list(range(7, 19))
    assert len(buses_lost_if_open(case33, 1)) == 32
    assert energised(case33).all()


def test_supply_tree_parents(case33) -> None:
    t = supply_tree(case33)
    pos = case33.bus.index_of([18])[0]
    path = []
    while pos >= 0:
        path.append(int(case33.bus.ids[pos]))
        pos = t.parent[pos]
    assert path == list(range(18, 0, -1))
    assert t.depth[case33.bus.index_of([1])[0]] == 0 and t.supplied.all()
    assert np.all(np.diff(t.depth[t.order]) >= 0)
