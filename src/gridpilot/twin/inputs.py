"""Per-step injections of a grid: from its own profiles, or gridpilot's default shapes."""

from __future__ import annotations

import numpy as np

from gridpilot.model import Grid, Profiles
from gridpilot.model.profile_links import profiles_for as profiles_for  # the import path stays

INJECTION_KEYS = (
    "load_p_mw",
    "load_q_mvar",
    "gen_p_mw",
    "gen_q_mvar",
    "storage_p_mw",
    "ev_p_mw",
    "flex_p_mw",
)


def step_injections(
    grid: Grid, prof: Profiles, cols: dict[str, np.ndarray], sel: slice, scale: float = 1.0
) -> dict[str, np.ndarray]:
    """(T, n) arrays of every injection for the steps ``sel`` of ``prof``.

    Values are in MW/Mvar times ``scale`` (1e6: W/var, what power-grid-model takes, with no
    extra pass over the arrays); the keys keep their ``_mw``/``_mvar`` names.
    """
    out = {
        "load_p_mw": prof.scale(grid.load["p_mw"] * scale, cols["load_p"], sel),
        "load_q_mvar": prof.scale(grid.load["q_mvar"] * scale, cols["load_q"], sel),
        "gen_p_mw": prof.scale(grid.generator["p_mw"] * scale, cols["gen_p"], sel),
    }
    if len(grid.storage):
        out["storage_p_mw"] = prof.scale(grid.storage["p_mw"] * scale, cols["storage_p"], sel)
    return out
