"""The linear network model behind the three-phase estimator.

The state is ``z = (I_load, V_src)``: the complex current drawn through every load branch
(one per load phase, wye phase-to-neutral or delta phase-to-phase, as the twin compiles them)
and the complex voltages of the source bus's phases. Every node-phase voltage follows
linearly from it through the network admittance (lines, transformers with their taps,
capacitors at their states, as :mod:`gridpilot.twin.unbalanced.network` stamps them, the
source's own Thevenin stamp left out):

    Y_rr V_r + Y_rs V_s = N_r I_load      (KCL at every node-phase but the source's)

so ``V = A z`` with ``A`` dense (nodes × states). Kirchhoff's current law, and with it the
*zero injection* at every node-phase without a load, holds exactly (a hard constraint, no
large virtual weight). The source's current into the network is ``I_s = Y_sr V_r + Y_ss V_s
- N_s I_load``, linear in ``z`` too. Every measurement is then ``|u·z|`` (a voltage or current
magnitude) or ``Re``/``Im`` of ``(u·z) conj(w·z)`` (a power), with ``u`` and ``w`` rows of
these maps. The angle reference is the source bus's first phase (its imaginary part is
fixed at 0 by the estimator).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from gridpilot.errors import ValidationError
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.network import variable_y

log = logging.getLogger(__name__)
_DENSE_LIMIT = 5_000_000  # complex entries of A (80 MB): beyond this refuse, name the size


@dataclass
class RegulatorPhase:
    """One phase of a regulator's measured winding: its voltage and current rows."""

    name: str  # regcontrol name
    phase: int  # the node (1, 2, 3) of the winding's conductor
    v_row: np.ndarray  # complex (p,): winding voltage (V) = v_row · z
    i_row: np.ndarray  # complex (p,): current into the winding's conductor (A) = i_row · z
    vbase_v: float


@dataclass
class LinearNetwork:
    """``V = a_v @ z`` and the source current ``a_src_i @ z`` of one grid at fixed taps.

    ``load_*`` describe the load branches (the first ``m`` states), ``src`` the source bus
    node indices (the last states), ``regs`` the regulator phases.
    """

    grid: str
    nodes: list[tuple[str, int]]
    vbase_v: np.ndarray
    a_v: np.ndarray
    a_src_i: np.ndarray
    src: np.ndarray
    load_a: np.ndarray
    load_b: np.ndarray
    load_of: np.ndarray
    load_names: list[str]
    load_s_va: np.ndarray  # nominal branch power (VA), consumption positive
    load_vbase_v: np.ndarray
    regs: list[RegulatorPhase] = field(default_factory=list)

    @property
    def m(self) -> int:
        """Number of load branches (current states)."""
        return len(self.load_a)

    @property
    def p(self) -> int:
        """Number of complex states (load branches + source phases)."""
        return self.a_v.shape[1]

    def v_row(self, a: int, b: int = -1) -> np.ndarray:
        """Row giving ``V_a - V_b`` (b = -1: ground)."""
        r = self.a_v[a].copy()
        if b >= 0:
            r -= self.a_v[b]
        return r

    def branch_v_rows(self) -> np.ndarray:
        """Rows giving each load branch's voltage (m × p)."""
        rows = self.a_v[self.load_a].copy()
        has_b = self.load_b >= 0
        rows[has_b] -= self.a_v[self.load_b[has_b]]
        return rows

    def state_labels(self) -> list[str]:
        """A name per complex state: the load branch, then the source phase."""
        src = [f"source {self.nodes[i][0]}.{self.nodes[i][1]}" for i in self.src]
        return [*self.load_names, *src]

    def nominal_state(self, s_va: np.ndarray | None = None) -> np.ndarray:
        """A state near the operating point: source phases at their base (120° apart from
        the first), each load branch drawing ``s_va`` (default: nominal) at the no-load
        voltages (the estimator's flat start)."""
        ph = np.array([self.nodes[i][1] for i in self.src])
        v_src = self.vbase_v[self.src] * np.exp(-2j * np.pi / 3 * (ph - ph[0]))
        z = np.concatenate([np.zeros(self.m, complex), v_src])
        vbr = self.branch_v_rows() @ z
        s = self.load_s_va if s_va is None else s_va
        z[: self.m] = np.conj(s / np.where(np.abs(vbr) > 0, vbr, 1.0))
        return z

    def z_from(self, v: np.ndarray, i_load: np.ndarray) -> np.ndarray:
        """The state of node voltages ``v`` and load branch currents ``i_load``."""
        return np.concatenate([i_load, v[self.src]])


def _without_source(twin: UnbalancedTwin) -> sp.csc_matrix:
    """The twin's admittance at its present taps and capacitor states, less the source."""
    net = twin.net
    r, c, v = net.src_stamp.coo()
    y_src = sp.coo_matrix((v, (r, c)), shape=(net.n, net.n))
    return (net.y_fixed + variable_y(net) - y_src).tocsc()


def _regulators(twin: UnbalancedTwin, a_v: np.ndarray) -> list[RegulatorPhase]:
    """Every phase of every enabled regulator's monitored winding."""
    out = []
    p = a_v.shape[1]
    for rc in twin.grid.regcontrols:
        if not rc.enabled:
            continue
        t = twin.grid.transformer(rc.transformer)
        st = twin.net.xf_stamps.get(t.name.lower())
        if st is None:
            continue
        w = rc.winding - 1
        nc = t.phases + 1
        wdg = t.windings[w]
        keep = st.idx >= 0
        a_term = a_v[st.idx[keep]]
        for k in range(t.phases):
            hi = int(st.idx[w * nc + k])
            if wdg.conn == "wye" or t.phases == 1:
                lo = int(st.idx[w * nc + t.phases])
            else:  # delta winding: across to the next phase (lead) or the previous (lag)
                step = 1 if t.lead_lag == "lead" else -1
                lo = int(st.idx[w * nc + (k + step) % t.phases])
            if hi < 0:
                continue
            v_row = a_v[hi] - (a_v[lo] if lo >= 0 else np.zeros(p, complex))
            i_row = st.y[w * nc + k, keep] @ a_term
            base = wdg.kv * 1e3 / (np.sqrt(3.0) if (t.phases > 1 and wdg.conn == "wye") else 1.0)
            out.append(RegulatorPhase(rc.name, int(wdg.terminal.nodes[k]), v_row, i_row, base))
    return out


def check_size(twin: UnbalancedTwin) -> None:
    """Raise :class:`ValidationError` when the dense map ``A`` (node-phases × states) would
    exceed the estimator's limit (5 M complex entries), naming both sizes."""
    n = twin.net.n
    p = twin.loads.m + len(twin.grid.source.terminal.nodes)
    if n * p > _DENSE_LIMIT:
        raise ValidationError(
            f"{twin.grid.name}: {n} node-phases × {p} states is too large for the dense "
            f"three-phase estimator (limit {_DENSE_LIMIT:,} entries; ieee13–ieee123 fit)"
        )


def build_linear_network(twin: UnbalancedTwin) -> LinearNetwork:
    """The linear model of ``twin``'s grid at the twin's present taps and capacitor states
    (see the module docstring). Raises :class:`ValidationError` when the network without
    its source floats (no path to ground) or is too large for the dense map."""
    net, lb = twin.net, twin.loads
    n, m = net.n, lb.m
    src_nodes = net.terminal_idx([twin.grid.source.terminal])
    src = np.array(sorted({int(i) for i in src_nodes if i >= 0}), np.int64)
    rest = np.setdiff1d(np.arange(n), src)
    p = m + len(src)
    check_size(twin)
    y = _without_source(twin)
    has_b = lb.b >= 0
    inc = sp.csr_matrix(
        (
            np.concatenate([-np.ones(m), np.ones(int(has_b.sum()))]),
            (np.concatenate([lb.a, lb.b[has_b]]), np.concatenate([np.arange(m), np.flatnonzero(has_b)])),
        ),
        shape=(n, m),
    )  # fmt: skip
    y_rr = y[rest][:, rest].tocsc()
    y_rs = y[rest][:, src].toarray()
    try:
        lu = splu(y_rr)
    except RuntimeError as exc:
        raise ValidationError(
            f"{twin.grid.name}: the network without its source is singular ({exc}): a part of "
            "the grid floats with no path to ground"
        ) from None
    rhs = np.hstack([inc[rest].toarray(), -y_rs]).astype(complex)
    a_v = np.zeros((n, p), complex)
    a_v[rest] = lu.solve(rhs)
    a_v[src, m + np.arange(len(src))] = 1.0
    a_src_i = y[src] @ a_v
    a_src_i[:, :m] -= inc[src].toarray()
    log.debug("%s: linear SE model %d nodes, %d states", twin.grid.name, n, p)
    return LinearNetwork(
        grid=twin.grid.name,
        nodes=list(net.nodes),
        vbase_v=np.asarray(net.vbase_v, float),
        a_v=a_v,
        a_src_i=np.asarray(a_src_i),
        src=src,
        load_a=np.asarray(lb.a, np.int64),
        load_b=np.asarray(lb.b, np.int64),
        load_of=np.asarray(lb.load_of, np.int64),
        load_names=list(lb.names),
        load_s_va=np.asarray(lb.s_va, complex),
        load_vbase_v=np.asarray(lb.vbase_v, float),
        regs=_regulators(twin, a_v),
    )
