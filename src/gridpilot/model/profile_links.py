"""Which profile column drives each element of a grid, and the grid's aggregate series.

:func:`profiles_for` is the one mapping the twin, the field simulator and the flexibility
planner use; :func:`grid_series` sums it into the grid's own load, PV and wind in MW (the data
``gridpilot forecast --data builtin:<grid>`` forecasts, and ``forecast export`` writes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gridpilot.errors import ValidationError
from gridpilot.model.profiles import Profiles, default_profiles
from gridpilot.model.schema import GenKind, LoadKind

if TYPE_CHECKING:
    from gridpilot.model.grid import Grid


def profiles_for(grid: Grid, steps: int) -> tuple[Profiles, dict[str, np.ndarray]]:
    """The profiles to use for ``steps`` steps and each component's linked column.

    A grid with its own profiles uses them (columns from ``p_profile``/``q_profile``); a grid
    without gets :func:`~gridpilot.model.default_profiles`: residential shape for loads
    (commercial for commercial and industrial ones), ``pv`` for PV and ``wind`` for wind
    generators; other generators and storage stay constant.
    """
    if grid.profiles is not None:
        if steps > grid.profiles.steps:
            raise ValidationError(
                f"steps: {grid.name} has {grid.profiles.steps} profile steps, asked for {steps}"
            )
        return grid.profiles, {
            "load_p": grid.load["p_profile"],
            "load_q": grid.load["q_profile"],
            "gen_p": grid.generator["p_profile"],
            "storage_p": grid.storage["p_profile"],
        }
    prof = default_profiles(max(steps, 1))
    kind = grid.load["kind"]
    lcol = np.where((kind == LoadKind.COMMERCIAL) | (kind == LoadKind.INDUSTRIAL), 1, 0).astype(
        np.int32
    )
    gk = grid.generator["kind"]
    gcol = np.select([gk == GenKind.PV, gk == GenKind.WIND], [2, 3], -1).astype(np.int32)
    return prof, {
        "load_p": lcol,
        "load_q": lcol,
        "gen_p": gcol,
        "storage_p": np.full(len(grid.storage), -1, np.int32),
    }


def grid_series(grid: Grid, steps: int) -> pd.DataFrame:
    """The grid's total load, PV and wind (MW) over ``steps`` steps of its profiles (or the
    default shapes), indexed by time: columns ``load_mw`` (loads' P times their profile),
    ``pv_mw`` and ``wind_mw`` (generators of that kind; absent when the grid has none)."""
    if steps < 1:
        raise ValidationError(f"steps: must be at least 1, got {steps}")
    prof, cols = profiles_for(grid, steps)
    vals = prof.values[:steps]

    def total(p_mw: np.ndarray, col: np.ndarray) -> np.ndarray:
        shape = np.where(col >= 0, vals[:, np.maximum(col, 0)], 1.0) if col.size else vals[:, :0]
        return (shape * p_mw[None, :]).sum(axis=1)

    out = {"load_mw": total(grid.load["p_mw"], cols["load_p"])}
    kind = grid.generator["kind"]
    for name, k in (("pv_mw", GenKind.PV), ("wind_mw", GenKind.WIND)):
        m = kind == k
        if m.any():
            out[name] = total(grid.generator["p_mw"][m], cols["gen_p"][m])
    return pd.DataFrame(out, index=pd.DatetimeIndex(prof.index[:steps], name="time"))
