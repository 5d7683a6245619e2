"""Voltage-dependent load currents, vectorised over load branches and time steps.

Each load becomes one *branch* per phase: wye phases between the phase conductor and the
neutral conductor, delta phases between two phase conductors. OpenDSS's semantics are kept:
power per branch is ``kW / phases``; the branch base voltage is ``kV/√3`` for 2- and 3-phase
wye loads, else ``kV``; models 1, 4, 5 and the P part of 8 fall back to constant impedance
below ``vminpu`` and above ``vmaxpu`` (and every model below ``vlowpu`` = 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from gridpilot.model.threephase import ThreePhaseGrid
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


@njit(cache=True, nogil=True, error_model="numpy")
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
def pq_in_band(v2: float, vb: float, vmin: float, vmax: float) -> bool:
    """Whether ``|V|² = v2`` is safely inside ``[max(vmin, vlow), vmax]·vb``, where a
    constant-PQ load draws its power exactly (a margin of 1e-9 keeps the root's rounding
    out: near a limit the caller decides on ``|V|``)."""
    lo = max(vmin, VLOW_PU) * vb
    hi = vmax * vb
    return v2 > lo * lo * (1.0 + 1e-9) and v2 < hi * hi * (1.0 - 1e-9)


@njit(nogil=True, error_model="numpy", inline="always")  # inlined: callers cache it
def load_current(  # noqa: PLR0913
    v: complex, sc: complex, vb: float, mod: int, vmin: float, vmax: float,
    cvr: np.ndarray, zipc: np.ndarray, q: int,
) -> complex:  # fmt: skip
    """Current drawn through load branch ``q`` at branch voltage ``v`` (V) and power ``sc``
    (VA): ``vb`` its base voltage, ``mod`` its model, ``cvr`` (m, 2) and ``zipc`` (m, 7) the
    branches' data (whole arrays: row views would cost reference counting per call)."""
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


@njit(cache=True, nogil=True, error_model="numpy")
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


@njit(cache=True, nogil=True, error_model="numpy")
def _load_zip(  # noqa: PLR0913
    v: complex, sc: complex, vb: float, vmin: float, vmax: float, vr: float, outside: bool,
    z: np.ndarray, q: int,
) -> complex:  # fmt: skip
    """Model 8 (ZIP, and any other model number), with its cut-off voltage ``z[q, 6]``."""
    if vr < z[q, 6]:
        return 0j
    sz = complex(sc.real * z[q, 0], sc.imag * z[q, 3])
    si = complex(sc.real * z[q, 1], sc.imag * z[q, 4])
    spp = complex(sc.real * z[q, 2], sc.imag * z[q, 5])
    i = np.conj(sz) / (vb * vb) * v + np.conj(si / v) * vr
    if outside:
        return i + _i_out(np.conj(spp) / (vb * vb) * v, vr, vmin, vmax, 1.0 / vmin, 2)
    return i + np.conj(spp / v)


@njit(cache=True, nogil=True)
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
