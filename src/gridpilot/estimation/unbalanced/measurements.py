"""Scalar measurements of the three-phase estimator, as rows over the state ``z``.

Each row is ``|u·z| / scale`` (kind ``MAG``: a voltage in pu or a current in A),
``Re((u·z) conj(w·z)) / scale`` (``P``, kW) or ``Im(...) / scale`` (``Q``, kvar); see
:mod:`.model`. ``source`` says where the value comes from (``head``, ``reg``, ``meter``,
``pseudo``); ``delayed`` marks readings older than the estimate's time; ``fallback`` holds,
per row, the value and σ of a pseudo-measurement that replaces the row if it is rejected as
bad data (a smart meter's P/Q falls back to the load profile; NaN: none, the row is dropped).
``u`` and ``w`` are dense over the state ``z`` (:class:`.model.LinearNetwork`) or CSR over
``x = (V, I_load)`` (:class:`.sparse.SparseNetwork`); :meth:`UnbalancedMeasurements.jacobian`
is then sparse too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

MAG, P, Q = 0, 1, 2
KIND_NAMES = {MAG: "mag", P: "P", Q: "Q"}


@dataclass
class UnbalancedMeasurements:
    """A set of scalar measurements (arrays of length ``M``; ``u``, ``w`` are M × p dense,
    or M × (n + m) CSR)."""

    kind: np.ndarray
    u: Any
    w: Any
    scale: np.ndarray
    value: np.ndarray
    sigma: np.ndarray
    labels: list[str]
    source: list[str]
    delayed: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    fallback: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))

    def __post_init__(self) -> None:
        if self.delayed.size != self.value.size:
            self.delayed = np.zeros(self.value.size, bool)
        if self.fallback.shape != (self.value.size, 2):
            self.fallback = np.full((self.value.size, 2), np.nan)

    @property
    def size(self) -> int:
        """Number of scalar measurements."""
        return int(self.value.size)

    def evaluate(self, z: np.ndarray) -> np.ndarray:
        """The measurement functions ``h(z)`` in the measurements' units."""
        a = self.u @ z
        b = self.w @ z
        s = a * np.conj(b)
        h = np.where(self.kind == MAG, np.abs(a), np.where(self.kind == P, s.real, s.imag))
        return h / self.scale

    def jacobian(self, z: np.ndarray) -> Any:
        """d h / d [Re z, Im z] (M × 2p), real; CSR when the rows are."""
        if sp.issparse(self.u):
            return self._sparse_jacobian(z)
        a = self.u @ z
        b = self.w @ z
        mag = np.maximum(np.abs(a), 1e-12)[:, None]
        ds_re = self.u * np.conj(b)[:, None] + a[:, None] * np.conj(self.w)
        ds_im = 1j * self.u * np.conj(b)[:, None] - 1j * a[:, None] * np.conj(self.w)
        ca = np.conj(a)[:, None]
        h_re = np.where(
            (self.kind == MAG)[:, None],
            (ca * self.u).real / mag,
            np.where((self.kind == P)[:, None], ds_re.real, ds_re.imag),
        )
        h_im = np.where(
            (self.kind == MAG)[:, None],
            -(ca * self.u).imag / mag,
            np.where((self.kind == P)[:, None], ds_im.real, ds_im.imag),
        )
        return np.hstack([h_re, h_im]) / self.scale[:, None]

    def _sparse_jacobian(self, x: np.ndarray) -> sp.csr_matrix:
        """:meth:`jacobian` for CSR rows (the same formulas, row-scaled sparse products)."""
        a = self.u @ x
        b = self.w @ x
        mag = self.kind == MAG
        diag = sp.diags
        cu = diag(np.where(mag, np.conj(a) / np.maximum(np.abs(a), 1e-12), 0.0)) @ self.u
        ub = diag(np.where(mag, 0.0, np.conj(b))) @ self.u
        aw = diag(np.where(mag, 0.0, a)) @ self.w.conj()
        ds_re = ub + aw
        ds_im = 1j * (ub - aw)
        is_p = diag((self.kind == P).astype(float))
        is_q = diag((self.kind == Q).astype(float))
        h_re = cu.real + is_p @ ds_re.real + is_q @ ds_re.imag
        h_im = -cu.imag + is_p @ ds_im.real + is_q @ ds_im.imag
        jac = (diag(1.0 / self.scale) @ sp.hstack([h_re, h_im])).tocsr()
        jac.eliminate_zeros()
        return jac

    def subset(self, keep: np.ndarray) -> UnbalancedMeasurements:
        """The measurements at positions ``keep`` (indices or a boolean mask)."""
        idx = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep)
        return UnbalancedMeasurements(
            kind=self.kind[idx],
            u=self.u[idx],
            w=self.w[idx],
            scale=self.scale[idx],
            value=self.value[idx].copy(),
            sigma=self.sigma[idx].copy(),
            labels=[self.labels[i] for i in idx],
            source=[self.source[i] for i in idx],
            delayed=self.delayed[idx].copy(),
            fallback=self.fallback[idx].copy(),
        )

    def replaced(self, row: int) -> UnbalancedMeasurements | None:
        """A copy with row ``row`` replaced by its fallback pseudo-measurement (relabelled
        ``pseudo …``), or None when it has none."""
        if not np.all(np.isfinite(self.fallback[row])):
            return None
        out = self.copy()
        out.value[row], out.sigma[row] = self.fallback[row]
        out.fallback[row] = np.nan
        out.delayed[row] = False
        out.labels[row] = "pseudo " + self.labels[row].split(" ", 1)[1]
        out.source[row] = "pseudo"
        return out

    def without(self, rows: list[int]) -> UnbalancedMeasurements:
        """A copy without the scalar rows ``rows``."""
        keep = np.ones(self.size, bool)
        keep[rows] = False
        return self.subset(keep)

    def copy(self) -> UnbalancedMeasurements:
        """An independent copy (values and sigmas may then be changed)."""
        return self.subset(np.arange(self.size))

    def index(self, label: str) -> int:
        """Position of the measurement called ``label`` (KeyError if none)."""
        try:
            return self.labels.index(label)
        except ValueError:
            raise KeyError(label) from None

    def count_by_source(self) -> dict[str, int]:
        """How many scalar measurements each source contributes."""
        out: dict[str, int] = {}
        for s in self.source:
            out[s] = out.get(s, 0) + 1
        return out


@dataclass
class _Rows:
    """Rows under construction (appended one by one, stacked once)."""

    kind: list[int] = field(default_factory=list)
    u: list[Any] = field(default_factory=list)
    w: list[Any] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)
    sigma: list[float] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    delayed: list[bool] = field(default_factory=list)
    value: list[float] = field(default_factory=list)

    def add(self, kind: int, u: Any, w: Any | None, scale: float, label: str,  # noqa: PLR0913
            source: str, *, sigma: float = 1.0, delayed: bool = False,
            value: float = float("nan")) -> None:  # fmt: skip
        """Append one scalar row (dense, or a 1-row CSR matrix)."""
        self.kind.append(kind)
        self.u.append(u)
        if w is None:
            w = sp.csr_matrix(u.shape, dtype=complex) if sp.issparse(u) else np.zeros_like(u)
        self.w.append(w)
        self.scale.append(scale)
        self.sigma.append(sigma)
        self.labels.append(label)
        self.source.append(source)
        self.delayed.append(delayed)
        self.value.append(value)

    def build(self, p: int) -> UnbalancedMeasurements:
        """Stack into an :class:`UnbalancedMeasurements`."""

        def stack(rows: list[Any]) -> Any:
            if rows and sp.issparse(rows[0]):
                return sp.vstack(rows, format="csr")
            return np.vstack(rows) if rows else np.zeros((0, p), complex)

        return UnbalancedMeasurements(
            kind=np.array(self.kind, np.int64),
            u=stack(self.u),
            w=stack(self.w),
            scale=np.array(self.scale, float),
            value=np.array(self.value, float),
            sigma=np.array(self.sigma, float),
            labels=self.labels,
            source=self.source,
            delayed=np.array(self.delayed, bool),
        )
