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


def _outside(
    yv: np.ndarray, vr: np.ndarray, vmin: np.ndarray, vmax: np.ndarray, i_at_vmin: np.ndarray | float,
    high_exp: int,
) -> np.ndarray:  # fmt: skip
    """Current outside [vmin, vmax] as OpenDSS computes it: between ``vlowpu`` and ``vmin``
    the magnitude goes linearly from ``Yeq·Vlow`` to its value at ``vmin`` (pu of ``|S|/Vb``);
    above ``vmax`` constant impedance ``Yeq / vmax**high_exp``."""
    vr_safe = np.where(vr > 0, vr, 1.0)
    frac = (vr - VLOW_PU) / (vmin - VLOW_PU)
    i_pu = VLOW_PU + (i_at_vmin - VLOW_PU) * frac
    return np.where(vr < vmin, yv * (i_pu / vr_safe), yv / vmax**high_exp)


def load_currents(lb: LoadBranches, vbr: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Current drawn through each load branch (A, from the phase end), shape (m, steps).

    ``vbr``: branch voltages (V); ``s``: the branch powers of each step (VA, complex).
    """
    vm = np.abs(vbr)
    vb = lb.vbase_v[:, None]
    vr = vm / vb
    yv = np.conj(s) / vb**2 * vbr  # constant-impedance current at the nominal power
    vmin, vmax = lb.vmin_pu[:, None], lb.vmax_pu[:, None]
    v_safe = np.where(vm > 0, vbr, 1.0)
    i_pq = np.conj(s / v_safe)
    out = (vr < vmin) | (vr > vmax)
    model = lb.model[:, None]
    i = np.where(out, _outside(yv, vr, vmin, vmax, 1.0 / vmin, 2), i_pq)  # model 1
    i = np.where(model == 2, yv, i)
    i5 = np.where(out, _outside(yv, vr, vmin, vmax, 1.0, 1), i_pq * vr)
    i = np.where(model == 5, i5, i)
    cw, cv = lb.cvr[:, 0:1], lb.cvr[:, 1:2]
    s_cvr = s.real * vr**cw + 1j * s.imag * vr**cv
    i4 = np.where(out, _outside(yv, vr, vmin, vmax, 1.0 / vmin, 2), np.conj(s_cvr / v_safe))
    i = np.where(model == 4, i4, i)
    if np.any(lb.model == 8):
        i = np.where(model == 8, _zip(lb, vbr, s, vr, out, vmin, vmax), i)
    return np.where(vr < VLOW_PU, yv, i)


def _zip(
    lb: LoadBranches, vbr: np.ndarray, s: np.ndarray, vr: np.ndarray, out: np.ndarray,
    vmin: np.ndarray, vmax: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """ZIP: shares of constant Z, I and P for P and Q (``zipv``), zero below the cut-off."""
    z = lb.zip
    zp, ip, pp, zq, iq, pq, cut = (z[:, k : k + 1] for k in range(7))
    vb2 = lb.vbase_v[:, None] ** 2
    v_safe = np.where(vbr != 0, vbr, 1.0)
    sz = s.real * zp + 1j * s.imag * zq
    si = s.real * ip + 1j * s.imag * iq
    sp_ = s.real * pp + 1j * s.imag * pq
    i_z = np.conj(sz) / vb2 * vbr
    i_i = np.conj(si / v_safe) * vr
    yv_p = np.conj(sp_) / vb2 * vbr
    i_p = np.where(out, _outside(yv_p, vr, vmin, vmax, 1.0 / vmin, 2), np.conj(sp_ / v_safe))
    return np.where(vr < cut, 0.0, i_z + i_i + i_p)
