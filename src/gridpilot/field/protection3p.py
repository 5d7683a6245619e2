"""Protection on an unbalanced feeder: lateral fuses and a head recloser with fuse saving.

The devices come from the feeder's own ``Fuse``/``Recloser`` definitions when it has them;
otherwise (the IEEE 123- and 8500-node scripts define none) :meth:`ProtectionScheme.for_grid`
places them as a utility would: a recloser on the feeder head (the most upstream line or
switch that carries the whole feeder) and a fuse at the start of every lateral (a line that
reaches a bus with fewer phases than the bus it leaves, and feeds a load). Ratings follow the pre-fault load:

- fuse: the next standard T-link rating above 1.5 × the lateral's peak phase current;
  minimum-melt time ``t_mm = 4 / (M² − 1) + 0.02`` s with ``M = I / (2·rating)``, total
  clearing ``1.25·t_mm + 0.01`` s (an I²t-shaped curve; no melting below 2 × rating);
- recloser: phase pickup 1.5 × the head's pre-fault phase current (reach to the far end of
  a long feeder), ground (residual) pickup ``max(2 × pre-fault residual, 0.3 × phase pickup)``; two fast shots
  ``t = 0.016 + 0.02 / (M² − 1)`` then two delayed ``t = 0.5 + 5 / (M² − 1)``, then lockout.

:func:`simulate_protection` plays the sequence against a
:class:`~gridpilot.twin.unbalanced.faults.FaultStudy`: on a fast shot the recloser clears
before a lateral fuse melts (fuse saving: a temporary fault is gone at the reclose); a
permanent lateral fault melts the fuse on the delayed shot; a fault on the main feeder locks
the recloser out. When the fault current is so high that the fuse melts before the fast
curve, the fuse blows first (coordination lost, said in the events). Pre-heating between
shots is ignored. Fault-passage indicators on every switch pick up when a conductor carries
more than ``max(2.5 × its pre-fault current, 50 A)`` (or the residual exceeds its pickup).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.twin.unbalanced.faults import FaultStudy
from gridpilot.twin.unbalanced.topology import SwitchedResult

log = logging.getLogger(__name__)

T_LINKS_A = (6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 65, 80, 100, 140, 200)
FPI_MIN_A = 50.0
FPI_FACTOR = 2.5
SHOTS = ("fast", "fast", "delayed", "delayed")
PICKUP_FACTOR = 1.5  # recloser phase pickup over the head's pre-fault peak phase current


def fuse_melt_s(i_a: float, rating_a: float) -> float:
    """Minimum-melt time (s) of a fuse of ``rating_a`` at ``i_a`` (inf below 2 × rating)."""
    m = i_a / (2.0 * rating_a)
    return float("inf") if m <= 1.0 else 4.0 / (m * m - 1.0) + 0.02


def fuse_clear_s(i_a: float, rating_a: float) -> float:
    """Total clearing time (s) of a fuse at ``i_a``."""
    return 1.25 * fuse_melt_s(i_a, rating_a) + 0.01


def recloser_trip_s(m: float, shot: str) -> float:
    """Recloser trip time (s) at ``m`` times pickup on a ``fast`` or ``delayed`` shot."""
    if m <= 1.0:
        return float("inf")
    k = 1.0 / (m * m - 1.0)
    return 0.016 + 0.02 * k if shot == "fast" else 0.5 + 5.0 * k


@dataclass(frozen=True)
class Device:
    """A protective device on branch ``branch``: ``kind`` ``"fuse"`` (``rating_a``) or
    ``"recloser"`` (phase and ground pickups, A)."""

    name: str
    kind: str
    branch: str
    rating_a: float = 0.0
    pickup_a: float = 0.0
    ground_pickup_a: float = 0.0


@dataclass
class ProtectionScheme:
    """The devices of one feeder and the switches that carry fault indicators."""

    devices: list[Device]
    fpi_switches: list[str]
    fpi_pickup_a: dict[str, float] = field(default_factory=dict)

    @property
    def recloser(self) -> Device | None:
        """The feeder-head recloser, if any."""
        return next((d for d in self.devices if d.kind == "recloser"), None)

    @property
    def fuses(self) -> list[Device]:
        """The lateral fuses."""
        return [d for d in self.devices if d.kind == "fuse"]

    def branches(self) -> tuple[str, ...]:
        """Branches a device sits on (they open when it operates)."""
        return tuple(d.branch for d in self.devices)

    @classmethod
    def for_grid(cls, grid: ThreePhaseGrid, pre: SwitchedResult) -> ProtectionScheme:
        """The feeder's own fuses and reclosers, or a standard placement (module docstring)
        sized from the pre-fault state ``pre``."""
        cur = _branch_peaks(pre)
        devices = _own_devices(grid, cur) or _placed_devices(grid, cur, pre)
        sws = [b.name.lower() for b in grid.branches if b.kind == "switch" and b.enabled]
        pick = {s: max(FPI_FACTOR * cur.get(s, (0.0, 0.0))[0], FPI_MIN_A) for s in sws}
        return cls(devices, sws, pick)


def _branch_peaks(pre: SwitchedResult) -> dict[str, tuple[float, float]]:
    """Branch → (largest phase current, residual current magnitude), A."""
    out: dict[str, list[complex]] = {}
    for m, i in zip(pre.result.branch_meta, pre.result.branch_i_a, strict=True):
        out.setdefault(m[0].lower(), []).append(complex(i))
    return {k: (max(abs(x) for x in v), abs(sum(v))) for k, v in out.items()}


def _own_devices(grid: ThreePhaseGrid, cur: dict[str, tuple[float, float]]) -> list[Device]:
    out = []
    for f in grid.fuses:
        if not f.enabled or f.kind not in ("fuse", "recloser"):
            continue
        peak, res = cur.get(f.branch.lower(), (0.0, 0.0))
        if f.kind == "fuse":
            out.append(Device(f.name, "fuse", f.branch.lower(), f.rated_a or _t_link(1.5 * peak)))
        else:
            pk = f.rated_a or 2.0 * peak
            out.append(
                Device(f.name, "recloser", f.branch.lower(), 0.0, pk, max(2 * res, 0.3 * pk))
            )
    return out


def _t_link(i_a: float) -> float:
    return float(next((r for r in T_LINKS_A if r >= i_a), T_LINKS_A[-1]))


def _bus_phases(grid: ThreePhaseGrid) -> dict[str, int]:
    out: dict[str, set[int]] = {}
    for b, k in grid.nodes():
        if k <= 3:
            out.setdefault(b, set()).add(k)
    return {b: len(s) for b, s in out.items()}


def _tree(grid: ThreePhaseGrid) -> tuple[dict[str, int], dict[str, tuple[str, str]]]:
    """BFS from the source over closed branches and transformers: bus depth, and for each
    branch the (upstream, downstream) bus."""
    adj: dict[str, list[tuple[str, str]]] = {}
    for b in grid.branches:
        if b.enabled and b.closed:
            adj.setdefault(b.t1.bus, []).append((b.t2.bus, b.name.lower()))
            adj.setdefault(b.t2.bus, []).append((b.t1.bus, b.name.lower()))
    for t in grid.transformers:
        if t.enabled:
            buses = [w.terminal.bus for w in t.windings]
            for x in buses[1:]:
                adj.setdefault(buses[0], []).append((x, ""))
                adj.setdefault(x, []).append((buses[0], ""))
    depth = {grid.source.terminal.bus: 0}
    orient: dict[str, tuple[str, str]] = {}
    q = deque([grid.source.terminal.bus])
    while q:
        u = q.popleft()
        for v, name in adj.get(u, []):
            if v not in depth:
                depth[v] = depth[u] + 1
                q.append(v)
                if name:
                    orient[name] = (u, v)
    return depth, orient


def _placed_devices(
    grid: ThreePhaseGrid, cur: dict[str, tuple[float, float]], pre: SwitchedResult
) -> list[Device]:
    depth, orient = _tree(grid)
    phases = _bus_phases(grid)
    lines = {b.name.lower(): b for b in grid.branches if b.enabled and b.kind in ("line", "switch")}
    top = max((cur.get(n, (0.0, 0.0))[0] for n in lines), default=0.0)
    heads = [n for n in lines if n in orient and cur.get(n, (0.0, 0.0))[0] >= 0.97 * top]
    out: list[Device] = []
    if heads:
        head = min(heads, key=lambda n: depth[orient[n][0]])
        peak, res = cur[head]
        pk = PICKUP_FACTOR * peak
        out.append(Device(f"recloser_{head}", "recloser", head, 0.0, pk, max(2 * res, 0.3 * pk)))
    loaded = {ld.terminal.bus for ld in grid.loads if ld.enabled and ld.kind == "load"}
    for n, b in lines.items():
        if b.kind != "line" or n not in orient:
            continue
        up, down = orient[n]
        if (phases.get(down, b.phases) < phases.get(up, b.phases) and cur.get(n, (0.0, 0.0))[0] > 0
                and _feeds_load(grid, down, up, loaded)):  # fmt: skip
            out.append(Device(f"fuse_{n}", "fuse", n, _t_link(1.5 * cur[n][0])))
    log.info(
        "%s: placed %d fuses and %d recloser", grid.name, len(out) - bool(heads), int(bool(heads))
    )
    return out


def _feeds_load(grid: ThreePhaseGrid, start: str, parent: str, loaded: set[str]) -> bool:
    """Whether any load lies beyond ``start`` (seen from ``parent``): a lateral, not the
    connection of a capacitor bank."""
    adj = grid.__dict__.get("_p3p_adj")
    if adj is None:
        adj = {}
        for b in grid.branches:
            if b.enabled and b.closed:
                adj.setdefault(b.t1.bus, []).append(b.t2.bus)
                adj.setdefault(b.t2.bus, []).append(b.t1.bus)
        for t in grid.transformers:
            ws = [w.terminal.bus for w in t.windings]
            for x in ws[1:]:
                adj.setdefault(ws[0], []).append(x)
                adj.setdefault(x, []).append(ws[0])
        grid.__dict__["_p3p_adj"] = adj
    seen, todo = {parent, start}, [start]
    while todo:
        u = todo.pop()
        if u in loaded:
            return True
        for v in adj.get(u, []):
            if v not in seen:
                seen.add(v)
                todo.append(v)
    return False


@dataclass
class ProtectionOutcome:
    """What protection did: ``events`` in time order (``t_s``, device, action), the devices
    left open (``opened``: branch names: a blown fuse, a locked-out recloser), whether the
    fault is gone, and which switches' fault indicators picked up."""

    events: list[tuple[float, str, str]]
    opened: list[str]
    cleared: bool
    cleared_by: str
    fpi: dict[str, bool]

    def summary(self) -> dict[str, object]:
        """Plain-JSON form."""
        return {
            "events": [{"t_s": round(t, 3), "device": d, "action": a} for t, d, a in self.events],
            "opened": self.opened,
            "cleared_by": self.cleared_by,
            "fpi_picked": sorted(k for k, v in self.fpi.items() if v),
        }


def fault_indicators(scheme: ProtectionScheme, study: FaultStudy) -> dict[str, bool]:
    """Per switch with an indicator: did it see fault current (any conductor above its
    pickup, or a residual above it)?"""
    out = {}
    for s in scheme.fpi_switches:
        i = _currents(study, s)
        out[s] = bool(i.size) and float(max(np.abs(i).max(), abs(i.sum()))) > scheme.fpi_pickup_a[s]
    return out


def _currents(study: FaultStudy, branch: str) -> np.ndarray:
    meta = study.prefault.result.branch_meta
    rows = [k for k, m in enumerate(meta) if m[0].lower() == branch]
    return study.branch_i_a[rows]


def _recloser_time(rec: Device, study: FaultStudy, shot: str) -> float:
    i = _currents(study, rec.branch)
    if not i.size:
        return float("inf")
    m = max(float(np.abs(i).max()) / rec.pickup_a, abs(complex(i.sum())) / rec.ground_pickup_a)
    return recloser_trip_s(m, shot)


def simulate_protection(scheme: ProtectionScheme, study: FaultStudy) -> ProtectionOutcome:
    """Play the recloser's shots and the fuses' curves against the fault (module docstring)."""
    fpi = fault_indicators(scheme, study)
    rec = scheme.recloser
    fuses = []
    for f in scheme.fuses:
        i = _currents(study, f.branch)
        if i.size:
            imax = float(np.abs(i).max())
            fuses.append((fuse_melt_s(imax, f.rating_a), fuse_clear_s(imax, f.rating_a), f))
    fuses.sort(key=lambda x: x[0])
    first = fuses[0] if fuses and np.isfinite(fuses[0][0]) else None
    events: list[tuple[float, str, str]] = []
    t = 0.0
    intervals = (0.5, 2.0, 5.0)
    for k, shot in enumerate(SHOTS if rec is not None else ()):
        assert rec is not None
        tr = _recloser_time(rec, study, shot)
        if first is not None and first[1] < tr:
            events.append((t + first[1], first[2].name, "blown"))
            return ProtectionOutcome(events, [first[2].branch], True, first[2].name, fpi)
        if not np.isfinite(tr):
            break
        events.append((t + tr, rec.name, f"trip ({shot})"))
        if first is not None and first[0] < tr:  # melted while the recloser cleared
            events.append((t + tr, first[2].name, "blown (coordination lost)"))
            return ProtectionOutcome(events, [first[2].branch], True, first[2].name, fpi)
        if not study.fault.permanent:
            events.append((t + tr + intervals[0], rec.name, "reclose: fault gone"))
            return ProtectionOutcome(events, [], True, f"{rec.name} ({shot})", fpi)
        if k == len(SHOTS) - 1:
            events.append((t + tr, rec.name, "lockout"))
            return ProtectionOutcome(events, [rec.branch], True, rec.name, fpi)
        t += tr + intervals[min(k, 2)]
        events.append((t, rec.name, "reclose"))
    if first is not None:
        events.append((t + first[1], first[2].name, "blown"))
        return ProtectionOutcome(events, [first[2].branch], True, first[2].name, fpi)
    return ProtectionOutcome(events, [], False, "", fpi)
