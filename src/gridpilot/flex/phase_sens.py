"""Sensitivity rows of chosen node-phases, without the dense (levels x nodes x points) block.

The twin's power flow solves ``Y V = I_src + inc · I(V_br, S)`` (``Y`` the network without the
loads, ``I`` the loads' currents, see :mod:`gridpilot.twin.unbalanced.solver`). Linearised at a
load level's base state (its regulator taps and capacitor states held) it reads, in real form
(the loads' currents are only R-linear in ``V``),

    J dV = B dP,   J = Y_r + inc_r · G · inc_rᵀ,

with ``G`` each load branch's 2 x 2 derivative of its current by its voltage (central
differences of the load models, so every model is covered) and ``B`` the current each injection
point's branch draws per MW. One sparse LU of ``J`` per level; the row of node-phase ``n`` is
``(J⁻ᵀ e_n)ᵀ B`` (one adjoint solve for its real and one for its imaginary part), so a plan
pays for the rows its cuts use, not for every node-phase. Rows are kept once computed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.jacobian import real_jacobian
from gridpilot.twin.unbalanced.loads import branch_voltage, load_currents

log = logging.getLogger(__name__)

CHUNK = 256
"""Node-phases per batch of adjoint solves (bounds the dense right-hand sides)."""


class SensRows:
    """dV/dP rows (V per MW drawn, complex, one entry per injection point) of node-phases at
    each load level, computed on demand and cached.

    ``hold(level)`` must set the twin's taps and capacitors to that level's; ``rows`` are the
    injection points' load-branch rows in the twin."""

    def __init__(
        self,
        twin: UnbalancedTwin,
        rows: np.ndarray,
        levels: list[float],
        hold: Callable[[float], None],
    ) -> None:
        self.twin = twin
        self.rows = np.asarray(rows, np.int64)
        self.levels = list(levels)
        self.hold = hold
        self._lu: dict[int, tuple[object, sp.csr_matrix]] = {}
        self._cache: list[dict[int, np.ndarray]] = [{} for _ in self.levels]
        self.seconds = 0.0

    @property
    def computed(self) -> int:
        """How many (level, node-phase) rows have been computed so far."""
        return sum(len(c) for c in self._cache)

    def _linearise(self, li: int) -> tuple[object, sp.csr_matrix]:
        """The LU of level ``li``'s real Jacobian ``J`` and its ``B`` (2n x points)."""
        if li in self._lu:
            return self._lu[li]
        tw = self.twin
        lv = self.levels[li]
        self.hold(lv)
        s = tw.base_powers(lv)
        v, _ = tw.solve(s)
        lb, inc, n = tw.loads, tw.inc, tw.net.n
        jac = real_jacobian(tw, v[:, 0], s[:, 0])
        vbr = branch_voltage(lb, v)
        ds = 1e3  # W: the point branches' current per MW drawn (their model's own slope)
        s2 = s.copy()
        s2[self.rows] += ds
        i0 = load_currents(lb, vbr, s)[self.rows, 0]
        h = (load_currents(lb, vbr, s2)[self.rows, 0] - i0) * (1e6 / ds)
        ip = inc[:, self.rows]
        b = sp.vstack([ip @ sp.diags(h.real), ip @ sp.diags(h.imag)]).tocsr()
        out = (splu(jac), b)
        self._lu[li] = out
        log.debug("phase sensitivities: level %s linearised (%d unknowns)", lv, 2 * n)
        return out

    def _compute(self, li: int, nodes: np.ndarray) -> None:
        lu, b = self._linearise(li)
        n = self.twin.net.n
        bt = b.T.tocsr()
        for a in range(0, nodes.size, CHUNK):
            part = nodes[a : a + CHUNK]
            r = part.size
            rhs = np.zeros((2 * n, 2 * r))
            rhs[part, np.arange(r)] = 1.0
            rhs[n + part, r + np.arange(r)] = 1.0
            x = lu.solve(rhs, trans="T")  # type: ignore[attr-defined]
            sens = (bt @ x[:, :r]).T + 1j * (bt @ x[:, r:]).T
            for j, node in enumerate(part):
                self._cache[li][int(node)] = sens[j].astype(np.complex64)  # half the memory

    def get(self, li: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """Rows (len(nodes) x points) for the pairs (level index ``li[r]``, ``nodes[r]``)."""
        li = np.asarray(li, np.int64)
        nodes = np.asarray(nodes, np.int64)
        t = time.perf_counter()
        for lvl in np.unique(li):
            have = self._cache[int(lvl)]
            need = np.unique(nodes[li == lvl])
            need = np.array([x for x in need if int(x) not in have], np.int64)
            if need.size:
                self._compute(int(lvl), need)
        self.seconds += time.perf_counter() - t
        if not li.size:
            return np.zeros((0, self.rows.size), complex)
        out = np.stack([self._cache[int(a)][int(b)] for a, b in zip(li, nodes, strict=True)])
        return out.astype(complex)
