"""Load powers of the compiled QSTS from the shapes' table (``qsts.shape_table``): each
branch follows its load's shape (ieee13's ``default`` where it names none), fixed loads
stay at 1, and a run in chunks that rebuild the table equals one run in a single chunk;
hostile shapes and options get a clear error, never a LAPACK traceback."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.errors import ConvergenceError, ValidationError
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


def _spiked(value: float) -> UnbalancedTwin:
    tw = _twin()
    shape = tw.grid.loadshapes["morning"]
    mult = shape.mult.copy()
    mult[3] = value
    tw.grid.loadshapes["morning"] = LoadShape("morning", mult, shape.hours)
    return tw


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("engine", ["compiled", "python"])
def test_a_multiplier_that_is_not_a_number_is_named(value: float, engine: str) -> None:
    with pytest.raises(ValidationError, match=r"loadshape 'morning': multiplier .* at hour 3"):
        _spiked(value).qsts(40, 900.0, engine=engine)


@pytest.mark.parametrize("value", [1e6, 1e300])
def test_a_diverging_step_is_reported_at_its_step(value: float) -> None:
    # finite but absurd powers: the fixed point diverges (NaN iterates), which the Anderson
    # mix and the predictor must not turn into a LAPACK error. The spike is the shape's 4th
    # hourly point, read (fixed interval, rounded) from t = 3.5 h: step 13, t = 14 × 0.25 h
    with pytest.raises(ConvergenceError, match=r"did not converge .* at step 13$"):
        _spiked(value).qsts(40, 900.0)


@pytest.mark.parametrize(
    ("field", "value"),
    [("chunk", 0), ("tol_pu", float("nan")), ("tol_pu", -1.0), ("resolution_s", float("nan"))],
)
def test_options_a_run_cannot_start_with_are_named(field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=f"{field.split('_')[0]}.*{value}"):
        _twin().qsts(10, **{"resolution_s": 900.0, field: value})


def test_more_steps_than_a_run_can_keep_are_named() -> None:
    from gridpilot.twin.unbalanced.qsts import MAX_STEPS

    with pytest.raises(ValidationError, match=f"steps must be at most.*{10**12:,}"):
        _twin().qsts(10**12, 900.0)
    assert MAX_STEPS >= 31_536_000  # a year at 1 s still fits in one run
