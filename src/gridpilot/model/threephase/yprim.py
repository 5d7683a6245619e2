"""Primitive admittance matrices of the unbalanced elements (siemens).

Each function returns the element's ``Yprim`` with the conductors ordered terminal by
terminal (as OpenDSS orders them): the tests pin these against OpenDSS's own ``YPrim``.
"""

from __future__ import annotations

import math

import numpy as np

from gridpilot.model.threephase.elements import Branch, Capacitor, Source, Transformer

SQRT3 = math.sqrt(3.0)


def branch_yprim(b: Branch) -> np.ndarray:
    """Series ``Z⁻¹`` between the two terminals plus half the shunt admittance at each end."""
    n = b.phases
    ys = np.linalg.inv(b.z_ohm)
    yh = 0.5 * b.y_shunt_s
    y = np.empty((2 * n, 2 * n), complex)
    y[:n, :n] = ys + yh
    y[n:, n:] = ys + yh
    y[:n, n:] = -ys
    y[n:, :n] = -ys
    return y


def source_yprim(s: Source) -> tuple[np.ndarray, np.ndarray]:
    """The Thevenin source's ``Yprim`` (bus1 then bus2) and its Norton currents (A) at bus1."""
    n = s.phases
    zs = (2 * s.z1_ohm + s.z0_ohm) / 3.0
    zm = (s.z0_ohm - s.z1_ohm) / 3.0
    z = np.full((n, n), zm, complex)
    np.fill_diagonal(z, zs)
    y = np.linalg.inv(z)
    v_ln = s.pu * s.kv_ll * 1e3 / (SQRT3 if n > 1 else 1.0)
    ang = np.deg2rad(s.angle_deg - 120.0 * np.arange(n))
    e = v_ln * np.exp(1j * ang)
    yp = np.block([[y, -y], [-y, y]])
    return yp, y @ e


def winding_base_v(t: Transformer, i: int) -> float:
    """Winding ``i``'s rated voltage across the winding (V): LN for multi-phase wye."""
    w = t.windings[i]
    if t.phases > 1 and w.conn == "wye":
        return w.kv * 1e3 / SQRT3
    return w.kv * 1e3


def _xsc_pu(t: Transformer, i: int, j: int) -> float:
    """Short-circuit reactance between windings i < j (per unit), OpenDSS X-array order."""
    n = len(t.windings)
    k = 0
    for a in range(n):
        for b in range(a + 1, n):
            if (a, b) == (i, j):
                return t.xsc_pct[k] / 100.0 if k < len(t.xsc_pct) else 0.0
            k += 1
    raise IndexError((i, j))


def transformer_winding_y(t: Transformer, mag_winding: int | None = None) -> np.ndarray:
    """Admittance among the windings on a 1-volt base (n × n, siemens per phase)."""
    n = len(t.windings)
    va = t.windings[0].kva * 1e3 / t.phases
    r = [w.r_pct / 100.0 for w in t.windings]

    def zsc(i: int, j: int) -> complex:
        return complex(r[i] + r[j], _xsc_pu(t, i, j))

    zb = np.empty((n - 1, n - 1), complex)
    for i in range(1, n):
        for j in range(1, n):
            if i == j:
                zb[i - 1, j - 1] = zsc(0, i)
            else:
                zb[i - 1, j - 1] = 0.5 * (zsc(0, i) + zsc(0, j) - zsc(min(i, j), max(i, j)))
    yb = np.linalg.inv(zb / va)
    a = np.zeros((n - 1, n))
    a[:, 0] = -1.0
    a[np.arange(n - 1), np.arange(1, n)] = 1.0
    y1 = a.T @ yb @ a
    m = magnetising_winding(t) if mag_winding is None else mag_winding
    y1[m, m] += complex(t.noloadloss_pct / 100.0, -t.imag_pct / 100.0) * va
    return y1


def magnetising_winding(t: Transformer) -> int:
    """Index of the winding carrying the no-load (magnetising) shunt: winding 2, as in
    OpenDSS (pinned by the YPrim tests on the 8500-node centre-tapped units)."""
    return 1 if len(t.windings) > 1 else 0


def transformer_yprim(t: Transformer) -> np.ndarray:
    """Terminal ``Yprim`` of a transformer: (windings × (phases+1))² in siemens.

    Each phase's winding ``i`` sees the voltage between its phase conductor and either the
    winding's neutral conductor (wye, and every single-phase unit) or the next phase
    (delta), divided by the winding's base voltage times its tap.
    """
    n, p = len(t.windings), t.phases
    nc = p + 1
    y1 = transformer_winding_y(t)
    step = 1 if t.lead_lag == "lead" else -1  # ANSI "lag": phase k's delta leg is k to k-1
    yp = np.zeros((n * nc, n * nc), complex)
    for k in range(p):
        a = np.zeros((n, n * nc))
        for i, w in enumerate(t.windings):
            scale = 1.0 / (winding_base_v(t, i) * w.tap)
            hi = i * nc + k
            lo = i * nc + (p if (w.conn == "wye" or p == 1) else (k + step) % p)
            a[i, hi] += scale
            a[i, lo] -= scale
        yp += a.T @ y1 @ a
    if t.ppm_antifloat:
        _add_antifloat(t, yp)
    return yp


def _add_antifloat(t: Transformer, yp: np.ndarray) -> None:
    """Tiny susceptances to ground on the conductors (OpenDSS's ``ppm_antifloat``).

    Per winding, ``y = -ppm·1e-6 · S_phase / V²  / 2``: each wye phase gets ``y`` and the
    neutral ``(phases+1)·y``; a delta winding adds ``y`` to both conductors of each of its
    legs (``2y`` per phase conductor of a 3-phase delta), as pinned by the YPrim tests.
    """
    p, nc = t.phases, t.phases + 1
    for i, w in enumerate(t.windings):
        vb = winding_base_v(t, i)
        y = 1j * (-t.ppm_antifloat * 1e-6 / (vb * vb / (w.kva * 1e3 / p)) / 2.0)
        base = i * nc
        if w.conn == "delta" and p > 1:
            for k in range(p):
                yp[base + k, base + k] += 2.0 * y
        elif w.conn == "delta":
            yp[base, base] += y
            yp[base + 1, base + 1] += y
        else:
            for k in range(p):
                yp[base + k, base + k] += y
            yp[base + p, base + p] += y * (p + 1)


def capacitor_yprim(c: Capacitor) -> np.ndarray:
    """``Yprim`` of a capacitor bank with its present step states (siemens).

    Wye: between each phase of bus1 and the matching conductor of bus2 (ground by default);
    delta: across phase pairs of bus1 (bus2's block stays zero).
    """
    p = c.phases
    on = sum(k for k, s in zip(c.kvar, c.states, strict=False) if s)
    v = c.kv * 1000.0 if c.conn == "delta" else c.kv * 1000.0 / (SQRT3 if p > 1 else 1.0)
    b = on * 1e3 / p / (v * v)
    yp = np.zeros((2 * p, 2 * p), complex)
    if c.conn == "delta":
        for k in range(p if p > 2 else 1):
            i, j = k, (k + 1) % p if p > 1 else 1
            _stamp(yp, i, j, 1j * b)
        return yp
    for k in range(p):
        _stamp(yp, k, p + k, 1j * b)
    return yp


def _stamp(y: np.ndarray, i: int, j: int, val: complex) -> None:
    """Add admittance ``val`` between conductors i and j."""
    y[i, i] += val
    y[j, j] += val
    y[i, j] -= val
    y[j, i] -= val
