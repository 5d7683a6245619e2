"""Cutting planes of the phase-aware schedule: constraint generation on the exact power flow.

The schedule starts from a *monitored set* of voltage and VUF rows: the node-phase-steps and
three-phase-bus-steps that the exact power flow of the uncontrolled fleet shows over a limit or
near it (``NEAR_V_PU``, ``NEAR_VUF_PCT``), linearised around it. Every round the plan is
checked by the full unbalanced power flow (:meth:`~.phase_network.PhaseNetwork.check`); the
node-phases and buses it breaks get their rows added (worst first, at most ``MAX_NEW_CUTS`` of
each kind a round), and the schedule is solved again, until the exact check holds or the rounds
run out. A row needs the sensitivities of its node-phases only, at its step's load level:
computed on demand (:mod:`.phase_sens`) on a feeder too large for the dense block.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from gridpilot.flex.phase_lp import V_EUR_PER_PU_STEP, VUF_EUR_PER_PCT_STEP, Cut, Devices
from gridpilot.flex.phase_network import Check, PhaseNetwork

log = logging.getLogger(__name__)

TOL_VUF_PCT = 0.01
TOL_V_PU = 0.001
NEAR_VUF_PCT = 0.3
NEAR_V_PU = 0.005
MAX_NEW_CUTS = 2000
MONITOR_PER_PHASE = 1
SPARSE_REL = 0.05
CHUNK_ROWS = 2000
MAX_NEW_ROWS_EVERY = 6000


def seq(net: PhaseNetwork, c: Check) -> tuple[np.ndarray, np.ndarray]:
    """Negative and positive sequence voltages (V) of the three-phase buses (buses x steps)."""
    vt = c.v[net.tri_idx]
    a = np.exp(2j * np.pi / 3)
    return (vt[:, 0] + a * a * vt[:, 1] + a * vt[:, 2]) / 3.0, (
        vt[:, 0] + a * vt[:, 1] + a * a * vt[:, 2]
    ) / 3.0


@dataclass
class CutSet:
    """Cutting planes and the allowances.

    A VUF cut (bus b, step t) keeps the direction ``u`` of V2 and the scale 100/|V1| it was
    created with: it bounds Re(conj(u) V2) * scale <= allowed, which |V2|/|V1| <= allowed
    implies; a voltage cut keeps the direction of V. Their coefficients (through the
    sensitivities of step t's load level) never change, so each round only moves the rows'
    bounds: the linear model anchored at the last full power flow's exact value. ``added`` and
    ``round_nodes``: per call of :meth:`add` (the first on the uncontrolled fleet, then one a
    round), the rows added and the node-phases that got new voltage rows. ``cols``:
    the injection points whose draw the schedule moves (the others' coefficients are left
    out: their draw is fixed, so their terms are constant). ``sparse`` > 0 leaves out, row by
    row, the coefficients below that share of the row's largest (their points held at the
    anchor plan until the next round re-anchors the row at the exact power flow): a
    secondary's voltage then weighs its own few points, not the whole feeder. ``every``
    (active steps) gives a broken node-phase its rows at all of them at once (at most
    ``MAX_NEW_ROWS_EVERY`` new rows a round), so that the schedule cannot move the problem
    to a step without a row. ``floors`` (optional: VUF ceiling, high-voltage ceiling,
    low-voltage floor, shaped as ``vuf_allow``, ``v_hi``, ``v_lo``, and the per-phase demand
    cap, MW, 3 x 1) are how far the
    uncontrolled fleet already went past each limit at that bus or node-phase (its worst
    step there): a row's slack costs :data:`~.phase_lp.DEEPER_FACTOR` times more beyond
    them, so the schedule does not deepen any violation to relieve others."""

    net: PhaseNetwork
    vuf_allow: np.ndarray
    v_hi: np.ndarray
    v_lo: np.ndarray
    cols: np.ndarray
    sparse: float = 0.0
    vuf_keys: list[tuple[int, int, complex, float]] = field(default_factory=list)
    v_keys: dict[tuple[int, int, int], complex] = field(default_factory=dict)
    added: list[int] = field(default_factory=list)
    broken: list[int] = field(default_factory=list)
    lp_rows: int = 0
    stopped: str = ""
    round_nodes: list[set[int]] = field(default_factory=list)
    every: np.ndarray | None = None
    floors: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
    _coef: dict[str, sp.csr_matrix] = field(default_factory=dict)

    def add(self, c: Check) -> int:
        """Add cuts where ``c`` breaks a limit; returns how many bus/node-steps broke one.

        Bus-steps within ``NEAR_VUF_PCT`` of the limit get a cut too (the worst
        ``MAX_NEW_CUTS`` a round), where the next plan would otherwise move the problem; a
        node-phase that breaks the voltage band at some step gets cuts at its steps within
        ``NEAR_V_PU`` of it (the worst ``MAX_NEW_CUTS`` a round). With ``every`` (constraint
        generation on a large feeder) a round adds the VUF row of the worst bus of each step
        only: the primary's buses move together, and thousands of their dense, nearly
        parallel rows stalled the simplex."""
        before = len(self.vuf_keys) + len(self.v_keys)
        had = set(self.v_keys)
        v2, v1 = seq(self.net, c)
        over = c.vuf_pct - self.vuf_allow
        bad = np.argwhere(over > TOL_VUF_PCT)
        have = {(b, t) for b, t, _, _ in self.vuf_keys}
        near = np.argwhere(over > -NEAR_VUF_PCT)
        new = [(b, t) for b, t in near if over[b, t] > TOL_VUF_PCT or (int(b), int(t)) not in have]
        new.sort(key=lambda bt: -over[bt[0], bt[1]])
        if self.every is not None:  # the worst bus a step: the buses' VUF rows are near-parallel
            _, first = np.unique([int(bt[1]) for bt in new], return_index=True)
            new = [new[i] for i in np.sort(first)]
        for b, t in new[:MAX_NEW_CUTS]:
            u = v2[b, t] / max(abs(v2[b, t]), 1e-12)
            scale = 100.0 / max(abs(v1[b, t]), 1e-9)
            self.vuf_keys.append((int(b), int(t), complex(u), scale))  # in order: rows stay put
        n_bad = len(bad) + self._add_voltage(c)
        self.added.append(len(self.vuf_keys) + len(self.v_keys) - before)
        self.round_nodes.append({k[0] for k in self.v_keys if k not in had})
        return n_bad

    def _deepened(self, c: Check, sign: int) -> np.ndarray:
        """Per node-phase: whether ``c`` goes past the uncontrolled fleet's worst there, on the
        high (``sign`` 1) or low side (all False without ``floors``)."""
        if self.floors is None:
            return np.zeros(c.v_pu.shape[0], bool)
        if sign > 0:
            return np.asarray((c.v_pu - self.floors[1] > TOL_V_PU).any(axis=1))
        return np.asarray(((self.floors[2] - c.v_pu > TOL_V_PU) & (c.v_pu > 0.05)).any(axis=1))

    def _add_voltage(self, c: Check) -> int:
        """Voltage cuts of the node-phases ``c`` puts outside the band; how many node-steps.
        Within the cap, node-phases taken past the uncontrolled fleet's worst come first."""
        live = c.v_pu > 0.05
        n_bad = 0
        cand: list[tuple[float, tuple[int, int, int]]] = []
        for sign, gap in ((1, c.v_pu - self.v_hi), (-1, np.where(live, self.v_lo - c.v_pu, -1.0))):
            broke = gap > TOL_V_PU
            n_bad += int(broke.sum())
            rows = np.flatnonzero(broke.any(axis=1))
            near = gap[rows] > -NEAR_V_PU
            deep = self._deepened(c, sign)[rows].astype(float)  # deepened: first (+1 pu)
            worst = gap[rows].max(axis=1) + deep
            if self.every is not None:  # a broken node-phase: its rows at every active step
                near[:, self.every] = True
            for n, t in np.argwhere(near):
                key = (int(rows[n]), int(t), sign)
                if key not in self.v_keys:
                    g = worst[n] if self.every is not None else gap[rows[n], t] + deep[n]
                    cand.append((float(g), key))
        cap = MAX_NEW_CUTS if self.every is None else MAX_NEW_ROWS_EVERY
        if len(cand) > cap:  # the worst, in the order found
            top = sorted(range(len(cand)), key=lambda i: -cand[i][0])[:cap]
            cand = [cand[i] for i in sorted(top)]
        for _, key in cand:
            vh = c.v[key[0], key[1]]
            self.v_keys[key] = complex(vh / max(abs(vh), 1e-9))
        return n_bad

    def monitor(self, c: Check, per_phase: int, steps: np.ndarray) -> None:
        """Seed the monitored set: at every step of ``steps``, voltage cuts at the
        ``per_phase`` node-phases of each feeder phase nearest the low (and the high) limit
        in ``c`` (one per bus), and VUF cuts at the ``per_phase`` three-phase buses nearest
        theirs; a plan that moves the fleet in time then meets them wherever it goes."""
        if per_phase <= 0 or not steps.size:
            return
        v2, v1 = seq(self.net, c)
        live = c.v_pu > 0.05
        n0, b0 = len(self.v_keys), len(self.vuf_keys)
        phase = self.net.node_phase
        buses = np.array([b for b, _ in self.net.nodes])
        for sign, gap in ((1, c.v_pu - self.v_hi), (-1, np.where(live, self.v_lo - c.v_pu, -9.0))):
            worst = gap.max(axis=1)
            for ph in (1, 2, 3):
                idx = np.flatnonzero(phase == ph)
                idx = idx[np.argsort(-worst[idx], kind="stable")]
                _, first = np.unique(buses[idx], return_index=True)
                for n in idx[np.sort(first)][:per_phase]:
                    for t in steps:
                        key = (int(n), int(t), sign)
                        if key not in self.v_keys:
                            vh = c.v[n, t]
                            self.v_keys[key] = complex(vh / max(abs(vh), 1e-9))
        over = (c.vuf_pct - self.vuf_allow).max(axis=1)
        have = {(b, t) for b, t, _, _ in self.vuf_keys}
        for b in np.argsort(-over, kind="stable")[: 3 * per_phase]:
            for t in steps:
                if (int(b), int(t)) not in have:
                    u = v2[b, t] / max(abs(v2[b, t]), 1e-12)
                    scale = 100.0 / max(abs(v1[b, t]), 1e-9)
                    self.vuf_keys.append((int(b), int(t), complex(u), scale))
        if self.added:
            self.added[-1] += len(self.v_keys) - n0 + len(self.vuf_keys) - b0
        log.info(
            "phase plan: monitored set of %d voltage and %d VUF rows",
            len(self.v_keys) - n0,
            len(self.vuf_keys) - b0,
        )

    @property
    def count(self) -> dict[str, int]:
        """Cut rows so far, by kind, and the node-phases they touch."""
        nodes = {k[0] for k in self.v_keys}
        nodes |= {int(x) for b, _, _, _ in self.vuf_keys for x in self.net.tri_idx[b]}
        return {
            "vuf_cuts": len(self.vuf_keys),
            "voltage_cuts": len(self.v_keys),
            "node_phases": len(nodes),
        }

    def _thin(self, coef: np.ndarray) -> sp.csr_matrix:
        """``coef`` without the entries below ``sparse`` x the row's largest (see the class)."""
        if self.sparse > 0 and coef.size:
            big = np.abs(coef).max(axis=1, keepdims=True)
            coef = np.where(np.abs(coef) >= self.sparse * big, coef, 0.0)
        return sp.csr_matrix(coef)

    def _rows(self, name: str, total: int, make: Callable[[slice], np.ndarray]) -> sp.csr_matrix:
        """The coefficient rows of the cuts called ``name`` (kept: they never change), the new
        ones built by ``make`` in chunks of ``CHUNK_ROWS``."""
        have = self._coef.get(name, sp.csr_matrix((0, self.cols.size)))
        parts = [have]
        for a in range(have.shape[0], total, CHUNK_ROWS):
            parts.append(self._thin(make(slice(a, min(a + CHUNK_ROWS, total)))))
        out = sp.vstack(parts, format="csr") if len(parts) > 1 else have
        self._coef[name] = out
        return out

    def cuts(self, p_hat: np.ndarray, c: Check) -> list[Cut]:
        """All cuts, linearised around the plan ``p_hat`` and its full power flow ``c``."""
        out: list[Cut] = []
        v2, _ = seq(self.net, c)
        lvl, net, cols = self.net.level_idx, self.net, self.cols
        ph = p_hat[cols]
        if self.vuf_keys:
            b, t = np.array([k[0] for k in self.vuf_keys]), np.array([k[1] for k in self.vuf_keys])
            u = np.array([k[2] for k in self.vuf_keys])
            scale = np.array([k[3] for k in self.vuf_keys])

            def vuf(r: slice) -> np.ndarray:
                s2 = net.seq_at(lvl[t[r]], b[r])[0][:, cols]
                return scale[r, None] * np.real(np.conj(u[r])[:, None] * s2)

            coef = self._rows("vuf cut", len(self.vuf_keys), vuf)
            lin = np.real(np.conj(u) * v2[b, t]) * scale - _dot(coef, ph, t)
            gap = None if self.floors is None else self.floors[0][b, t] - self.vuf_allow[b, t]
            rhs = self.vuf_allow[b, t] - lin
            out.append(Cut(t, coef, rhs, VUF_EUR_PER_PCT_STEP, "vuf cut", gap))
        if self.v_keys:
            kk = np.array(list(self.v_keys), np.int64)
            n, t, sg = kk[:, 0], kk[:, 1], kk[:, 2].astype(float)
            u = np.array(list(self.v_keys.values()))
            vb = net.vbase[n]

            def volt(r: slice) -> np.ndarray:  # signed: <= for the high side, >= for the low
                sens = net.sens_at(lvl[t[r]], n[r])[:, cols]
                return sg[r, None] * np.real(np.conj(u[r])[:, None] * sens) / vb[r, None]

            coef = self._rows("voltage cut", len(self.v_keys), volt)
            lin = sg * np.abs(c.v[n, t]) / vb - _dot(coef, ph, t)
            bound = np.where(sg > 0, self.v_hi[n, t], self.v_lo[n, t])
            gap = None
            if self.floors is not None:
                gap = sg * (np.where(sg > 0, self.floors[1][n, t], self.floors[2][n, t]) - bound)
            out.append(Cut(t, coef, sg * bound - lin, V_EUR_PER_PU_STEP, "voltage cut", gap))
        return out


def _dot(coef: sp.csr_matrix, ph: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Row r of ``coef`` times the draws ``ph[:, t[r]]``."""
    c = coef.tocoo()
    return np.bincount(c.row, c.data * ph[c.col, t[c.row]], minlength=coef.shape[0])


def moved_points(d: Devices) -> np.ndarray:
    """The injection points whose draw the schedule moves: those with EV columns, and in
    ``plan`` mode with batteries or water heaters (the rest draw ``p_fixed``)."""
    k = np.concatenate([d.ek, d.b_k, d.w_k]).astype(np.int64)
    return np.unique(k)


def active_steps(d: Devices) -> np.ndarray:
    """Horizon steps (0..T-1) at which the schedule moves some draw."""
    if d.b_k.size or d.w_k.size:
        return np.arange(d.T)
    return np.unique(d.et).astype(np.int64)


def cut_stats(net: PhaseNetwork, cs: CutSet) -> dict[str, object]:
    """Constraint generation in figures: the sensitivities used, the cut rows (the monitored
    set first, then those added each round) and the limit breaks each round's exact check
    found."""
    return {
        "sens_mode": net.mode,
        "sens_rows": net.rows_computed,
        "sens_rows_s": round(net.sens_rows.seconds, 3),
        "node_phases": len(net.nodes),
        "moved_points": int(cs.cols.size),
        "cuts": cs.count,
        "cut_rows_in_lp": cs.lp_rows,
        "cuts_monitored": cs.added[0] if cs.added else 0,
        "cuts_added_by_round": cs.added[1:],
        "broken_by_round": list(cs.broken),
        "rounds_stopped": cs.stopped,
    }
