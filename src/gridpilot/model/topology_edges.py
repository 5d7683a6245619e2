"""Branch edges of a grid as bus-position pairs, with or without the switch states."""

from __future__ import annotations

import numpy as np

from gridpilot.model.grid import Grid
from gridpilot.model.schema import ElementType


def branch_status(grid: Grid, switch_closed: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-end closed status of lines and transformers and the bus-bus switches.

    Returns ``line_from``, ``line_to``, ``trafo_hv``, ``trafo_lv`` (bool, table order, including
    in_service) and ``busswitch`` (bool per switch, True where an et=2 switch is closed).
    ``switch_closed`` overrides ``grid.switch["closed"]`` (table order).
    """
    sw = grid.switch
    closed = sw["closed"] if switch_closed is None else np.asarray(switch_closed, bool)
    ln, tr = grid.line, grid.transformer
    lf = ln["in_service"].copy()
    lt = ln["in_service"].copy()
    th = tr["in_service"].copy()
    tl = tr["in_service"].copy()
    et = sw["et"]
    open_ = ~closed
    m = (et == ElementType.LINE) & open_
    if np.any(m):
        pos = ln.position_map(sw["element"][m], "line")
        at_from = ln["from_bus"][pos] == sw["bus"][m]
        lf[pos[at_from]] = False
        lt[pos[~at_from]] = False
    m = (et == ElementType.TRANSFORMER) & open_
    if np.any(m):
        pos = tr.position_map(sw["element"][m], "transformer")
        at_hv = tr["hv_bus"][pos] == sw["bus"][m]
        th[pos[at_hv]] = False
        tl[pos[~at_hv]] = False
    busswitch = (et == ElementType.BUS) & closed
    return {"line_from": lf, "line_to": lt, "trafo_hv": th, "trafo_lv": tl, "busswitch": busswitch}


def branch_edges(
    grid: Grid, respect_switches: bool = True, switch_closed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Edges (bus positions a, b) of in-service branches that conduct.

    With ``respect_switches`` a branch with an open switch at either end does not conduct and an
    open bus-bus switch is no edge; without it every in-service branch and bus switch is an edge.
    """
    ln, tr, sw = grid.line, grid.transformer, grid.switch
    if respect_switches:
        st = branch_status(grid, switch_closed)
        lon = st["line_from"] & st["line_to"]
        ton = st["trafo_hv"] & st["trafo_lv"]
        bsw = st["busswitch"]
    else:
        lon = ln["in_service"]
        ton = tr["in_service"]
        bsw = sw["et"] == ElementType.BUS
    pm = grid.bus.position_map
    a = [pm(ln["from_bus"][lon], "bus"), pm(tr["hv_bus"][ton], "bus"), pm(sw["bus"][bsw], "bus")]
    b = [pm(ln["to_bus"][lon], "bus"), pm(tr["lv_bus"][ton], "bus"), pm(sw["element"][bsw], "bus")]
    return np.concatenate(a).astype(np.int64), np.concatenate(b).astype(np.int64)
