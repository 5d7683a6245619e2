"""Fault location from what a control room sees: trips, fault-passage indicators, meters.

Inputs are telemetry (:class:`Indications`), never the simulator's fault. The faulted section
is the one between the last device that saw fault current and the first that did not. With
failed or missing indicators the locator scores every section below the tripped device (and
pairs of sections, for simultaneous faults) by how many indications each explanation
contradicts, and returns the explanations of least cost with a confidence for each section.

:func:`indications_for_fault` derives what a protection system would report for faults on
given lines (for tests, benchmarks and the field simulator).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from gridpilot.control.sections import Sections, SectionState, subtree_mask
from gridpilot.errors import UnknownComponentError, ValidationError
from gridpilot.model import Grid, SwitchKind

log = logging.getLogger(__name__)

P_INDICATOR_WRONG = 0.05  # prior probability that one indicator reports wrongly
SECOND_FAULT_COST = 2.0  # a second simultaneous fault costs as much as this many wrong indicators
MAX_PAIR_CANDIDATES = 400  # beyond this many sections, pairs are not searched


@dataclass
class Indications:
    """What the control room sees after a fault.

    ``tripped``: switch ids of breakers that tripped; ``fpi``: switch id -> True (picked up
    fault current), False (did not) or None (no report); ``lost_voltage``: bus ids whose meters
    report loss of voltage. Switches absent from ``fpi`` count as not reporting.
    """

    tripped: list[int] = field(default_factory=list)
    fpi: dict[int, bool | None] = field(default_factory=dict)
    lost_voltage: list[int] = field(default_factory=list)


@dataclass
class Candidate:
    """One candidate faulted section: its id, what it holds and how sure the locator is.

    ``confidence`` is the posterior probability (0..1) that this section holds a fault;
    ``cost`` the cost of the best explanation containing it: indications it contradicts,
    plus :data:`SECOND_FAULT_COST` if that explanation needs two faults.
    """

    section: int
    line_ids: list[int]
    bus_ids: list[int]
    confidence: float
    cost: float


@dataclass
class Location:
    """Result of fault location.

    ``sections``: the smallest consistent set of faulted sections (isolate all of them);
    ``candidates``: every section considered likely, best first; ``tripped``: switch
    positions of the protective devices that operated (given or inferred);
    ``explained``: True when the best explanation contradicts no indication.
    """

    sections: list[int]
    candidates: list[Candidate]
    tripped: list[int]
    explained: bool
    notes: list[str] = field(default_factory=list)


def _fault_sections(sections: Sections, grid: Grid, line_ids: Iterable[int]) -> np.ndarray:
    ids = np.atleast_1d(np.asarray(list(line_ids), np.int64))
    if ids.size == 0:
        raise ValidationError("fault: give at least one line id")
    known = grid.line.ids
    bad = ids[~np.isin(ids, known)]
    if bad.size:
        raise UnknownComponentError(
            "line", int(bad[0]), f"{grid.name} has line ids {int(known.min())}..{int(known.max())}"
        )
    return sections.of_line[grid.line.index_of(ids)]


def path_switches(st: SectionState, section: int) -> list[int]:
    """Switch positions on the supply path from the source down to ``section`` (top first)."""
    out: list[int] = []
    s = section
    while s >= 0 and st.parent[s] >= 0:
        out.append(int(st.parent_switch[s]))
        s = int(st.parent[s])
    return out[::-1]


def protective_device(sections: Sections, st: SectionState, section: int) -> int:
    """Switch position that clears a fault in ``section``: the nearest breaker upstream.

    Without a breaker on the path the most upstream switch acts as the feeder breaker; -1 when
    the fault lies in a source section (only the upstream grid can clear it).
    """
    path = path_switches(st, section)
    for s in reversed(path):
        if sections.sw_kind[s] == SwitchKind.BREAKER:
            return s
    return path[0] if path else -1


def indications_for_fault(
    grid: Grid,
    line_ids: int | Iterable[int],
    switch_closed: np.ndarray | None = None,
    fpi_failures: Mapping[int, bool | None] | None = None,
    sections: Sections | None = None,
) -> Indications:
    """What protection and meters report for faults on ``line_ids`` (simulated protection).

    Fault current flows from the sources along the supply tree to each faulted section:
    every fault-passage indicator on that path picks up, all others do not. The nearest
    breaker upstream of each fault trips (:func:`protective_device`); every bus with a load
    below a tripped device reports lost voltage. ``fpi_failures`` overrides the reports of
    given switch ids (False: failed to pick up, True: false pickup, None: no report).
    A fault in a de-energised section gives no indications. Returns :class:`Indications`.
    """
    sec = sections or Sections(grid)
    closed = (
        grid.switch["closed"].copy() if switch_closed is None else np.asarray(switch_closed, bool)
    )
    ids = [line_ids] if isinstance(line_ids, (int, np.integer)) else list(line_ids)
    fsec = _fault_sections(sec, grid, ids)
    st = sec.state(closed)
    picked = np.zeros(len(grid.switch), bool)
    trips: list[int] = []
    for s in fsec:
        if not st.energised[s]:
            continue
        path = path_switches(st, int(s))
        picked[path] = True
        dev = protective_device(sec, st, int(s))
        if dev >= 0 and dev not in trips:
            trips.append(dev)
    # a device below another tripped device on the same path still trips; keep them all
    after = closed.copy()
    after[trips] = False
    st_after = sec.state(after)
    lost_sec = st.energised & ~st_after.energised
    load_bus = (
        np.unique(grid.bus.position_map(grid.load["bus"]))
        if len(grid.load)
        else np.zeros(0, np.int64)
    )
    lost_bus = load_bus[lost_sec[sec.of_bus[load_bus]]]
    sw_ids = grid.switch.ids
    has = sec.sw_fpi
    fpi: dict[int, bool | None] = {
        int(i): bool(p) for i, p in zip(sw_ids[has], picked[has], strict=True)
    }
    if fpi_failures:
        for k, v in fpi_failures.items():
            if int(k) not in set(sw_ids.tolist()):
                raise UnknownComponentError("switch", k)
            fpi[int(k)] = v
    return Indications(
        tripped=[int(sw_ids[t]) for t in trips],
        fpi=fpi,
        lost_voltage=[int(b) for b in grid.bus.ids[lost_bus]],
    )


def _subtree(st: SectionState, top: int) -> np.ndarray:
    """Sections in the supply subtree of ``top`` (itself included)."""
    return np.flatnonzero(subtree_mask(st.parent, [top]))


def locate(
    grid: Grid,
    ind: Indications,
    switch_closed: np.ndarray | None = None,
    sections: Sections | None = None,
) -> Location:
    """Locate the faulted section(s) from :class:`Indications` (pre-trip switch states).

    Returns a :class:`Location`: the least-cost explanation's sections (ties all kept), and
    candidates with confidences. Unknown switch or bus ids are an UnknownComponentError.
    """
    sec = sections or Sections(grid)
    closed = (
        grid.switch["closed"].copy()
        if switch_closed is None
        else np.asarray(switch_closed, bool).copy()
    )
    sw = grid.switch
    trip_pos = sw.index_of(ind.tripped) if ind.tripped else np.zeros(0, np.int64)
    closed[trip_pos] = True  # location reasons on the pre-trip network
    st = sec.state(closed)
    obs = _observed(grid, ind)
    tops, notes = _tripped_devices(grid, sec, st, ind, obs, trip_pos)
    if not tops:
        log.info("locate: no trip, voltage loss or indicator pickup reported on %r", grid.name)
        return Location([], [], [], True, [*notes, "no indication of a fault"])
    # candidates: every section below the tripped devices; an ancestor device's subtree wins
    cand_mask = np.zeros(sec.n, bool)
    for t in tops:
        cand_mask[_subtree(st, _below(sec, st, t))] = True
    cands = np.flatnonzero(cand_mask)
    # observed switches: those bounding a candidate section (and the devices themselves)
    rel = np.flatnonzero((cand_mask[sec.sw_a] | cand_mask[sec.sw_b]) & (obs >= 0))
    expect = _expected_pickups(st, cands, rel, len(sw))
    ex = _explanations(expect, obs[rel].astype(bool))
    chosen, out = _ranked(grid, sec, cands, ex)
    # the best explanation: least cost, then fewest faults, then first listed
    two = ex.b >= 0
    best_i = int(np.lexsort((np.arange(ex.cost.size), two, ex.cost))[0])
    n_faults = 2 if two[best_i] else 1
    wrong = float(ex.cost[best_i]) - SECOND_FAULT_COST * (n_faults - 1)
    if n_faults > 1:
        notes.append(f"indications explained by {n_faults} simultaneous faults")
    if wrong > 0:
        log.info("locate: the best explanation contradicts %g indication(s)", wrong)
        notes.append(
            f"best explanation contradicts {wrong:g} indication(s) (failed or wrong indicators)"
        )
    return Location(chosen, out, tops, bool(wrong <= 0), notes)


def _observed(grid: Grid, ind: Indications) -> np.ndarray:
    """Per switch: -1 unknown, 0 no fault current seen, 1 fault current seen (indicators)."""
    sw = grid.switch
    obs = np.full(len(sw), -1, np.int8)
    if ind.fpi:
        keys = np.fromiter(ind.fpi.keys(), np.int64, len(ind.fpi))
        vals = np.fromiter(
            (-1 if v is None else int(bool(v)) for v in ind.fpi.values()), np.int8, len(ind.fpi)
        )
        obs[sw.index_of(keys)] = vals
    return obs


def _tripped_devices(
    grid: Grid,
    sec: Sections,
    st: SectionState,
    ind: Indications,
    obs: np.ndarray,
    trip_pos: np.ndarray,
) -> tuple[list[int], list[str]]:
    """Switch positions of the tripped devices: those reported, else inferred from lost-voltage
    reports, else from indicators that saw fault current; and notes saying which."""
    notes: list[str] = []
    tops: list[int] = [int(t) for t in trip_pos]
    if tops:
        return tops, notes
    # no trip reported: the devices above the topmost sections that lost voltage
    if ind.lost_voltage:
        lb = grid.bus.index_of(ind.lost_voltage)
        lost = np.zeros(sec.n, bool)
        lost[sec.of_bus[lb]] = True
        lost &= st.energised
        heads = np.flatnonzero(
            lost & ~np.where(st.parent >= 0, lost[np.maximum(st.parent, 0)], False)
        )
        for h in heads:
            dev = protective_device(sec, st, int(h))
            if dev >= 0 and dev not in tops:
                tops.append(dev)
        notes.append("no trip reported: tripped device inferred from lost-voltage reports")
        return tops, notes
    for p in np.flatnonzero(obs == 1):
        path = path_switches(st, int(_below(sec, st, int(p))))
        dev = next(
            (s for s in reversed(path) if sec.sw_kind[s] == SwitchKind.BREAKER),
            path[0] if path else -1,
        )
        if dev >= 0 and dev not in tops:
            tops.append(dev)
    if tops:
        notes.append("no trip or voltage reports: tripped device inferred from indicators")
    return tops, notes


def _expected_pickups(
    st: SectionState, cands: np.ndarray, rel: np.ndarray, n_sw: int
) -> np.ndarray:
    """(candidates, observed switches) bool: the switches on each candidate's supply path
    (those that would see fault current were the fault there)."""
    col = np.full(n_sw, -1, np.int64)
    col[rel] = np.arange(rel.size)
    expect = np.zeros((cands.size, rel.size), bool)
    rows, cur = np.arange(cands.size), cands.copy()
    while rows.size:  # climb all candidates' supply paths together, one level per step
        up = st.parent[cur] >= 0
        rows, cur = rows[up], cur[up]
        kk = col[st.parent_switch[cur]]
        expect[rows[kk >= 0], kk[kk >= 0]] = True
        cur = st.parent[cur]
    return expect


@dataclass
class _Explanations:
    """Explanations of the indications: cost (contradicted indications, plus the second
    fault's), first and second section as candidate positions (-1 none), posterior."""

    cost: np.ndarray
    a: np.ndarray
    b: np.ndarray
    post: np.ndarray


def _explanations(expect: np.ndarray, o: np.ndarray) -> _Explanations:
    """Single faults, and pairs where no single fault explains everything, with posteriors."""
    single = (expect != o[None, :]).sum(axis=1).astype(float)
    alpha = float(np.log((1 - P_INDICATOR_WRONG) / P_INDICATOR_WRONG))
    n_c = expect.shape[0]
    e_cost, e_a, e_b = single, np.arange(n_c), np.full(n_c, -1)
    if 1 < n_c <= MAX_PAIR_CANDIDATES and single.min() > 0:
        i, j = np.triu_indices(n_c, 1)
        both = expect[i] | expect[j]
        pair = ((both != o[None, :]).sum(axis=1) + SECOND_FAULT_COST).astype(float)
        keep = pair < single.min() + 3
        e_cost = np.concatenate([e_cost, pair[keep]])
        e_a = np.concatenate([e_a, i[keep]])
        e_b = np.concatenate([e_b, j[keep]])
    post = np.exp(-alpha * (e_cost - e_cost.min()))
    post /= post.sum()
    return _Explanations(e_cost, e_a, e_b, post)


def _ranked(
    grid: Grid, sec: Sections, cands: np.ndarray, ex: _Explanations
) -> tuple[list[int], list[Candidate]]:
    """The sections of the least-cost explanations (sorted) and up to ten candidates ranked by
    summed posterior (then least cost)."""
    n_c = cands.size
    two = ex.b >= 0
    # per section: summed posterior (accumulated in explanation order) and least cost
    idx = np.stack([ex.a, ex.b], axis=1).ravel()
    has = idx >= 0
    marg = np.zeros(n_c)
    np.add.at(marg, idx[has], np.repeat(ex.post, 2)[has])
    mism = np.full(n_c, np.inf)
    np.minimum.at(mism, idx[has], np.repeat(ex.cost, 2)[has])
    at_best = ex.cost == ex.cost.min()
    chosen_pos = np.unique(np.concatenate([ex.a[at_best], ex.b[at_best & two]]))
    chosen = sorted(int(x) for x in cands[chosen_pos])
    in_chosen = np.zeros(n_c, bool)
    in_chosen[chosen_pos] = True
    order = np.lexsort((mism, -marg))
    ranked_pos = [int(q) for q in order if marg[q] >= 1e-3 or in_chosen[q]][:10]
    lid, bid = grid.line.ids, grid.bus.ids
    out = [
        Candidate(
            int(cands[q]),
            [int(x) for x in lid[sec.lines_of(int(cands[q]))]],
            [int(x) for x in bid[sec.buses_of(int(cands[q]))]],
            round(float(marg[q]), 4),
            float(mism[q]),
        )
        for q in ranked_pos
    ]
    return chosen, out


def _below(sec: Sections, st: SectionState, switch_pos: int) -> int:
    """The section on the downstream side of a switch (in the supply tree ``st``)."""
    a, b = int(sec.sw_a[switch_pos]), int(sec.sw_b[switch_pos])
    if st.parent[b] == a:
        return b
    if st.parent[a] == b:
        return a
    return b if st.depth[b] > st.depth[a] else a
