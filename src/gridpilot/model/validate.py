"""Validation of a :class:`~gridpilot.model.grid.Grid`: every problem found, each named.

Checks: duplicate ids; references to unknown buses (and switch elements); non-positive
ratings or impedances; NaN or infinite values in any field; shares outside [0, 1]; a line
from a bus to itself; transformers whose vk is not above vkr; no source; a bus with no path
to a source through in-service branches (error), or cut off by the present switch states
(warning).
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from gridpilot.errors import Issue
from gridpilot.model.grid import Grid
from gridpilot.model.schema import SCHEMAS, ElementType


def _ids(table_ids: np.ndarray, mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in table_ids[mask][:20])


def validate_grid(grid: Grid) -> list[Issue]:
    """All issues of ``grid`` (severity ``error`` or ``warning``), in a stable order."""
    issues: list[Issue] = []
    bus_ids = grid.bus.ids
    for comp, schema in SCHEMAS.items():
        t = grid.tables[comp]
        if not len(t):
            continue
        ids = t.ids
        uniq, counts = np.unique(ids, return_counts=True)
        if np.any(counts > 1):
            dup = uniq[counts > 1]
            issues.append(
                Issue(comp, "id", "duplicate id", tuple(int(i) for i in dup[:20]), int(dup[0]))
            )
        for f in schema:
            col = t[f.name]
            if col.dtype.kind == "f":
                bad = ~np.isfinite(col)
                if np.any(bad):
                    issues.append(
                        Issue(comp, f.name, "is not finite", _ids(ids, bad), float(col[bad][0]))
                    )
                    continue
            if f.check == "pos":
                bad = col <= 0
                if np.any(bad):
                    issues.append(
                        Issue(comp, f.name, "must be positive", _ids(ids, bad), col[bad][0].item())
                    )
            elif f.check == "nonneg":
                bad = col < 0
                if np.any(bad):
                    issues.append(
                        Issue(
                            comp, f.name, "must not be negative", _ids(ids, bad), col[bad][0].item()
                        )
                    )
            elif f.check == "unit":
                bad = (col < 0) | (col > 1)
                if np.any(bad):
                    issues.append(
                        Issue(
                            comp, f.name, "must lie in [0, 1]", _ids(ids, bad), col[bad][0].item()
                        )
                    )
            if f.ref == "bus":
                bad = ~np.isin(col, bus_ids)
                if np.any(bad):
                    issues.append(
                        Issue(
                            comp,
                            f.name,
                            "refers to an unknown bus",
                            _ids(ids, bad),
                            int(col[bad][0]),
                        )
                    )
    issues += _component_rules(grid)
    issues += _connectivity(grid)
    return issues


def _component_rules(grid: Grid) -> list[Issue]:
    out: list[Issue] = []
    ln = grid.line
    if len(ln):
        bad = ln["from_bus"] == ln["to_bus"]
        if np.any(bad):
            out.append(
                Issue(
                    "line",
                    "to_bus",
                    "connects a bus to itself",
                    _ids(ln.ids, bad),
                    int(ln["to_bus"][bad][0]),
                )
            )
        z = ln["r_ohm_per_km"] + ln["x_ohm_per_km"]
        bad = np.isfinite(z) & (z <= 0)
        if np.any(bad):
            out.append(
                Issue(
                    "line",
                    "x_ohm_per_km",
                    "impedance must be positive (r and x both zero)",
                    _ids(ln.ids, bad),
                    0.0,
                )
            )
    tr = grid.transformer
    if len(tr):
        bad = tr["vk_percent"] <= tr["vkr_percent"]
        if np.any(bad):
            out.append(
                Issue(
                    "transformer",
                    "vk_percent",
                    "must exceed vkr_percent",
                    _ids(tr.ids, bad),
                    float(tr["vk_percent"][bad][0]),
                )
            )
        bad = tr["hv_bus"] == tr["lv_bus"]
        if np.any(bad):
            out.append(
                Issue(
                    "transformer",
                    "lv_bus",
                    "connects a bus to itself",
                    _ids(tr.ids, bad),
                    int(tr["lv_bus"][bad][0]),
                )
            )
    ld = grid.load
    if len(ld):
        bad = ld["i_share"] + ld["z_share"] > 1 + 1e-12
        if np.any(bad):
            out.append(
                Issue(
                    "load",
                    "z_share",
                    "i_share + z_share exceeds 1",
                    _ids(ld.ids, bad),
                    float(ld["z_share"][bad][0]),
                )
            )
    sw = grid.switch
    if len(sw):
        et = sw["et"]
        for kind, comp, ends in (
            (ElementType.LINE, "line", ("from_bus", "to_bus")),
            (ElementType.TRANSFORMER, "transformer", ("hv_bus", "lv_bus")),
        ):
            m = et == kind
            if not np.any(m):
                continue
            t = grid.tables[comp]
            known = np.isin(sw["element"], t.ids) & m
            unknown = m & ~known
            if np.any(unknown):
                out.append(
                    Issue(
                        "switch",
                        "element",
                        f"refers to an unknown {comp}",
                        _ids(sw.ids, unknown),
                        int(sw["element"][unknown][0]),
                    )
                )
            if np.any(known):
                pos = t.position_map(sw["element"][known])
                at_end = (t[ends[0]][pos] == sw["bus"][known]) | (
                    t[ends[1]][pos] == sw["bus"][known]
                )
                if not np.all(at_end):
                    bad_ids = sw.ids[known][~at_end]
                    out.append(
                        Issue(
                            "switch",
                            "bus",
                            f"is not an end of its {comp}",
                            tuple(int(i) for i in bad_ids[:20]),
                            int(sw["bus"][known][~at_end][0]),
                        )
                    )
        m = et == ElementType.BUS
        bad = m & ~np.isin(sw["element"], grid.bus.ids)
        if np.any(bad):
            out.append(
                Issue(
                    "switch",
                    "element",
                    "refers to an unknown bus",
                    _ids(sw.ids, bad),
                    int(sw["element"][bad][0]),
                )
            )
        bad = ~np.isin(et, [e.value for e in ElementType])
        if np.any(bad):
            out.append(
                Issue(
                    "switch",
                    "et",
                    "must be 0 (line), 1 (transformer) or 2 (bus)",
                    _ids(sw.ids, bad),
                    int(et[bad][0]),
                )
            )
    if len(grid.bus) and not np.any(grid.source["in_service"]):
        out.append(Issue("source", "id", "the grid has no in-service source"))
    return out


def _connectivity(grid: Grid) -> list[Issue]:
    """Buses with no path to a source (error) or cut off by open switches (warning)."""
    if not len(grid.bus) or not len(grid.source):
        return []
    # only meaningful when references are valid; skip silently otherwise (reported above)
    from gridpilot.model.topology_edges import branch_edges

    try:
        edges_all = branch_edges(grid, respect_switches=False)
        edges_now = branch_edges(grid, respect_switches=True)
    except Exception:
        return []
    out: list[Issue] = []
    n = len(grid.bus)
    src_pos = grid.bus.position_map(grid.source["bus"][grid.source["in_service"]])
    for edges, severity, msg in (
        (edges_all, "error", "has no path to a source"),
        (edges_now, "warning", "is not supplied with the present switch states"),
    ):
        a, b = edges
        g = coo_matrix((np.ones(a.size), (a, b)), shape=(n, n))
        _, comp = connected_components(g, directed=False)
        fed = np.isin(comp, comp[src_pos]) & grid.bus["in_service"]
        bad = ~fed & grid.bus["in_service"]
        if np.any(bad):
            out.append(
                Issue(
                    "bus", "id", msg, _ids(grid.bus.ids, bad), int(grid.bus.ids[bad][0]), severity
                )
            )
            if severity == "error":
                break
    return out
