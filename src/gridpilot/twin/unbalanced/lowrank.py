"""Tap and capacitor changes without refactorising: a Woodbury low-rank correction.

The system matrix is ``Y = Y₀ + U·D·Uᵀ`` where ``Y₀`` is factorised once (taps and capacitor
steps as they were then), ``U`` selects the few nodes the regulating transformers and
capacitors touch, and ``D`` is the change of their admittance since (K × K, dense, small).
``Y⁻¹b = y₀ − Z·(I + D·W)⁻¹·D·y₀[K]`` with ``y₀ = Y₀⁻¹b``, ``Z = Y₀⁻¹U`` (one multi-column solve,
once) and ``W = Uᵀ·Z``. A control action costs a K × K update, not a factorisation.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from gridpilot.twin.unbalanced.network import Network, Stamp
from gridpilot.twin.unbalanced.solver import LinearSolver

_CONTROLLER: ThreadpoolController | None = None


def one_blas_thread() -> AbstractContextManager[Any]:
    """Pin BLAS to one thread (the solves make many tiny dense calls; with threads each one
    waited ~20 ms on a busy 2-core machine). The controller is built once: it is slow."""
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


class LowRankFactor:
    """A factorisation of the base state (a :class:`~.solver.Factor`, or anything that
    solves it) plus the correction for the present stamps."""

    def __init__(self, base: LinearSolver, net: Network) -> None:
        self.base = base
        self.net = net
        stamps = self._stamps()
        nodes = np.unique(np.concatenate([s.idx for s in stamps] + [np.zeros(0, np.int64)]))
        self.k_nodes = nodes[nodes >= 0]
        self.local = {int(n): i for i, n in enumerate(self.k_nodes)}
        self.y_base = [s.y.copy() for s in stamps]
        self.where = []  # per stamp: its non-ground conductors and their places among K
        for st in stamps:
            keep = st.idx >= 0
            loc = np.array([self.local[int(n)] for n in st.idx[keep]], np.int64)
            self.where.append((np.ix_(keep, keep), np.ix_(loc, loc)))
        k = len(self.k_nodes)
        if k:
            u = np.zeros((net.n, k), complex)
            u[self.k_nodes, np.arange(k)] = 1.0
            self.z = base.solve(u)
            self.w = self.z[self.k_nodes]
        self._md: np.ndarray | None = None
        self.dirty = True

    def _stamps(self) -> list[Stamp]:
        return [*self.net.xf_stamps.values(), *self.net.cap_stamps.values()]

    def _update(self) -> None:
        """Recompute D and factorise I + D·W after a change of taps or capacitor steps."""
        self.dirty = False
        k = len(self.k_nodes)
        d = np.zeros((k, k), complex)
        for st, y0, (own, at) in zip(self._stamps(), self.y_base, self.where, strict=True):
            if st.y is y0 or np.array_equal(st.y, y0):
                continue
            d[at] += (st.y - y0)[own]
        if not np.any(d):
            self._md = None
            return
        self._md = np.linalg.solve(np.eye(k) + d @ self.w, d)  # (I + D·W)⁻¹·D, K × K

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``Y⁻¹ rhs`` at the present taps and capacitor states (one or many columns)."""
        if self.dirty:
            self._update()
        y0 = self.base.solve(rhs)
        if self._md is None:
            return y0
        return y0 - self.z @ (self._md @ y0[self.k_nodes])
