"""The twin runs a day-ahead what-if on forecast loads (the path the flex planner uses)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gridpilot.forecast import day_ahead


def test_day_ahead_forecast_feeds_twin_timeseries() -> None:
    from gridpilot.model import load_grid
    from gridpilot.twin import Injections, Twin

    grid = load_grid("case33bw")
    ids = grid.load.ids
    p_nom = np.asarray(grid.load["p_mw"], dtype=float)
    days = 28
    t = np.arange(days * 24)
    shape = 0.7 + 0.3 * np.sin(2 * np.pi * (t - 6) / 24)
    rng = np.random.default_rng(0)
    hist = pd.DataFrame(
        p_nom[None, :] * shape[:, None] * (1 + 0.05 * rng.standard_normal((len(t), len(ids)))),
        index=pd.date_range("2025-03-01", periods=len(t), freq="h"),
        columns=[f"load_{i}" for i in ids],
    )
    fc = day_ahead(hist)
    p = fc.matrix([f"load_{i}" for i in ids])  # (24, n_load) in table order, MW
    p90 = fc.matrix([f"load_{i}" for i in ids], quantile=0.9)
    assert p.shape == (24, len(ids)) and (p90 >= p - 1e-12).all()
    twin = Twin(grid)
    ts = twin.timeseries(24, injections=Injections(load_p_mw=p))
    ts90 = twin.timeseries(24, injections=Injections(load_p_mw=p90))
    assert np.asarray(ts.converged).all()
    # the P90 what-if loads the grid more: lower minimum voltage, more losses
    assert np.mean(ts90.vmin_pu) < np.mean(ts.vmin_pu)
    assert np.sum(ts90.losses_kw) > np.sum(ts.losses_kw)
