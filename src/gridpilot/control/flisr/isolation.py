"""Isolation: open every closed switch bounding the located sections, widening the isolated
zone across bounds that are not remote-controllable, then reclose the tripped devices that do
not bound it (the upstream part comes back at once)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from gridpilot.control.flisr.location import Location
from gridpilot.control.flisr.results import SwitchAction
from gridpilot.control.sections import Sections
from gridpilot.errors import InfeasibleError
from gridpilot.model import Grid

log = logging.getLogger(__name__)


@dataclass
class Isolation:
    """The isolation step's outcome: ``iso`` per section (isolated), ``to_open`` the switch
    positions opened (remote first, breakers last), ``work`` the switch states after isolating
    and reclosing, the plan's first actions and notes."""

    iso: np.ndarray
    to_open: np.ndarray
    work: np.ndarray
    plan: list[SwitchAction]
    notes: list[str] = field(default_factory=list)


def isolate(
    sec: Sections, grid: Grid, loc: Location, now: np.ndarray, locked: np.ndarray
) -> Isolation:
    """Isolate the located sections from switch states ``now`` (after the trip); marks the
    bounds in ``locked`` (in place). Returns the :class:`Isolation`."""
    sw = grid.switch
    notes: list[str] = []
    iso = np.zeros(sec.n, bool)
    iso[loc.sections] = True
    if np.any(iso & sec.source):
        notes.append("a located section holds a source: only the upstream grid can clear it")
    for _ in range(sec.n):
        b = sec.bounds(iso)
        manual = b[now[b] & ~sec.sw_remote[b]]
        if manual.size == 0:
            break
        for s in manual:
            other = sec.sw_b[s] if iso[sec.sw_a[s]] else sec.sw_a[s]
            iso[other] = True
            notes.append(
                f"switch {int(sw.ids[s])} is manual: isolated zone widened to section {int(other)}"
            )
    bounds = sec.bounds(iso)
    to_open = bounds[now[bounds]]
    # remote first, breakers last among them (order of the plan)
    to_open = to_open[np.argsort(~sec.sw_remote[to_open], kind="stable")]
    work = now.copy()
    work[to_open] = False
    locked[bounds] = True
    plan = [SwitchAction(int(sw.ids[s]), False, "isolate") for s in to_open]
    # upstream: reclose tripped devices that do not bound an isolated section
    for t in np.asarray(loc.tripped, np.int64):
        if not locked[t]:
            work[t] = True
            plan.append(SwitchAction(int(sw.ids[t]), True, "reclose"))
    return Isolation(iso, to_open, work, plan, notes)


def require_interrupting_switch(
    grid: Grid, sec: Sections, line_ids: int | Iterable[int], closed: np.ndarray
) -> None:
    """Raise :class:`InfeasibleError` when an energised faulted line has no switch between
    it and its source that could interrupt it (nothing for FLISR to operate)."""
    ids = [line_ids] if isinstance(line_ids, (int, np.integer)) else list(line_ids)
    st = sec.state(closed)
    fsec = sec.of_line[grid.line.index_of([int(x) for x in ids])]
    live = [int(x) for x, s in zip(ids, fsec, strict=True) if st.energised[s]]
    if not live:
        return  # a fault on a dead line trips nothing and needs no action
    hint = (
        f"grid {grid.name!r} has no switches"
        + (
            " (a MATPOWER case gets them only when it marks ties as status-0 branches;"
            " see docs/flisr.md)"
            if grid.meta.get("source") == "matpower"
            else ""
        )
        if not len(grid.switch)
        else "its section holds a source: only the upstream grid can clear it"
    )
    log.info("flisr: no switch interrupts faulted line(s) %s on %r", live, grid.name)
    raise InfeasibleError(
        f"flisr: no switch can interrupt a fault on line(s) {live}: {hint}", "switches"
    )
