"""Per-step injections of a grid: from its own profiles, or gridpilot's default shapes."""

from __future__ import annotations

import numpy as np

from gridpilot.model import GenKind, Grid, LoadKind, Profiles, default_profiles

INJECTION_KEYS = (
    "load_p_mw",
    "load_q_mvar",
    "gen_p_mw",
    "gen_q_mvar",
    "storage_p_mw",
    "ev_p_mw",
    "flex_p_mw",
)


def profiles_for(grid: Grid, steps: int) -> tuple[Profiles, dict[str, np.ndarray]]:
    """The profiles to use for ``steps`` steps and each component's linked column.

    A grid with its own profiles uses them (columns from ``p_profile``/``q_profile``); a grid
    without gets :func:`~gridpilot.model.default_profiles`: residential shape for loads
    (commercial for commercial and industrial ones), ``pv`` for PV and ``wind`` for wind
    generators; other generators and storage stay constant.
    """
    if grid.profiles is not None:
        if steps > grid.profiles.steps:
            from gridpilot.errors import ValidationError

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
