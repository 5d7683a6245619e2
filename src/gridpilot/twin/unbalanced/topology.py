"""Switching and de-energised sections in the unbalanced twin.

A switch (a :class:`~gridpilot.model.threephase.Branch` of kind ``"switch"``) is opened or
closed by name; whatever is then cut off from the source is *dead*: its node-phases are
reported at 0 V (never an error) and only the energised part is solved.

- :func:`normalise_ties` turns the two ways OpenDSS scripts write a normally-open tie into
  an enabled, open switch between the two real buses;
- :func:`solve_switched` (the simple public entry point) solves one switch state with the
  twin's static controls on the energised sub-grid;
- :class:`SwitchingSolver` solves many switch states fast with taps and capacitors frozen
  (one base model, a factorisation of the energised rows per state), as FLISR's search does.

>>> from gridpilot.model import load_grid
>>> g = normalise_ties(load_grid("ieee123"))
>>> out = solve_switched(g, {"sw3": False})      # open sw3: the part beyond it goes dead
>>> out.dead[:3], out.result.summary()["vmin_pu"]
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import splu

from gridpilot.errors import UnknownComponentError, ValidationError
from gridpilot.model.threephase import Branch, Terminal, ThreePhaseGrid, branch_yprim
from gridpilot.twin.unbalanced.results import UnbalancedResult
from gridpilot.twin.unbalanced.solver import SolveOptions

log = logging.getLogger(__name__)


def switch_names(grid: ThreePhaseGrid) -> list[str]:
    """Names (lower case) of the enabled switches, in model order."""
    return [b.name.lower() for b in grid.branches if b.kind == "switch" and b.enabled]


def _bus_users(grid: ThreePhaseGrid) -> dict[str, int]:
    out: dict[str, int] = {}
    for _, term in grid.terminals():
        out[term.bus] = out.get(term.bus, 0) + 1
    return out


def normalise_ties(grid: ThreePhaseGrid) -> ThreePhaseGrid:
    """A copy of ``grid`` whose normally-open ties are enabled, open switches.

    Two spellings are recognised: a *disabled* switch between two buses the rest of the grid
    uses (the IEEE 8500-node feeder), and a closed switch to a dangling bus named
    ``<bus>_open`` that nothing else touches, where ``<bus>`` exists (the IEEE 123-node
    feeder's Sw7 and Sw8): it is re-pointed to ``<bus>`` and opened. The tie names are
    listed in ``meta["ties"]``; the grid passed in is not changed.
    """
    users = _bus_users(grid)
    branches: list[Branch] = []
    ties: list[str] = []
    for b in grid.branches:
        nb = b
        if b.kind == "switch" and not b.enabled and b.t1.bus in users and b.t2.bus in users:
            nb = dataclasses.replace(b, enabled=True, closed=False)
        elif b.kind == "switch" and b.enabled and b.closed:
            for end in ("t1", "t2"):
                t: Terminal = getattr(b, end)
                base = t.bus[:-5]
                if t.bus.lower().endswith("_open") and users.get(t.bus) == 1 and base in users:
                    nt = Terminal(base, t.nodes)
                    nb = dataclasses.replace(b, closed=False)
                    if end == "t1":
                        nb.t1 = nt
                    else:
                        nb.t2 = nt
                    break
        if nb is not b:
            ties.append(b.name.lower())
        branches.append(nb)
    out = dataclasses.replace(grid, branches=branches, meta={**grid.meta, "ties": ties})
    log.debug("%s: normally-open ties %s", grid.name, ties)
    return out


def apply_switches(grid: ThreePhaseGrid, closed: Mapping[str, bool]) -> ThreePhaseGrid:
    """A copy of ``grid`` with the named switches set (``True`` = closed). An unknown name
    or a non-switch raises :class:`UnknownComponentError` naming it."""
    want = {k.lower(): bool(v) for k, v in closed.items()}
    known = set(switch_names(grid))
    for k in want:
        if k not in known:
            raise UnknownComponentError("switch", k)
    branches = [
        dataclasses.replace(b, closed=want[b.name.lower()])
        if b.kind == "switch" and b.enabled and b.name.lower() in want
        else b
        for b in grid.branches
    ]
    return dataclasses.replace(grid, branches=branches)


def _node_edges(
    grid: ThreePhaseGrid,
    index: dict[tuple[str, int], int],
    switches: bool,
    also: set[str] | None = None,
    phase_wise: bool = False,
) -> tuple[list[int], list[int]]:
    """Node-level edges of closed branches (switches, and the branches named in ``also``,
    only if ``switches``) and transformers (only if not). A transformer joins all its nodes
    (energisation), or with ``phase_wise`` a wye-wye one joins phase to phase (which phases
    a single-phase regulator above it feeds)."""
    a: list[int] = []
    b: list[int] = []
    for br in grid.branches:
        sw = br.kind == "switch" or br.name.lower() in (also or set())
        if not (br.enabled and br.closed) or sw != switches:
            continue
        for n1, n2 in zip(br.t1.nodes, br.t2.nodes, strict=False):
            if n1 > 0 and n2 > 0:
                a.append(index[(br.t1.bus, n1)])
                b.append(index[(br.t2.bus, n2)])
    if switches:
        return a, b
    for t in grid.transformers:
        if not t.enabled:
            continue
        per = [[index[(w.terminal.bus, n)] for n in w.terminal.nodes if n > 0] for w in t.windings]
        if (
            phase_wise
            and all(w.conn == "wye" for w in t.windings)
            and len({len(p) for p in per}) == 1
        ):
            for other in per[1:]:
                a += per[0]
                b += other
            continue
        ns = [i for p in per for i in p]
        a += ns[:1] * (len(ns) - 1)
        b += ns[1:]
    return a, b


def energised_mask(grid: ThreePhaseGrid) -> np.ndarray:
    """Per node-phase of ``grid.nodes()``: True when connected to the source."""
    nodes = grid.nodes()
    index = {nd: i for i, nd in enumerate(nodes)}
    a, b = _node_edges(grid, index, False)
    a2, b2 = _node_edges(grid, index, True)
    return _reach(len(nodes), a + a2, b + b2, _source_idx(grid, index))


def _source_idx(grid: ThreePhaseGrid, index: dict[tuple[str, int], int]) -> list[int]:
    t = grid.source.terminal
    return [index[(t.bus, k)] for k in t.nodes if k > 0]


def _reach(
    n: int, a: list[int] | np.ndarray, b: list[int] | np.ndarray, src: list[int]
) -> np.ndarray:
    g = sp.coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, lab = connected_components(g, directed=False)
    return np.isin(lab, lab[src])


def _alive(term: Terminal, live: set[tuple[str, int]]) -> bool:
    return all((term.bus, k) in live for k in term.nodes if k > 0)


def energised_subgrid(grid: ThreePhaseGrid) -> ThreePhaseGrid:
    """A copy of ``grid`` with every element that touches a dead node-phase (or is an open
    branch) disabled, repeated until stable: what is left is connected to the source."""
    sub = grid
    for _ in range(20):
        nodes = sub.nodes()
        mask = energised_mask(sub)
        live = {nd for nd, m in zip(nodes, mask, strict=True) if m}
        if mask.all():
            return sub
        r = dataclasses.replace
        sub = r(
            sub,
            branches=[b if b.enabled and b.closed and _alive(b.t1, live) and _alive(b.t2, live)
                      else r(b, enabled=False) for b in sub.branches],
            transformers=[t if all(_alive(w.terminal, live) for w in t.windings)
                          else r(t, enabled=False) for t in sub.transformers],
            capacitors=[c if _alive(c.t1, live) and _alive(c.t2, live) else r(c, enabled=False)
                        for c in sub.capacitors],
            loads=[ld if _alive(ld.terminal, live) else r(ld, enabled=False) for ld in sub.loads],
            shunts=[sh if all(_alive(t, live) for t in sh.terminals) else r(sh, enabled=False)
                    for sh in sub.shunts],
        )  # fmt: skip
        xf_on = {t.name.lower() for t in sub.transformers if t.enabled}
        cap_on = {c.name.lower() for c in sub.capacitors if c.enabled}
        el_on = {f"line.{b.name.lower()}" for b in sub.branches if b.enabled}
        el_on |= {f"transformer.{t}" for t in xf_on} | {f"capacitor.{c}" for c in cap_on}
        sub.regcontrols = [rc if rc.transformer.lower() in xf_on else r(rc, enabled=False)
                           for rc in sub.regcontrols]  # fmt: skip
        sub.capcontrols = [cc if cc.capacitor.lower() in cap_on and cc.element.lower() in el_on else r(cc, enabled=False)
                           for cc in sub.capcontrols]  # fmt: skip
    raise ValidationError(f"{grid.name}: the energised part did not settle")


@dataclass
class SwitchedResult:
    """A solved switch state on the full node list of the grid.

    ``result`` holds every node-phase of the grid (dead ones at 0 V); ``energised`` is the
    per node-phase mask; ``dead`` lists the dead node-phases as ``"bus.phase"``;
    ``served_kw`` / ``unserved_kw`` sum the nominal kW of loads fully energised or not
    (generation excluded); ``dead_loads`` names the loads left without supply.
    """

    result: UnbalancedResult
    energised: np.ndarray
    dead: list[str]
    served_kw: float
    unserved_kw: float
    dead_loads: list[str]


def _load_split(
    grid: ThreePhaseGrid, live: set[tuple[str, int]], mult: float
) -> tuple[float, float, list[str]]:
    served = unserved = 0.0
    dead: list[str] = []
    for ld in grid.loads:
        if not ld.enabled or ld.kind != "load":
            continue
        kw = ld.kw * (mult if ld.status == "variable" else 1.0)
        if _alive(ld.terminal, live):
            served += kw
        else:
            unserved += kw
            dead.append(ld.name.lower())
    return served, unserved, dead


def solve_switched(
    grid: ThreePhaseGrid,
    closed: Mapping[str, bool] | None = None,
    control_mode: str = "static",
    load_mult: float = 1.0,
    start: UnbalancedResult | None = None,
) -> SwitchedResult:
    """Solve ``grid`` with the named switches set (``{"sw3": False}`` opens sw3; others stay
    as modelled): only the energised part is solved, in a fresh
    :class:`~gridpilot.twin.unbalanced.UnbalancedTwin` with ``control_mode`` (``"static"`` or
    ``"off"``; regulators and capacitors start where ``start``, an earlier result, left
    them); dead node-phases come back at 0 V. Returns a :class:`SwitchedResult`
    (voltages per node-phase in V and pu, served and unserved kW)."""
    from gridpilot.twin.unbalanced.inverters import twin_for

    g = apply_switches(grid, closed or {})
    sub = energised_subgrid(g)
    twin = twin_for(sub)  # the feeder's smart inverters on their curves (live ones)
    if start is not None:
        have = twin.taps()
        for k, t in start.taps.items():
            if k in have:
                twin.set_tap(k, t)
        on = {c.name.lower() for c in sub.capacitors if c.enabled}
        for k, st in start.cap_states.items():
            if k in on:
                twin.set_cap(k, st)
    res = twin.powerflow(control_mode, load_mult)
    nodes = g.nodes()
    pos = {nd: i for i, nd in enumerate(res.nodes)}
    idx = np.array([pos.get(nd, -1) for nd in nodes], np.int64)
    mask = idx >= 0
    v = np.where(mask, res.v[np.maximum(idx, 0)], 0.0)
    vb = np.array([g.bus_kv_ln.get(b, 0.0) * 1e3 for b, _ in nodes])
    vb = np.where(mask, res.vbase_v[np.maximum(idx, 0)], np.where(vb > 0, vb, 1.0))
    full = dataclasses.replace(res, nodes=nodes, v=v, vbase_v=vb)
    live = {nd for nd, m in zip(nodes, mask, strict=True) if m}
    served, unserved, dead_loads = _load_split(g, live, load_mult)
    dead = [f"{b}.{k}" for (b, k), m in zip(nodes, mask, strict=True) if not m]
    return SwitchedResult(full, mask, dead, served, unserved, dead_loads)


class SwitchingSolver:
    """Many switch states of one grid, solved fast with taps and capacitors frozen.

    Built once: a twin of ``grid`` with every switch closed (so every node-phase exists), its
    system matrix, each switch's admittance stamp and the node graph. Per state
    (:meth:`solve`): remove the open switches' stamps, keep the energised rows, factorise
    them and run the twin's fixed-point iteration; dead node-phases stay at 0 V. ``taps``
    and ``caps`` (as :meth:`UnbalancedTwin.taps` / ``cap_states`` give them) fix the
    regulators and capacitors; by default the grid's own. ``switchable`` names further
    branches (lines a fuse or recloser sits on) that may be opened like switches.
    """

    def __init__(
        self,
        grid: ThreePhaseGrid,
        taps: Mapping[str, float] | None = None,
        caps: Mapping[str, list[int]] | None = None,
        opts: SolveOptions | None = None,
        switchable: tuple[str, ...] = (),
    ) -> None:
        from gridpilot.twin.unbalanced.inverters import warn_inverters_ignored
        from gridpilot.twin.unbalanced.network import variable_y
        from gridpilot.twin.unbalanced.twin import UnbalancedTwin

        warn_inverters_ignored(grid, "the switching solver (frozen controls)")
        self.grid = grid
        extra = {x.lower() for x in switchable}
        known = {b.name.lower() for b in grid.branches if b.enabled}
        for x in sorted(extra - known):
            raise UnknownComponentError("branch", x)
        self.switches = switch_names(grid) + sorted(extra - set(switch_names(grid)))
        self.normal = {b.name.lower(): b.closed for b in grid.branches
                       if b.enabled and (b.kind == "switch" or b.name.lower() in extra)}  # fmt: skip
        closed_all = dataclasses.replace(grid, branches=[
            dataclasses.replace(b, closed=True) if b.enabled and b.name.lower() in self.normal else b
            for b in grid.branches])  # fmt: skip
        self.twin = UnbalancedTwin(closed_all, opts)
        for k, t in (taps or {}).items():
            self.twin.set_tap(k, t)
        for k, s in (caps or {}).items():
            self.twin.set_cap(k, s)
        net = self.twin.net
        self.net = net
        self.nodes = net.nodes
        self.y_all = (net.y_fixed + variable_y(net) + self.twin.y_loads).tocsc()
        self._stamps: dict[str, sp.csc_matrix] = {}
        self._edges: dict[str, tuple[list[int], list[int]]] = {}
        for b in closed_all.branches:
            if b.enabled and b.name.lower() in self.normal:
                idx = net.terminal_idx([b.t1, b.t2])
                ii, jj = np.meshgrid(idx, idx, indexing="ij")
                keep = (ii >= 0) & (jj >= 0)
                self._stamps[b.name.lower()] = sp.csc_matrix(
                    (branch_yprim(b)[keep], (ii[keep], jj[keep])), shape=(net.n, net.n)
                )
                ends = [(net.index[(b.t1.bus, x)], net.index[(b.t2.bus, y)])
                        for x, y in zip(b.t1.nodes, b.t2.nodes, strict=False) if x > 0 and y > 0]  # fmt: skip
                self._edges[b.name.lower()] = ([e[0] for e in ends], [e[1] for e in ends])
        fa, fb = _node_edges(closed_all, net.index, False, set(self.normal))
        self._fixed = (np.array(fa, np.int64), np.array(fb, np.int64))
        self._closed_all = closed_all
        self._no_xf: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._src = _source_idx(closed_all, net.index)
        self.load_nodes = [
            (ld, [net.index[(ld.terminal.bus, k)] for k in ld.terminal.nodes if k > 0])
            for ld in closed_all.loads if ld.enabled and ld.kind == "load"
        ]  # fmt: skip
        self._sw_rows = np.array([m[0].lower() in self._stamps for m in net.branch_meta], bool)
        self._sw_name = [m[0].lower() for m in net.branch_meta]

    def state(self, closed: Mapping[str, bool] | None = None) -> dict[str, bool]:
        """The full switch state: the grid's own, overridden by ``closed`` (names checked)."""
        out = dict(self.normal)
        for k, v in (closed or {}).items():
            if k.lower() not in out:
                raise UnknownComponentError("switch", k)
            out[k.lower()] = bool(v)
        return out

    def energised(self, closed: Mapping[str, bool] | None = None) -> np.ndarray:
        """Energised mask per node-phase for a switch state (no power flow)."""
        return self._energised(self.state(closed), self._fixed)

    def regulator_zone(self, reg: str, closed: Mapping[str, bool] | None = None) -> np.ndarray:
        """Per node-phase: True where regulator ``reg`` (a regcontrol name) feeds it in a
        switch state (energised, and cut off from the source without its transformer)."""
        name = reg.lower()
        if name not in self._no_xf:
            rc = next((r for r in self.grid.regcontrols if r.name.lower() == name), None)
            if rc is None:
                raise UnknownComponentError("regcontrol", reg)
            g = dataclasses.replace(self._closed_all, transformers=[
                dataclasses.replace(t, enabled=False) if t.name.lower() == rc.transformer.lower() else t
                for t in self._closed_all.transformers])  # fmt: skip
            fa, fb = _node_edges(g, self.net.index, False, set(self.normal), phase_wise=True)
            self._no_xf[name] = (np.array(fa, np.int64), np.array(fb, np.int64))
        st = self.state(closed)
        return self._energised(st, self._fixed) & ~self._energised(st, self._no_xf[name])

    def source_side(self) -> np.ndarray:
        """Per node-phase: True on the source's own side of the feeder - reached from the
        source without passing a regulating transformer or a switch, and carrying no load
        (ieee8500: the 115 kV bus and the regulator's input). All False when that part
        carries load (a feeder without regulation at its head)."""
        regs = {r.transformer.lower() for r in self.grid.regcontrols if r.enabled}
        g = dataclasses.replace(self._closed_all, transformers=[
            dataclasses.replace(t, enabled=False) if t.name.lower() in regs else t
            for t in self._closed_all.transformers])  # fmt: skip
        fa, fb = _node_edges(g, self.net.index, False, set(self.normal))
        side = self._energised(dict.fromkeys(self.normal, False),
                               (np.array(fa, np.int64), np.array(fb, np.int64)))  # fmt: skip
        if any(side[idx].any() for _, idx in self.load_nodes):
            return np.zeros_like(side)
        return side

    def _energised(
        self, st: Mapping[str, bool], fixed: tuple[np.ndarray, np.ndarray]
    ) -> np.ndarray:
        a = [fixed[0]]
        b = [fixed[1]]
        for k, on in st.items():
            if on:
                a.append(np.array(self._edges[k][0], np.int64))
                b.append(np.array(self._edges[k][1], np.int64))
        return _reach(self.net.n, np.concatenate(a), np.concatenate(b), self._src)

    def unserved_kw(
        self, closed: Mapping[str, bool] | None = None, load_mult: float = 1.0
    ) -> float:
        """Nominal kW of the loads not fully energised in a switch state (no power flow)."""
        live = self.energised(closed)
        return float(sum(ld.kw * (load_mult if ld.status == "variable" else 1.0)
                         for ld, idx in self.load_nodes if not live[idx].all()))  # fmt: skip

    def factor(self, closed: Mapping[str, bool] | None = None) -> tuple[MaskedFactor, np.ndarray]:
        """The factorised system matrix (loads as their nominal admittance) of a switch
        state's energised part, and the energised mask per node-phase."""
        st = self.state(closed)
        live = self.energised(st)
        return self._masked(st, live), live

    def _masked(self, st: Mapping[str, bool], live: np.ndarray) -> MaskedFactor:
        y = self.y_all
        opened = [self._stamps[k] for k, on in st.items() if not on]
        if opened:
            y = y - sum(opened[1:], opened[0])
        keep = np.flatnonzero(live)
        return MaskedFactor(y[keep][:, keep].tocsc(), keep, self.net.n)

    def solve(
        self, closed: Mapping[str, bool] | None = None, load_mult: float = 1.0
    ) -> SwitchedResult:
        """Solve one switch state (see the class docstring); returns a :class:`SwitchedResult`
        whose ``result`` has every node-phase (V) and every branch conductor's current (A),
        0 on open switches and dead branches."""
        from gridpilot.twin.unbalanced.lowrank import one_blas_thread
        from gridpilot.twin.unbalanced.solver import solve_steps

        st = self.state(closed)
        fac, live = self.factor(st)
        tw = self.twin
        s = tw.base_powers(load_mult)
        with one_blas_thread():
            v, iters = solve_steps(self.net, tw.loads, fac, tw.inc, tw.yeq_b, s, None, tw.opts)
        v = v[:, 0]
        res = tw.result(v, s[:, 0], iters, 0)
        off = np.array([not st.get(n, True) for n in self._sw_name], bool) & self._sw_rows
        res.branch_i_a = np.where(off, 0.0, res.branch_i_a)
        return self._wrap(res, live, load_mult)

    def solve_settled(
        self,
        closed: Mapping[str, bool] | None = None,
        load_mult: float = 1.0,
        taps: Mapping[str, float] | None = None,
        caps: Mapping[str, list[int]] | None = None,
    ) -> SwitchedResult:
        """Solve a switch state with the energised regulators' and capacitors' static
        controls acting (as :meth:`UnbalancedTwin.powerflow` ``"static"`` does: the action
        with the shortest delay first, re-solved after each round), starting from the frozen
        taps and capacitor states; ``taps`` (regcontrol → pu) are imposed first and those
        regulators stay where put (held in manual); so are ``caps`` (capacitor → step
        states), whose controls then do not act. Controls on dead elements do not act.
        The solver's own taps and capacitor states are restored afterwards; the settled ones
        are in ``result.taps`` / ``result.cap_states`` (energised regulators only)."""
        from gridpilot.twin.unbalanced.lowrank import LowRankFactor, one_blas_thread
        from gridpilot.twin.unbalanced.solver import solve_steps

        tw = self.twin
        taps0, caps0 = tw.taps(), tw.cap_states()
        held = {("reg", k.lower()) for k in (taps or {})}
        held |= {("cap", c) for c in self._cap_controls(caps or {})}
        st = self.state(closed)
        live = self.energised(st)
        fac = LowRankFactor(self._masked(st, live), self.net)  # taps then move by Woodbury
        try:
            for k, t in (taps or {}).items():
                tw.set_tap(k, t)
            for k, c in (caps or {}).items():
                tw.set_cap(k, c)
            fac.dirty = True
            s = tw.base_powers(load_mult)

            def resolve(v0: np.ndarray) -> tuple[np.ndarray, int]:
                fac.dirty = True  # the controls moved taps or capacitor steps
                return solve_steps(self.net, tw.loads, fac, tw.inc, tw.yeq_b, s, v0, tw.opts)

            def acts(key: tuple[str, str]) -> bool:
                return self._acts(key, live) and key not in held

            with one_blas_thread():
                v, iters = solve_steps(self.net, tw.loads, fac, tw.inc, tw.yeq_b, s, None, tw.opts)
                v, more, rounds = tw.settle(v, resolve, acts)
                iters += more
            res = tw.result(v[:, 0], s[:, 0], iters, rounds)
        finally:  # the stamps return to the values y_all was built with
            for k, t in taps0.items():
                tw.set_tap(k, t)
            for k, c in caps0.items():
                tw.set_cap(k, c)
        res.taps = {k: t for k, t in res.taps.items() if self._reg_live(k, live)}
        off = np.array([not st.get(n, True) for n in self._sw_name], bool) & self._sw_rows
        res.branch_i_a = np.where(off, 0.0, res.branch_i_a)
        return self._wrap(res, live, load_mult)

    def _cap_controls(self, caps: Mapping[str, list[int]]) -> set[str]:
        """The capcontrols of the capacitors in ``caps`` (names checked)."""
        known = {c.name.lower() for c in self.twin.grid.capacitors}
        for k in caps:
            if k.lower() not in known:
                raise UnknownComponentError("capacitor", k)
        names = {k.lower() for k in caps}
        return {cs.ctl.name.lower() for cs in self.twin.caps if cs.cap in names}

    def _reg_live(self, name: str, live: np.ndarray) -> bool:
        rs = next(x for x in self.twin.regs if x.ctl.name.lower() == name)
        return all(live[int(i)] for i in (*rs.his, *rs.los) if i >= 0)

    def _acts(self, key: tuple[str, str], live: np.ndarray) -> bool:
        """Whether a control acts in a state: its regulator's or capacitor's nodes live."""
        kind, name = key
        if kind in ("reg", "rev"):  # a tap change or a reverse-mode toggle
            return self._reg_live(name, live)
        cs = next(x for x in self.twin.caps if x.ctl.name.lower() == name)
        cap = next(c for c in self.twin.grid.capacitors if c.name.lower() == cs.cap)
        nodes = [i for i in cs.idx if i >= 0]
        nodes += [self.net.index[(t.bus, k)] for t in (cap.t1, cap.t2) for k in t.nodes
                  if k > 0 and (t.bus, k) in self.net.index]  # fmt: skip
        return all(live[i] for i in nodes)

    def _wrap(self, res: UnbalancedResult, live: np.ndarray, mult: float) -> SwitchedResult:
        served = unserved = 0.0
        dead_loads: list[str] = []
        for ld, idx in self.load_nodes:
            kw = ld.kw * (mult if ld.status == "variable" else 1.0)
            if live[idx].all():
                served += kw
            else:
                unserved += kw
                dead_loads.append(ld.name.lower())
        dead = [f"{b}.{k}" for (b, k), m in zip(self.nodes, live, strict=True) if not m]
        return SwitchedResult(res, live, dead, served, unserved, dead_loads)


class MaskedFactor:
    """Solves the energised rows only; dead node-phases get 0."""

    def __init__(self, y: sp.csc_matrix, keep: np.ndarray, n: int) -> None:
        try:
            self.lu = splu(y)
        except RuntimeError as exc:
            raise ValidationError(
                f"the energised part's admittance matrix is singular ({exc})"
            ) from None
        self.keep = keep
        self.n = n

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``Y⁻¹ rhs`` on the energised rows, 0 elsewhere."""
        out = np.zeros((self.n, *rhs.shape[1:]), complex)
        out[self.keep] = self.lu.solve(np.ascontiguousarray(rhs[self.keep], dtype=complex))
        return out
