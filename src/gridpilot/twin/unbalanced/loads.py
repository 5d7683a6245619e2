"""Voltage-dependent load currents, vectorised over load branches and time steps.

Each load becomes one *branch* per phase: wye phases between the phase conductor and the
neutral conductor, delta phases between two phase conductors. OpenDSS's semantics are kept:
power per branch is ``kW / phases``; the branch base voltage is ``kV/√3`` for 2- and 3-phase
wye loads, else ``kV``; models 1, 4, 5 and the P part of 8 fall back to constant impedance
below ``vminpu`` and above ``vmaxpu`` (and every model below ``vlowpu`` = 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import njit

from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.twin.unbalanced.arrays import NO_RT
from gridpilot.twin.unbalanced.network import Network

VLOW_PU = 0.5


@dataclass
class LoadBranches:
    """Arrays over load branches (length ``m``): ends, bases, nominal S and model data."""

    a: np.ndarray  # node index of the phase end
    b: np.ndarray  # node index of the other end (-1 = ground)
    vbase_v: np.ndarray
    s_va: np.ndarray  # complex nominal power per branch (W + j var), consumption positive
    model: np.ndarray
    vmin_pu: np.ndarray
    vmax_pu: np.ndarray
    zip: np.ndarray  # (m, 7)
    cvr: np.ndarray  # (m, 2)
    load_of: np.ndarray  # which grid load each branch belongs to
    names: list[str]

    @property
    def m(self) -> int:
        """Number of load branches."""
        return len(self.a)

    def yeq(self) -> np.ndarray:
        """Nominal constant-impedance admittance per branch (S)."""
        return np.conj(self.s_va) / self.vbase_v**2


def _pairs(conn: str, phases: int, nodes: tuple[int, ...]) -> list[tuple[int, int]]:
    if conn == "delta" and phases >= 3:
        return [(k, (k + 1) % phases) for k in range(phases)]
    if conn == "delta":
        return [(0, 1)]
    return [(k, phases) for k in range(phases)]


def compile_loads(grid: ThreePhaseGrid, net: Network) -> LoadBranches:
    """One branch per load phase, in grid order (disabled loads skipped)."""
    cols: dict[str, list] = {k: [] for k in ("a", "b", "vb", "s", "model", "vmin", "vmax", "zip", "cvr", "of")}  # fmt: skip
    names: list[str] = []
    for li, ld in enumerate(grid.loads):
        if not ld.enabled:
            continue
        idx = net.terminal_idx([ld.terminal])
        wye_multi = ld.conn != "delta" and ld.phases > 1
        vb = ld.kv * 1e3 / (np.sqrt(3.0) if wye_multi else 1.0)
        s = complex(ld.kw, ld.kvar) * 1e3 / ld.phases
        zipv = (list(ld.zipv) + [0.0] * 7)[:7]
        for p, q in _pairs(ld.conn, ld.phases, ld.terminal.nodes):
            cols["a"].append(idx[p] if p < len(idx) else -1)
            cols["b"].append(idx[q] if q < len(idx) else -1)
            cols["vb"].append(vb)
            cols["s"].append(s)
            cols["model"].append(ld.model)
            cols["vmin"].append(ld.vminpu)
            cols["vmax"].append(ld.vmaxpu)
            cols["zip"].append(zipv)
            cols["cvr"].append((ld.cvr_watts, ld.cvr_vars))
            cols["of"].append(li)
            names.append(f"{ld.kind}.{ld.name}")
    return LoadBranches(
        a=np.array(cols["a"], np.int64),
        b=np.array(cols["b"], np.int64),
        vbase_v=np.array(cols["vb"], float),
        s_va=np.array(cols["s"], complex),
        model=np.array(cols["model"], np.int64),
        vmin_pu=np.array(cols["vmin"], float),
        vmax_pu=np.array(cols["vmax"], float),
        zip=np.array(cols["zip"], float).reshape(-1, 7),
        cvr=np.array(cols["cvr"], float).reshape(-1, 2),
        load_of=np.array(cols["of"], np.int64),
        names=names,
    )


def branch_voltage(lb: LoadBranches, v: np.ndarray) -> np.ndarray:
    """Voltage across each load branch (V), shape (m, steps)."""
    va = v[lb.a]
    vb = np.where((lb.b >= 0)[:, None], v[np.maximum(lb.b, 0)], 0.0)
    return va - vb


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _i_out(
    yv: complex, vr: float, vmin: float, vmax: float, i_at_vmin: float, hexp: int
) -> complex:
    """Current outside [vmin, vmax] as OpenDSS computes it: between ``vlowpu`` and ``vmin``
    the magnitude goes linearly from ``Yeq·Vlow`` to its value at ``vmin`` (pu of ``|S|/Vb``);
    above ``vmax`` constant impedance ``Yeq / vmax**hexp``."""
    if vr < vmin:
        i_pu = VLOW_PU + (i_at_vmin - VLOW_PU) * (vr - VLOW_PU) / (vmin - VLOW_PU)
        return yv * (i_pu / vr)
    return yv / vmax**hexp


@njit(nogil=True, error_model="numpy", inline="always")
def pq_band_sq(vb: float, vmin: float, vmax: float) -> tuple[float, float]:
    """The bounds of ``|V|²`` strictly between which a constant-PQ load draws its power
    exactly: ``[max(vmin, vlow), vmax]·vb`` squared, narrowed by a margin of 1e-9 that keeps
    the root's rounding out (near a limit the caller decides on ``|V|``)."""
    lo = max(vmin, VLOW_PU) * vb
    hi = vmax * vb
    return lo * lo * (1.0 + 1e-9), hi * hi * (1.0 - 1e-9)


@njit(nogil=True, error_model="numpy", inline="always")
def pq_in_band(v2: float, vb: float, vmin: float, vmax: float) -> bool:
    """Whether ``|V|² = v2`` is safely inside a constant-PQ load's band (:func:`pq_band_sq`)."""
    lo2, hi2 = pq_band_sq(vb, vmin, vmax)
    return v2 > lo2 and v2 < hi2


@njit(cache=True, nogil=True, error_model="numpy")
def pq_bands(
    vbase: np.ndarray, model: np.ndarray, vmin: np.ndarray, vmax: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pq_band_sq` of every constant-PQ branch, once per run; an empty band (+inf,
    -inf) for the other models, so that a test on the band alone leaves them out."""
    m = len(vbase)
    lo2, hi2 = np.full(m, np.inf), np.full(m, -np.inf)
    for q in range(m):
        if model[q] == 1:
            lo2[q], hi2[q] = pq_band_sq(vbase[q], vmin[q], vmax[q])
    return lo2, hi2


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def pq_excess(lo2: np.ndarray, hi2: np.ndarray, x: np.ndarray, s: np.ndarray, yeq: np.ndarray,
              out: np.ndarray) -> None:  # fmt: skip
    """``out[q]`` ← the current of branch ``q`` beyond ``yeq[q]·x[q]`` where ``|x[q]|²`` is
    inside its band ``(lo2[q], hi2[q])`` (:func:`pq_bands`): ``conj(S)·V/|V|² − Yeq·V``, the
    bits of :func:`load_current`; elsewhere its real part is NaN (the caller computes it).

    Branch-free, so the loop runs in SIMD lanes, the divisions (a scalar loop's bound) four
    at a time; contiguous arrays keep it so (a strided ``s`` halves its speed)."""
    for q in range(len(lo2)):
        xr, xi, sr, si, yr, yi = (
            x[q].real,
            x[q].imag,
            s[q].real,
            s[q].imag,
            yeq[q].real,
            yeq[q].imag,
        )
        v2 = xr * xr + xi * xi
        re = (sr * xr + si * xi) / v2 - (yr * xr - yi * xi)
        im = (sr * xi - si * xr) / v2 - (yr * xi + yi * xr)
        out[q] = complex(re if v2 > lo2[q] and v2 < hi2[q] else np.nan, im)


@njit(nogil=True, error_model="numpy", inline="always")  # inlined: callers cache it
def load_current(  # noqa: PLR0913
    v: complex, sc: complex, vb: float, mod: int, vmin: float, vmax: float,
    cvr: np.ndarray, zipc: np.ndarray, q: int,
) -> complex:  # fmt: skip
    """Current drawn through load branch ``q`` at branch voltage ``v`` (V) and power ``sc``
    (VA): ``vb`` its base voltage, ``mod`` its model, ``cvr`` (m, 2) and ``zipc`` (m, 7) the
    branches' data (whole arrays, indexed by ``q``)."""
    v2 = v.real * v.real + v.imag * v.imag
    if mod == 1 and pq_in_band(v2, vb, vmin, vmax):  # conj(S / V) = conj(S)·V / |V|², no
        c = np.conj(sc) * v  # root, and the division by a real spelled out (numba divides
        return complex(c.real / v2, c.imag / v2)  # complex by real as complex by complex)
    vr = np.sqrt(v2) / vb
    if vr >= VLOW_PU and mod != 2:
        outside = vr < vmin or vr > vmax
        if mod == 1 and not outside:  # within 1e-9 of a limit
            return np.conj(sc) * v / v2
        if mod == 1 or mod == 4 or mod == 5:
            return _load_other(v, sc, vb, mod, vmin, vmax, vr, outside, cvr[q, 0], cvr[q, 1])
        return _load_zip(v, sc, vb, vmin, vmax, vr, outside, zipc, q)
    return np.conj(sc) / (vb * vb) * v


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _load_other(  # noqa: PLR0913
    v: complex, sc: complex, vb: float, mod: int, vmin: float, vmax: float, vr: float,
    outside: bool, cvr_p: float, cvr_q: float,
) -> complex:  # fmt: skip
    """Models 1 (outside its band), 4 and 5."""
    yv = np.conj(sc) / (vb * vb) * v
    if mod == 1:
        return _i_out(yv, vr, vmin, vmax, 1.0 / vmin, 2)
    if mod == 5:
        return _i_out(yv, vr, vmin, vmax, 1.0, 1) if outside else np.conj(sc / v) * vr
    if outside:  # 4
        return _i_out(yv, vr, vmin, vmax, 1.0 / vmin, 2)
    sv = complex(sc.real * vr**cvr_p, sc.imag * vr**cvr_q)
    return np.conj(sv / v)


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def _load_zip(  # noqa: PLR0913
    v: complex, sc: complex, vb: float, vmin: float, vmax: float, vr: float, outside: bool,
    z: np.ndarray, q: int,
) -> complex:  # fmt: skip
    """Model 8 (ZIP, and any other model number) as OpenDSS's ``DoZIPVModel``: outside
    ``vmin … vmax`` the constant-current part goes over to an admittance as model 5 does
    and the constant-power part as model 1 does; above ``vlow`` the current is scaled by
    the smooth drop-out ``½(1 + tanh(500·(vr − cutoff)))`` of the cutoff ``z[q, 6]`` (0:
    none)."""
    sz = complex(sc.real * z[q, 0], sc.imag * z[q, 3])
    si = complex(sc.real * z[q, 1], sc.imag * z[q, 4])
    spp = complex(sc.real * z[q, 2], sc.imag * z[q, 5])
    i = np.conj(sz) / (vb * vb) * v
    if outside:
        i = i + _i_out(np.conj(si) / (vb * vb) * v, vr, vmin, vmax, 1.0, 1)
        i = i + _i_out(np.conj(spp) / (vb * vb) * v, vr, vmin, vmax, 1.0 / vmin, 2)
    else:
        i = i + np.conj(si / v) * vr
        i = i + np.conj(spp / v)
    if z[q, 6] > 0.0:
        vx = 500.0 * (vr - z[q, 6])
        if vx < 20.0:  # from 20 on the factor is 1 in double precision
            e = np.exp(2.0 * vx)
            i *= 0.5 * (1.0 + (e - 1.0) / (e + 1.0))
    return i


@njit(cache=True, nogil=True, **NO_RT)
def _currents(  # noqa: PLR0913
    vbr: np.ndarray, s: np.ndarray, vbase: np.ndarray, model: np.ndarray, vmin_a: np.ndarray,
    vmax_a: np.ndarray, cvr: np.ndarray, zipc: np.ndarray, out: np.ndarray,
) -> None:  # fmt: skip
    m, steps = vbr.shape
    for b in range(m):
        for c in range(steps):
            out[b, c] = load_current(
                vbr[b, c], s[b, c], vbase[b], model[b], vmin_a[b], vmax_a[b], cvr, zipc, b
            )


def load_currents(lb: LoadBranches, vbr: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Current drawn through each load branch (A, from the phase end), shape (m, steps).

    ``vbr``: branch voltages (V); ``s``: the branch powers of each step (VA, complex).
    Models: 1 constant PQ, 2 constant Z, 4 exponential (CVR), 5 constant |I|, 8 ZIP; all
    constant Z below ``vlowpu`` (0.5).
    """
    vbr = np.ascontiguousarray(vbr, dtype=complex)
    s = np.ascontiguousarray(np.broadcast_to(s, vbr.shape), dtype=complex)
    out = np.empty_like(vbr)
    _currents(vbr, s, lb.vbase_v, lb.model, lb.vmin_pu, lb.vmax_pu, lb.cvr, lb.zip, out)
    return out


class LoadArr(NamedTuple):
    """Load branches in the compiled QSTS loop (:mod:`.faststep`): the arrays of
    :class:`LoadBranches`, their admittances in the matrix and what the loop's load kernels
    precompute once per engine."""

    a: np.ndarray  # phase end (a negative index already wrapped, as numpy would)
    b: np.ndarray  # other end, -1 = ground
    vbase: np.ndarray
    model: np.ndarray
    vmin: np.ndarray
    vmax: np.ndarray
    cvr: np.ndarray
    zip: np.ndarray
    yeq: np.ndarray
    lo2: np.ndarray  # the constant-PQ band on |V|² (pq_bands; empty for the other models)
    hi2: np.ndarray
    first: np.ndarray  # (m, 2) bool: the branch's a / b end is the first to touch its row
    sole: np.ndarray  # (1,) bool: every branch grounded and alone on its row
    comp: np.ndarray  # (m,) complex scratch of faststep._rhs


@njit(cache=True, nogil=True, error_model="numpy", **NO_RT)
def branch_voltages(ld: LoadArr, v: np.ndarray, out: np.ndarray) -> None:
    """``out`` ← the voltage across each load branch (compiled loop; :func:`branch_voltage`
    for arrays of steps)."""
    a, b = ld.a, ld.b
    if ld.sole[0]:  # all grounded: v[a] − 0j is v[a], bit for bit (−0.0 − 0.0 = −0.0)
        for q in range(len(a)):
            out[q] = v[np.uint64(a[q])]
        return
    for q in range(len(a)):  # unsigned indices: no wrap-around test per gather
        vb = v[np.uint64(b[q])] if b[q] >= 0 else 0j
        out[q] = v[np.uint64(a[q])] - vb


def load_arr(lb: LoadBranches, yeq: np.ndarray, n: int) -> LoadArr:
    """The compiled loop's arrays of ``lb`` (``yeq``: the admittances in the matrix; ``n``:
    the number of nodes)."""
    a = np.where(lb.a < 0, lb.a + n, lb.a).astype(np.int64)
    b = lb.b.astype(np.int64)
    lo2, hi2 = pq_bands(lb.vbase_v, lb.model, lb.vmin_pu, lb.vmax_pu)
    first = np.zeros((lb.m, 2), np.bool_)
    seen: set[int] = set()
    for q in range(lb.m):  # the order faststep._rhs adds in: a then b of each branch
        for e, row in enumerate((int(a[q]), int(b[q]))):
            if row >= 0 and row not in seen:
                first[q, e] = True
                seen.add(row)
    sole = np.array([bool(np.all(b < 0) and np.all(first[:, 0]))])
    return LoadArr(a, b, lb.vbase_v, lb.model, lb.vmin_pu, lb.vmax_pu,
                   np.ascontiguousarray(lb.cvr), np.ascontiguousarray(lb.zip),
                   np.ascontiguousarray(yeq, complex), lo2, hi2, first, sole,
                   np.zeros(lb.m, complex))  # fmt: skip
