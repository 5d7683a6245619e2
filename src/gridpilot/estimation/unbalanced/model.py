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

``A`` is dense (every load current moves every voltage of a radial feeder), so this model is
for feeders up to ``_DENSE_LIMIT`` entries (ieee13–ieee123); larger ones (ieee8500) use the
sparse, constrained form of :mod:`.sparse` with the same rows over ``x = (V, I_load)``:
:func:`build_network` picks one. Both offer the row builders the sensors use
(:class:`SeNetwork`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

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
    """One phase of a regulator's measured winding: its voltage and current rows (dense
    over ``z``, or 1-row sparse over ``x`` for :class:`.sparse.SparseNetwork`)."""

    name: str  # regcontrol name
    phase: int  # the node (1, 2, 3) of the winding's conductor
    v_row: Any  # complex (p,): winding voltage (V) = v_row · z
    i_row: Any  # complex (p,): current into the winding's conductor (A) = i_row · z
    vbase_v: float


class SeNetwork(Protocol):
    """What the sensors, the study and the estimators need of a network model: the load
    branches, the source and regulators, and measurement rows over the model's own vector
    (``z`` for the dense :class:`LinearNetwork`, ``x = (V, I_load)`` for the sparse one;
    ``full(z)`` gives that vector for a state ``z``)."""

    grid: str
    nodes: list[tuple[str, int]]
    vbase_v: np.ndarray
    src: np.ndarray
    load_a: np.ndarray
    load_b: np.ndarray
    load_of: np.ndarray
    load_names: list[str]
    load_s_va: np.ndarray
    load_vbase_v: np.ndarray
    regs: list[RegulatorPhase]

    @property
    def m(self) -> int: ...  # noqa: D102
    @property
    def p(self) -> int: ...  # noqa: D102
    @property
    def width(self) -> int: ...  # noqa: D102
    def full(self, z: np.ndarray) -> np.ndarray: ...  # noqa: D102
    def voltages(self, z: np.ndarray) -> np.ndarray: ...  # noqa: D102
    def branch_v_rows(self) -> Any: ...  # noqa: D102
    def branch_voltages(self, z: np.ndarray) -> np.ndarray: ...  # noqa: D102
    def src_v_row(self, k: int) -> Any: ...  # noqa: D102
    def src_i_row(self, k: int) -> Any: ...  # noqa: D102
    def load_row(self, j: int) -> Any: ...  # noqa: D102
    def load_columns(self, rows: Any) -> np.ndarray: ...  # noqa: D102
    def load_of_rows(self, w: Any) -> np.ndarray: ...  # noqa: D102
    def nominal_state(self, s_va: np.ndarray | None = None) -> np.ndarray: ...  # noqa: D102
    def state_labels(self) -> list[str]: ...  # noqa: D102


def load_fields(lb: Any) -> dict[str, Any]:
    """The load-branch fields both models hold, from the twin's compiled load branches."""
    return {
        "load_a": np.asarray(lb.a, np.int64),
        "load_b": np.asarray(lb.b, np.int64),
        "load_of": np.asarray(lb.load_of, np.int64),
        "load_names": list(lb.names),
        "load_s_va": np.asarray(lb.s_va, complex),
        "load_vbase_v": np.asarray(lb.vbase_v, float),
    }


class LoadStates:
    """The state ``z = (I_load, V_src)`` shared by both models: its labels and the flat start
    (subclasses provide the fields and :meth:`branch_voltages`)."""

    nodes: list[tuple[str, int]]
    vbase_v: np.ndarray
    src: np.ndarray
    load_names: list[str]
    load_s_va: np.ndarray

    @property
    def m(self) -> int:
        """Number of load branches (current states)."""
        return len(self.load_names)

    def branch_voltages(self, z: np.ndarray) -> np.ndarray:
        """Each load branch's voltage (V) at state ``z``."""
        raise NotImplementedError

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
        vbr = self.branch_voltages(z)
        s = self.load_s_va if s_va is None else s_va
        z[: self.m] = np.conj(s / np.where(np.abs(vbr) > 0, vbr, 1.0))
        return z


@dataclass
class LinearNetwork(LoadStates):
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
    def p(self) -> int:
        """Number of complex states (load branches + source phases)."""
        return self.a_v.shape[1]

    @property
    def width(self) -> int:
        """Length of a measurement row (the state ``z``)."""
        return self.p

    def full(self, z: np.ndarray) -> np.ndarray:
        """The vector measurement rows act on: ``z`` itself."""
        return z

    def voltages(self, z: np.ndarray) -> np.ndarray:
        """Every node-phase voltage (V) at state ``z``."""
        return self.a_v @ z

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

    def branch_voltages(self, z: np.ndarray) -> np.ndarray:
        """Each load branch's voltage (V) at state ``z``."""
        return self.branch_v_rows() @ z

    def src_v_row(self, k: int) -> np.ndarray:
        """Row giving the source bus's ``k``-th phase voltage."""
        e = np.zeros(self.p, complex)
        e[self.m + k] = 1.0
        return e

    def src_i_row(self, k: int) -> np.ndarray:
        """Row giving the current out of the source's ``k``-th phase into the network."""
        return self.a_src_i[k]

    def load_row(self, j: int) -> np.ndarray:
        """Row giving load branch ``j``'s current."""
        e = np.zeros(self.p, complex)
        e[j] = 1.0
        return e

    def load_columns(self, rows: np.ndarray) -> np.ndarray:
        """The sensitivity of ``rows`` (over ``z``) to each load branch current (k × m)."""
        return rows[:, : self.m]

    def load_of_rows(self, w: np.ndarray) -> np.ndarray:
        """Per row of ``w``, the load branch whose current it weighs most."""
        return np.argmax(np.abs(w[:, : self.m]), axis=1)

    def z_from(self, v: np.ndarray, i_load: np.ndarray) -> np.ndarray:
        """The state of node voltages ``v`` and load branch currents ``i_load``."""
        return np.concatenate([i_load, v[self.src]])


def _without_source(twin: UnbalancedTwin) -> sp.csc_matrix:
    """The twin's admittance at its present taps and capacitor states, less the source."""
    net = twin.net
    r, c, v = net.src_stamp.coo()
    y_src = sp.coo_matrix((v, (r, c)), shape=(net.n, net.n))
    return (net.y_fixed + variable_y(net) - y_src).tocsc()


Combine = Callable[[np.ndarray, np.ndarray], Any]  # (node indices, coefficients) -> a row


def regulators(twin: UnbalancedTwin, combine: Combine) -> list[RegulatorPhase]:
    """Every phase of every enabled regulator's monitored winding; ``combine(idx, coef)``
    turns a combination of node-phase voltages into a measurement row."""
    out = []
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
        for k in range(t.phases):
            hi = int(st.idx[w * nc + k])
            if wdg.conn == "wye" or t.phases == 1:
                lo = int(st.idx[w * nc + t.phases])
            else:  # delta winding: across to the next phase (lead) or the previous (lag)
                step = 1 if t.lead_lag == "lead" else -1
                lo = int(st.idx[w * nc + (k + step) % t.phases])
            if hi < 0:
                continue
            if lo >= 0:
                v_row = combine(np.array([hi, lo]), np.array([1.0, -1.0]))
            else:
                v_row = combine(np.array([hi]), np.array([1.0]))
            i_row = combine(st.idx[keep], st.y[w * nc + k, keep])
            base = wdg.kv * 1e3 / (np.sqrt(3.0) if (t.phases > 1 and wdg.conn == "wye") else 1.0)
            out.append(RegulatorPhase(rc.name, int(wdg.terminal.nodes[k]), v_row, i_row, base))
    return out


def _dense_combine(a_v: np.ndarray) -> Combine:
    """Rows of ``A`` combined: ``coef @ a_v[idx]``."""

    def combine(idx: np.ndarray, coef: np.ndarray) -> np.ndarray:
        return np.asarray(coef @ a_v[idx])

    return combine


def dense_fits(twin: UnbalancedTwin) -> bool:
    """Whether the dense map ``A`` (node-phases × states) is within ``_DENSE_LIMIT``."""
    return twin.net.n * (twin.loads.m + len(twin.grid.source.terminal.nodes)) <= _DENSE_LIMIT


def check_size(twin: UnbalancedTwin) -> None:
    """Raise :class:`ValidationError` when the dense map ``A`` (node-phases × states) would
    exceed the dense estimator's limit (5 M complex entries), naming both sizes (larger
    feeders take the sparse model: :func:`.sparse.build_network`)."""
    n = twin.net.n
    p = twin.loads.m + len(twin.grid.source.terminal.nodes)
    if not dense_fits(twin):
        raise ValidationError(
            f"{twin.grid.name}: {n} node-phases × {p} states is too large for the dense "
            f"three-phase estimator (limit {_DENSE_LIMIT:,} entries; ieee13–ieee123 fit; "
            "build_network takes the sparse model beyond)"
        )


@dataclass
class NetworkParts:
    """The pieces both models start from: the admittance without the source ``y`` (n × n),
    the load-branch incidence ``inc`` (n × m; a branch draws its current out of ``a`` and
    into ``b``), the source's node-phases ``src``, the others ``rest`` and the sparse LU of
    ``Y_rr``."""

    y: sp.csr_matrix
    inc: sp.csr_matrix
    src: np.ndarray
    rest: np.ndarray
    lu: Any


def network_parts(twin: UnbalancedTwin) -> NetworkParts:
    """:class:`NetworkParts` of ``twin`` at its present taps and capacitor states. Raises
    :class:`ValidationError` when the network without its source floats."""
    net, lb = twin.net, twin.loads
    n, m = net.n, lb.m
    src_nodes = net.terminal_idx([twin.grid.source.terminal])
    src = np.array(sorted({int(i) for i in src_nodes if i >= 0}), np.int64)
    rest = np.setdiff1d(np.arange(n), src)
    y = _without_source(twin).tocsr()
    has_b = lb.b >= 0
    inc = sp.csr_matrix(
        (
            np.concatenate([-np.ones(m), np.ones(int(has_b.sum()))]),
            (np.concatenate([lb.a, lb.b[has_b]]), np.concatenate([np.arange(m), np.flatnonzero(has_b)])),
        ),
        shape=(n, m),
    )  # fmt: skip
    try:
        lu = splu(y[rest][:, rest].tocsc())
    except RuntimeError as exc:
        raise ValidationError(
            f"{twin.grid.name}: the network without its source is singular ({exc}): a part of "
            "the grid floats with no path to ground"
        ) from None
    return NetworkParts(y, inc, src, rest, lu)


def build_linear_network(twin: UnbalancedTwin) -> LinearNetwork:
    """The linear model of ``twin``'s grid at the twin's present taps and capacitor states
    (see the module docstring). Raises :class:`ValidationError` when the network without
    its source floats (no path to ground) or is too large for the dense map."""
    net, lb = twin.net, twin.loads
    n, m = net.n, lb.m
    check_size(twin)
    pt = network_parts(twin)
    y, inc, src, rest = pt.y, pt.inc, pt.src, pt.rest
    p = m + len(src)
    rhs = np.hstack([inc[rest].toarray(), -y[rest][:, src].toarray()]).astype(complex)
    a_v = np.zeros((n, p), complex)
    a_v[rest] = pt.lu.solve(rhs)
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
        **load_fields(lb),
        regs=regulators(twin, _dense_combine(a_v)),
    )
