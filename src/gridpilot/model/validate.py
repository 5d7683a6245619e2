"""Validation of a :class:`~gridpilot.model.grid.Grid`: every problem found, each named.

Checks: duplicate ids; references to unknown buses (and switch elements); non-positive
ratings or impedances; NaN or infinite values in any field; shares outside [0, 1]; a line
from a bus to itself; transformers whose vk is not above vkr; no source; a bus with no path
to a source through in-service branches (error), or cut off by the present switch states
(warning).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from gridpilot.errors import Issue
from gridpilot.model.grid import Grid
from gridpilot.model.schema import SCHEMAS, ElementType, Field


def _ids(table_ids: np.ndarray, mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in table_ids[mask][:20])


# one issue type per rule (all are :class:`~gridpilot.errors.Issue`; ``str()`` is unchanged)
class DuplicateIdIssue(Issue):
    """Two or more elements of a table share an id."""


class NotFiniteIssue(Issue):
    """A float field holds NaN or an infinite value."""


class NotPositiveIssue(Issue):
    """A rating or impedance that must be > 0 is not."""


class NegativeIssue(Issue):
    """A field that must be >= 0 is negative."""


class NotInUnitIntervalIssue(Issue):
    """A share outside [0, 1]."""


class UnknownReferenceIssue(Issue):
    """A bus or switch element that does not exist is referred to."""


class SelfLoopIssue(Issue):
    """A line or transformer connects a bus to itself."""


class ZeroImpedanceIssue(Issue):
    """A line with r and x both zero."""


class VkNotAboveVkrIssue(Issue):
    """A transformer whose short-circuit voltage vk is not above its resistive part vkr."""


class ShareSumIssue(Issue):
    """A load whose constant-current and constant-impedance shares exceed 1 together."""


class SwitchNotAtEndIssue(Issue):
    """A switch whose bus is not an end of the branch it switches."""


class UnknownElementTypeIssue(Issue):
    """A switch element type other than line, transformer or bus."""


class NoSourceIssue(Issue):
    """A grid with buses but no in-service source."""


class UnsuppliedBusIssue(Issue):
    """A bus with no path to a source (error) or cut off by the present switch states (warning)."""


# field checks of the schema: (issue type, message, test of the bad values)
_FIELD_CHECKS: dict[str, tuple[type[Issue], str, Callable[[np.ndarray], np.ndarray]]] = {
    "pos": (NotPositiveIssue, "must be positive", lambda c: c <= 0),
    "nonneg": (NegativeIssue, "must not be negative", lambda c: c < 0),
    "unit": (NotInUnitIntervalIssue, "must lie in [0, 1]", lambda c: (c < 0) | (c > 1)),
}


def _field_issues(
    comp: str, f: Field, col: np.ndarray, ids: np.ndarray, bus_ids: np.ndarray
) -> list[Issue]:
    """The issues of one schema field's column: not finite, else its range check, and its bus reference."""
    out: list[Issue] = []
    if col.dtype.kind == "f":
        bad = ~np.isfinite(col)
        if np.any(bad):
            return [
                NotFiniteIssue(comp, f.name, "is not finite", _ids(ids, bad), float(col[bad][0]))
            ]
    check = _FIELD_CHECKS.get(f.check or "")
    if check is not None:
        cls, msg, test = check
        bad = test(col)
        if np.any(bad):
            out.append(cls(comp, f.name, msg, _ids(ids, bad), col[bad][0].item()))
    if f.ref == "bus":
        bad = ~np.isin(col, bus_ids)
        if np.any(bad):
            out.append(
                UnknownReferenceIssue(
                    comp, f.name, "refers to an unknown bus", _ids(ids, bad), int(col[bad][0])
                )
            )
    return out


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
                DuplicateIdIssue(
                    comp, "id", "duplicate id", tuple(int(i) for i in dup[:20]), int(dup[0])
                )
            )
        for f in schema:
            issues += _field_issues(comp, f, t[f.name], ids, bus_ids)
    issues += _component_rules(grid)
    issues += _connectivity(grid)
    return issues


def _line_self_loop(grid: Grid) -> list[Issue]:
    """Lines from a bus to itself."""
    ln = grid.line
    bad = ln["from_bus"] == ln["to_bus"]
    if not np.any(bad):
        return []
    bus = int(ln["to_bus"][bad][0])
    return [SelfLoopIssue("line", "to_bus", "connects a bus to itself", _ids(ln.ids, bad), bus)]


def _line_zero_impedance(grid: Grid) -> list[Issue]:
    """Lines whose r and x are both zero."""
    ln = grid.line
    z = ln["r_ohm_per_km"] + ln["x_ohm_per_km"]
    bad = np.isfinite(z) & (z <= 0)
    if not np.any(bad):
        return []
    msg = "impedance must be positive (r and x both zero)"
    return [ZeroImpedanceIssue("line", "x_ohm_per_km", msg, _ids(ln.ids, bad), 0.0)]


def _trafo_vk(grid: Grid) -> list[Issue]:
    """Transformers whose vk is not above vkr."""
    tr = grid.transformer
    bad = tr["vk_percent"] <= tr["vkr_percent"]
    if not np.any(bad):
        return []
    vk = float(tr["vk_percent"][bad][0])
    msg = "must exceed vkr_percent"
    return [VkNotAboveVkrIssue("transformer", "vk_percent", msg, _ids(tr.ids, bad), vk)]


def _trafo_self_loop(grid: Grid) -> list[Issue]:
    """Transformers from a bus to itself."""
    tr = grid.transformer
    bad = tr["hv_bus"] == tr["lv_bus"]
    if not np.any(bad):
        return []
    bus = int(tr["lv_bus"][bad][0])
    msg = "connects a bus to itself"
    return [SelfLoopIssue("transformer", "lv_bus", msg, _ids(tr.ids, bad), bus)]


def _load_shares(grid: Grid) -> list[Issue]:
    """Loads whose i_share + z_share exceeds 1."""
    ld = grid.load
    bad = ld["i_share"] + ld["z_share"] > 1 + 1e-12
    if not np.any(bad):
        return []
    z = float(ld["z_share"][bad][0])
    return [ShareSumIssue("load", "z_share", "i_share + z_share exceeds 1", _ids(ld.ids, bad), z)]


def _switch_branches(grid: Grid) -> list[Issue]:
    """Line and transformer switches: the element exists and the switch's bus is one of its ends."""
    sw = grid.switch
    et = sw["et"]
    out: list[Issue] = []
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
                UnknownReferenceIssue(
                    "switch",
                    "element",
                    f"refers to an unknown {comp}",
                    _ids(sw.ids, unknown),
                    int(sw["element"][unknown][0]),
                )
            )
        if np.any(known):
            pos = t.position_map(sw["element"][known])
            at_end = (t[ends[0]][pos] == sw["bus"][known]) | (t[ends[1]][pos] == sw["bus"][known])
            if not np.all(at_end):
                bad_ids = sw.ids[known][~at_end]
                out.append(
                    SwitchNotAtEndIssue(
                        "switch",
                        "bus",
                        f"is not an end of its {comp}",
                        tuple(int(i) for i in bad_ids[:20]),
                        int(sw["bus"][known][~at_end][0]),
                    )
                )
    return out


def _switch_buses(grid: Grid) -> list[Issue]:
    """Bus-bus switches whose element is not a known bus."""
    sw = grid.switch
    bad = (sw["et"] == ElementType.BUS) & ~np.isin(sw["element"], grid.bus.ids)
    if not np.any(bad):
        return []
    el = int(sw["element"][bad][0])
    msg = "refers to an unknown bus"
    return [UnknownReferenceIssue("switch", "element", msg, _ids(sw.ids, bad), el)]


def _switch_types(grid: Grid) -> list[Issue]:
    """Switches whose element type is not line, transformer or bus."""
    sw = grid.switch
    et = sw["et"]
    bad = ~np.isin(et, [e.value for e in ElementType])
    if not np.any(bad):
        return []
    msg = "must be 0 (line), 1 (transformer) or 2 (bus)"
    return [UnknownElementTypeIssue("switch", "et", msg, _ids(sw.ids, bad), int(et[bad][0]))]


def _no_source(grid: Grid) -> list[Issue]:
    """A grid with buses and no in-service source."""
    if len(grid.bus) and not np.any(grid.source["in_service"]):
        return [NoSourceIssue("source", "id", "the grid has no in-service source")]
    return []


# (table that must have rows for the rule to run, rule), in the order issues are reported
_RULES: tuple[tuple[str, Callable[[Grid], list[Issue]]], ...] = (
    ("line", _line_self_loop),
    ("line", _line_zero_impedance),
    ("transformer", _trafo_vk),
    ("transformer", _trafo_self_loop),
    ("load", _load_shares),
    ("switch", _switch_branches),
    ("switch", _switch_buses),
    ("switch", _switch_types),
    ("", _no_source),
)


def _component_rules(grid: Grid) -> list[Issue]:
    """The per-component rules of :data:`_RULES`, each on its table when that has rows."""
    out: list[Issue] = []
    for table, rule in _RULES:
        if not table or len(grid.tables[table]):
            out += rule(grid)
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
                UnsuppliedBusIssue(
                    "bus", "id", msg, _ids(grid.bus.ids, bad), int(grid.bus.ids[bad][0]), severity
                )
            )
            if severity == "error":
                break
    return out
