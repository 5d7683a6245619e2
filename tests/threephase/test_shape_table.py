"""Load powers of the compiled QSTS from the shapes' table (``qsts.shape_table``): each
branch follows its load's shape (ieee13's ``default`` where it names none), fixed loads
stay at 1, and a run in chunks that rebuild the table equals one run in a single chunk."""

from __future__ import annotations

import numpy as np

from gridpilot.model.threephase.builtin import ieee_feeder
from gridpilot.model.threephase.elements import LoadShape
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.qsts import QstsOptions, load_multipliers, shape_table


def _twin() -> UnbalancedTwin:
    g = ieee_feeder("ieee13")
    hours = np.arange(24.0)
    g.loadshapes["morning"] = LoadShape("morning", 0.6 + 0.4 * np.sin(hours / 4.0) ** 2, hours)
    g.loadshapes["evening"] = LoadShape("evening", 0.5 + 0.5 * np.cos(hours / 5.0) ** 2, hours)
    for i, ld in enumerate(g.loads):
        ld.daily = ("morning", "evening", None)[i % 3]
    g.loads[1].status = "fixed"
    return UnbalancedTwin(g)


def test_each_branch_follows_its_loads_shape() -> None:
    tw = _twin()
    opts = QstsOptions(steps=40, resolution_s=900.0)
    table, row = shape_table(tw, opts, 5, 40)
    assert table.shape == (4, 35) and np.all(table[0] == 1.0)  # ones, 2 shapes, default
    t_h = (np.arange(5, 40) + 1) * 0.25
    grid = tw.grid
    for q, li in enumerate(tw.loads.load_of):
        ld = grid.loads[li]
        shape = grid.loadshapes[ld.daily or "default"]
        want = np.ones(35) if ld.status == "fixed" else shape.at(t_h)
        np.testing.assert_array_equal(table[row[q]], want)
    np.testing.assert_array_equal(load_multipliers(tw, opts, 5, 40), table[row])


def test_runs_in_chunks_equal_one_chunk() -> None:
    one = _twin().qsts(60, 900.0)
    parts = _twin().qsts(60, 900.0, chunk=7)
    np.testing.assert_array_equal(one.losses_kw, parts.losses_kw)
    np.testing.assert_array_equal(one.vmax_pu, parts.vmax_pu)
    assert one.tap_ops == parts.tap_ops and one.iterations == parts.iterations
