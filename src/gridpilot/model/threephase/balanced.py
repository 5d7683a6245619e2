"""A positive-sequence (balanced) view of a :class:`ThreePhaseGrid` for the balanced operations.

The loop's balanced parts (its own twin, the guard's simulation, FLISR, volt/var, flexibility)
work on a :class:`~gridpilot.model.Grid`. :func:`balanced_view` builds one from a three-phase
feeder, keeping the feeder's topology one-to-one so that a switch or a line of the view *is*
a switch or a branch of the feeder:

- a bus per feeder bus (``v_nom_kv`` line-to-line from its line-to-neutral base), ids 1..N
  in the feeder's node order (the source bus first);
- a line per line/switch/reactor branch: three-phase ones at their positive-sequence
  impedance ``Zs - Zm``; one- and two-phase laterals at ``3/n`` times their mean self
  impedance (the same voltage drop for the same power carried on ``n`` of 3 phases) and a
  rating of ``n/3`` times their ampacity; single-phase lines in parallel between the same two
  buses (ieee8500's capacitor connections ``cap_1a``/``cap_1b``/``cap_1c``) are one view line,
  their impedances in parallel and their ratings summed (three lines would be a loop in the
  view: its radiality, supply tree and fault paths would be wrong); a line between the two
  buses of a transformer bank is the bank's common conductor (IEEE 37's open-delta
  regulators: phase 2 jumpered from 799 to 799r) and is folded into the bank (no view line:
  a near-zero impedance beside the bank would carry the whole positive-sequence flow, and
  the pair would be a loop);
- a switch (et line, at the from bus) per switch branch; switches with no other switch on
  their supply path are breakers (kind 0), the others remote load-break switches with
  fault-passage indicators;
- one transformer per bus pair of transformers (single-phase regulators of a bank merged),
  rated ``3/phases`` times their total kVA, at the bank's mean tap;
- a load per (bus, load shape) of the feeder's loads (their totals), capacitors as loads
  of negative Q, shunt reactors as loads of their power at nominal voltage (0 customers, no
  shape); each view load names the feeder loads it stands for.

It is an approximation for planning and screening: the physics of a three-phase world is
always the unbalanced twin's, per node-phase.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from gridpilot.model.grid import Grid
from gridpilot.model.schema import ElementType, SwitchKind
from gridpilot.model.threephase.elements import Branch, Shunt
from gridpilot.model.threephase.grid import ThreePhaseGrid

DEFAULT_AMPS = 400.0  # a branch without a rating (A)
TAP_STEPS = 16  # view transformer tap range, each side of neutral


@dataclass
class PhaseView:
    """The balanced view and its maps back to the feeder's elements (by name, lower case)."""

    grid: Grid
    bus_id: dict[str, int]  # feeder bus name -> view bus id
    bus_name: list[str]  # view bus position -> feeder bus name
    line_branch: dict[int, str]  # view line id -> feeder branch name
    switch_branch: dict[int, str]  # view switch id -> feeder switch branch name
    load_members: dict[int, list[int]] = field(default_factory=dict)  # view load -> feeder loads
    load_shape: dict[int, str | None] = field(default_factory=dict)  # view load -> shape name
    transformer_members: dict[int, list[str]] = field(default_factory=dict)  # view -> feeder
    #: feeder branches merged into another's view line (parallel one-phase lines) -> view line
    merged_lines: dict[str, int] = field(default_factory=dict)
    #: feeder lines folded into a transformer bank between the same buses (no view line)
    bank_lines: list[str] = field(default_factory=list)

    def set_taps(self, taps: dict[str, float]) -> None:
        """Set the view's transformer taps from feeder transformer taps (pu, by name): each
        bank at its members' mean, rounded to its tap step."""
        t = self.grid.transformer
        for k, members in self.transformer_members.items():
            vals = [taps[m] for m in members if m in taps]
            if vals:
                pos = int(t.index_of(k)[0])
                step = float(t["tap_step_percent"][pos]) / 100.0 or 0.00625
                t["tap_pos"][pos] = int(
                    np.clip(round((np.mean(vals) - 1.0) / step), -TAP_STEPS, TAP_STEPS)
                )

    def branch_line(self) -> dict[str, int]:
        """Feeder branch name -> view line id (merged parallel lines: their common line)."""
        return {b: k for k, b in self.line_branch.items()} | self.merged_lines


def positive_sequence_z(b: Branch) -> complex:
    """A branch's balanced-equivalent series impedance (ohm), see the module notes."""
    z = np.asarray(b.z_ohm, complex)
    n = z.shape[0]
    if n == 3:
        zs = np.trace(z) / 3.0
        zm = (z.sum() - np.trace(z)) / 6.0
        return complex(zs - zm)
    return complex(3.0 / n * np.trace(z) / n)


def _bus_kv_ll(grid: ThreePhaseGrid, bus: str) -> float:
    kv = grid.bus_kv_ln.get(bus, 0.0)
    if kv <= 0:
        kv = grid.source.kv_ll / math.sqrt(3.0)
    return kv * math.sqrt(3.0)


def _add_buses(g: Grid, grid: ThreePhaseGrid) -> tuple[dict[str, int], list[str]]:
    names = [grid.source.terminal.bus]
    for b, _ in grid.nodes():
        if b not in names:
            names.append(b)
    ids = {b: i + 1 for i, b in enumerate(names)}
    xy = [grid.buscoords.get(b, (0.0, 0.0)) for b in names]
    g.add(
        "bus",
        id=np.arange(1, len(names) + 1),
        v_nom_kv=[_bus_kv_ll(grid, b) for b in names],
        x=[p[0] for p in xy],
        y=[p[1] for p in xy],
    )
    return ids, names


def _bank_pairs(grid: ThreePhaseGrid) -> set[frozenset[str]]:
    """The bus pairs (first two windings) of the enabled transformers."""
    return {
        frozenset((t.windings[0].terminal.bus, t.windings[1].terminal.bus))
        for t in grid.transformers
        if t.enabled and len(t.windings) >= 2
    }


def _add_lines(
    g: Grid, grid: ThreePhaseGrid, ids: dict[str, int]
) -> tuple[dict[int, str], dict[str, int], list[str]]:
    """One view line per branch, parallel one-phase lines merged and a bank's common
    conductor folded into it (see the module notes); the view line -> branch map, the
    merged branches' view lines and the folded lines."""
    out: dict[int, str] = {}
    merged: dict[str, int] = {}
    folded: list[str] = []
    banks = _bank_pairs(grid)
    rows: list[tuple[int, int, float, float, float]] = []
    y_sum: dict[int, complex] = {}  # merged view line -> its members' admittance sum
    pair_line: dict[tuple[int, int], int] = {}  # one-phase line bus pair -> view line
    for b in grid.branches:
        if not b.enabled or b.t1.bus not in ids or b.t2.bus not in ids:
            continue
        if b.kind == "line" and frozenset((b.t1.bus, b.t2.bus)) in banks:
            folded.append(b.name.lower())
            continue
        f, t = ids[b.t1.bus], ids[b.t2.bus]
        z = positive_sequence_z(b)
        amps = (b.norm_amps or DEFAULT_AMPS) * min(b.phases, 3) / 3.0
        pair = (min(f, t), max(f, t))
        k = pair_line.get(pair) if b.kind == "line" and b.phases == 1 else None
        if k is not None and abs(z) > 0:
            y_sum[k] = y_sum.get(k, 1.0 / _row_z(rows[k - 1])) + 1.0 / z
            zp = 1.0 / y_sum[k]
            r0 = rows[k - 1]
            rows[k - 1] = (r0[0], r0[1], max(zp.real, 0.0), max(zp.imag, 0.0), r0[4] + amps)
            merged[b.name.lower()] = k
            continue
        rows.append((f, t, max(z.real, 0.0), max(z.imag, 0.0), amps))
        out[len(rows)] = b.name.lower()
        if b.kind == "line" and b.phases == 1 and abs(z) > 0:
            pair_line.setdefault(pair, len(rows))
    if rows:
        a = np.array(rows)
        g.add(
            "line",
            id=np.arange(1, len(rows) + 1),
            from_bus=a[:, 0].astype(np.int64),
            to_bus=a[:, 1].astype(np.int64),
            length_km=1.0,
            r_ohm_per_km=a[:, 2],
            x_ohm_per_km=a[:, 3],
            max_i_ka=a[:, 4] / 1e3,
        )
    return out, merged, folded


def _row_z(row: tuple[int, int, float, float, float]) -> complex:
    return complex(row[2], row[3])


def _upstream_switched(grid: ThreePhaseGrid, ids: dict[str, int]) -> set[str]:
    """Switch branches that have another switch on their supply path (BFS from the source)."""
    adj: dict[str, list[tuple[str, bool]]] = {}
    for b in grid.branches:
        if b.enabled:
            sw = b.kind == "switch"
            adj.setdefault(b.t1.bus, []).append((b.t2.bus, sw))
            adj.setdefault(b.t2.bus, []).append((b.t1.bus, sw))
    for t in grid.transformers:
        if t.enabled:
            buses = [w.terminal.bus for w in t.windings]
            for x in buses:
                adj.setdefault(x, []).extend((y, False) for y in buses if y != x)
    seen = {grid.source.terminal.bus: 0}  # switches passed on the way
    q = deque([grid.source.terminal.bus])
    while q:
        u = q.popleft()
        for v, sw in adj.get(u, []):
            if v not in seen:
                seen[v] = seen[u] + int(sw)
                q.append(v)
    return {
        b.name.lower()
        for b in grid.branches
        if b.kind == "switch" and seen.get(b.t1.bus, 0) + seen.get(b.t2.bus, 0) > 2
    }


def _add_switches(
    g: Grid, grid: ThreePhaseGrid, ids: dict[str, int], lines: dict[int, str]
) -> dict[int, str]:
    by_name = {b.name.lower(): b for b in grid.branches}
    inner = _upstream_switched(grid, ids)
    sw = [(lid, by_name[n]) for lid, n in lines.items() if by_name[n].kind == "switch"]
    if not sw:
        return {}
    g.add(
        "switch",
        id=np.arange(1, len(sw) + 1),
        bus=[ids[b.t1.bus] for _, b in sw],
        element=[lid for lid, _ in sw],
        et=int(ElementType.LINE),
        kind=[
            int(SwitchKind.LOAD_BREAK if b.name.lower() in inner else SwitchKind.BREAKER)
            for _, b in sw
        ],
        closed=[bool(b.closed) for _, b in sw],
        normally_open=[not b.closed for _, b in sw],
    )
    return {k + 1: b.name.lower() for k, (_, b) in enumerate(sw)}


def _add_transformers(g: Grid, grid: ThreePhaseGrid, ids: dict[str, int]) -> dict[int, list[str]]:
    groups: dict[tuple[str, str], list[int]] = {}
    for k, t in enumerate(grid.transformers):
        if t.enabled and len(t.windings) >= 2:
            key = (t.windings[0].terminal.bus, t.windings[1].terminal.bus)
            if key[0] in ids and key[1] in ids:
                groups.setdefault(key, []).append(k)
    rows: list[tuple[float, ...]] = []
    members: dict[int, list[str]] = {}
    for (hv, lv), ks in groups.items():
        members[len(rows) + 1] = [grid.transformers[k].name.lower() for k in ks]
        ts = [grid.transformers[k] for k in ks]
        kva = sum(t.windings[0].kva for t in ts) * 3.0 / max(sum(t.phases for t in ts), 1)
        r = float(np.mean([t.windings[0].r_pct + t.windings[1].r_pct for t in ts]))
        x = float(np.mean([t.xsc_pct[0] if t.xsc_pct else 0.01 for t in ts]))
        w2 = ts[0].windings[1]
        step = w2.tap_step if w2.tap_step > 0 else 0.00625
        tap = float(np.mean([t.windings[1].tap for t in ts]))
        pos = int(np.clip(round((tap - 1.0) / step), -TAP_STEPS, TAP_STEPS))
        vk = max(math.hypot(r, x), 0.01)
        rows.append((ids[hv], ids[lv], kva / 1e3, _bus_kv_ll(grid, hv), _bus_kv_ll(grid, lv),
                     vk, min(r, vk), step * 100.0, pos))  # fmt: skip
    if rows:
        a = np.array(rows)
        g.add(
            "transformer",
            id=np.arange(1, len(rows) + 1),
            hv_bus=a[:, 0].astype(np.int64),
            lv_bus=a[:, 1].astype(np.int64),
            sn_mva=a[:, 2],
            vn_hv_kv=a[:, 3],
            vn_lv_kv=a[:, 4],
            vk_percent=a[:, 5],
            vkr_percent=a[:, 6],
            tap_side=1,
            tap_min=-TAP_STEPS,
            tap_max=TAP_STEPS,
            tap_step_percent=a[:, 7],
            tap_pos=a[:, 8].astype(np.int32),
        )
    return members


def _load_shape(grid: ThreePhaseGrid, k: int) -> str | None:
    ld = grid.loads[k]
    if ld.status != "variable":
        return None
    for name in (ld.daily, ld.yearly, "default"):
        if name and name.lower() in grid.loadshapes:
            return name.lower()
    return None


def _add_loads(g: Grid, grid: ThreePhaseGrid, view: PhaseView) -> None:
    groups: dict[tuple[str, str | None], list[int]] = {}
    for k, ld in enumerate(grid.loads):
        if ld.enabled and ld.kind == "load" and ld.terminal.bus in view.bus_id:
            groups.setdefault((ld.terminal.bus, _load_shape(grid, k)), []).append(k)
    bus, p, q = [], [], []
    for n, ((b, shape), ks) in enumerate(groups.items(), start=1):
        bus.append(view.bus_id[b])
        p.append(sum(grid.loads[k].kw for k in ks) / 1e3)
        q.append(sum(grid.loads[k].kvar for k in ks) / 1e3)
        view.load_members[n] = ks
        view.load_shape[n] = shape
    caps = [c for c in grid.capacitors if c.enabled and c.t1.bus in view.bus_id]
    for c in caps:
        n = len(bus) + 1
        bus.append(view.bus_id[c.t1.bus])
        p.append(0.0)
        q.append(-sum(kv * s for kv, s in zip(c.kvar, c.states, strict=False)) / 1e3)
        view.load_members[n] = []
        view.load_shape[n] = None
    for sh in (x for x in grid.shunts if x.enabled and x.terminals[0].bus in view.bus_id):
        n = len(bus) + 1
        s_va = _shunt_power(grid, sh)
        bus.append(view.bus_id[sh.terminals[0].bus])
        p.append(s_va.real / 1e6)
        q.append(s_va.imag / 1e6)
        view.load_members[n] = []
        view.load_shape[n] = None
    if bus:
        g.add(
            "load",
            id=np.arange(1, len(bus) + 1),
            bus=bus,
            p_mw=p,
            q_mvar=q,
            customers=[max(round(x / 0.005), 1) if x > 0 else 0 for x in p],
        )


def _shunt_power(grid: ThreePhaseGrid, sh: Shunt) -> complex:
    """Power (VA) a shunt draws at its bus's nominal positive-sequence voltages (node k at
    ``−120°·(k − 1)``; other terminals' conductors at 0 V)."""
    t1 = sh.terminals[0]
    v_ln = grid.bus_kv_ln.get(t1.bus, 0.0) * 1e3
    v = np.zeros(sh.y_prim.shape[0], complex)
    for i, k in enumerate(t1.nodes):
        if k > 0:
            v[i] = v_ln * np.exp(-2j * np.pi / 3 * (k - 1))
    return complex(np.sum(v * np.conj(sh.y_prim @ v)))


def balanced_view(grid: ThreePhaseGrid) -> PhaseView:
    """The positive-sequence :class:`PhaseView` of ``grid`` (see the module notes)."""
    g = Grid(f"{grid.name}:balanced")
    ids, names = _add_buses(g, grid)
    lines, merged, folded = _add_lines(g, grid, ids)
    view = PhaseView(g, ids, names, lines, {}, merged_lines=merged, bank_lines=folded)
    view.switch_branch = _add_switches(g, grid, ids, lines)
    view.transformer_members = _add_transformers(g, grid, ids)
    src = grid.source
    z1 = abs(src.z1_ohm) or 1e-4
    g.add(
        "source",
        id=[1],
        bus=[ids[src.terminal.bus]],
        vm_pu=src.pu,
        va_deg=src.angle_deg,
        sk_mva=src.kv_ll**2 / z1,
        rx_ratio=abs(src.z1_ohm.real / src.z1_ohm.imag) if src.z1_ohm.imag else 0.1,
    )
    _add_loads(g, grid, view)
    g.meta["three_phase"] = grid.name
    g.meta["view"] = "positive-sequence balanced view (gridpilot.model.threephase.balanced)"
    return view


__all__ = ["PhaseView", "balanced_view", "positive_sequence_z"]
