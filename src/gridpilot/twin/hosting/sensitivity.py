"""First-pass limits from sensitivities: unit current injections at the candidate nodes are
solved as multi-column right-hand sides on the factorised network (loads as their
admittances at the operating point), and each check's boundary is solved on that linear
model: ``|x + P·y| = limit`` per node and branch conductor, ``P_src + P·dP = 0`` for
reverse flow, ``|V₂ + P·y₂| = L·|V₁ + P·y₁|`` for unbalance at three-phase buses. With the
hour's Jacobian (:class:`~gridpilot.twin.hosting.newton.Chord`) the injections are solved
on the true tangent (loads at their own model); without it on the constant-impedance
matrix."""

from __future__ import annotations

import numpy as np

from gridpilot.twin.hosting.feeder import Feeder
from gridpilot.twin.hosting.newton import Chord
from gridpilot.twin.hosting.options import HostingOptions
from gridpilot.twin.unbalanced.results import A


def crossing(x: np.ndarray, y: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Smallest P > 0 with ``|x + P·y| = level`` (per column: min over rows; inf if none).

    ``x``: rows (base phasors), ``y``: rows × cols (change per unit P), ``level``: rows."""
    a = np.abs(y) ** 2
    b = 2 * np.real(np.conj(x)[:, None] * y)
    c = (np.abs(x) ** 2 - level**2)[:, None]
    disc = b * b - 4 * a * c
    ok = (disc >= 0) & (a > 0)
    sq = np.sqrt(np.where(ok, disc, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        r1 = np.where(ok, (-b - sq) / (2 * a), np.inf)
        r2 = np.where(ok, (-b + sq) / (2 * a), np.inf)
    r1 = np.where(r1 > 1e-9, r1, np.inf)
    r2 = np.where(r2 > 1e-9, r2, np.inf)
    return np.minimum(r1, r2).min(axis=0, initial=np.inf)


def quadratic_root(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Smallest P > 0 with ``a·P² + b·P + c = 0`` per element (inf if none)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        disc = b * b - 4 * a * c
        ok = disc >= 0
        sq = np.sqrt(np.where(ok, disc, 0.0))
        lin = np.where(b != 0, -c / b, np.inf)  # a == 0: the linear root
        r1 = np.where(a != 0, (-b - sq) / (2 * a), lin)
        r2 = np.where(a != 0, (-b + sq) / (2 * a), lin)
    r1 = np.where(ok & (r1 > 1e-9), r1, np.inf)
    r2 = np.where(ok & (r2 > 1e-9), r2, np.inf)
    return np.minimum(r1, r2)


def unbalance_crossing(fd: Feeder, v0: np.ndarray, y: np.ndarray, limit_pct: float) -> np.ndarray:
    """Smallest P (W) at which a three-phase bus within the limit at ``v0`` reaches
    ``limit_pct`` voltage unbalance on the linear model (per candidate; inf if none)."""
    if not len(fd.tri_buses):
        return np.full(y.shape[1], np.inf)
    tri = fd.tri

    def seq(x: np.ndarray, a1: complex, a2: complex) -> np.ndarray:
        return (x[tri[:, 0]] + a1 * x[tri[:, 1]] + a2 * x[tri[:, 2]]) / 3.0

    v1, v2 = seq(v0, A, A * A), seq(v0, A * A, A)
    y1, y2 = seq(y, A, A * A), seq(y, A * A, A)
    lim = limit_pct / 100.0
    ok = (np.abs(v2) <= lim * np.abs(v1)) & (np.abs(v1) > 0)
    qa = np.abs(y2[ok]) ** 2 - lim**2 * np.abs(y1[ok]) ** 2
    qb = 2 * np.real(np.conj(v2[ok])[:, None] * y2[ok] - lim**2 * np.conj(v1[ok])[:, None] * y1[ok])
    qc = (np.abs(v2[ok]) ** 2 - lim**2 * np.abs(v1[ok]) ** 2)[:, None]
    return quadratic_root(qa, qb, np.broadcast_to(qc, qa.shape)).min(axis=0, initial=np.inf)


def estimate_kw(
    fd: Feeder, v0: np.ndarray, cols: np.ndarray, der_pu: float, opts: HostingOptions,
    chord: Chord | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Linear estimate of each candidate's limit (kW of rating) for candidates ``cols``
    at the base voltages ``v0`` (V, nodes), and the voltage change per W of rating
    (V/W, nodes × candidates) it rests on (the true tangent where ``chord`` is given)."""
    net = fd.twin.net
    n = net.n
    k = fd.node_idx[cols]
    sign = 1.0 if opts.der == "pv" else -1.0
    # dV per W of rating: current injected = sign·der_pu / conj(V_k)
    rhs = np.zeros((n, len(cols)), complex)
    rhs[k, np.arange(len(cols))] = sign * der_pu / np.conj(v0[k])
    y = chord.apply_inv(rhs) if chord is not None else fd.twin.factor().solve(rhs)
    vb = net.vbase_v
    live = np.abs(v0) > 0.05 * vb
    vpu0 = np.abs(v0) / vb
    if opts.der == "pv":
        live &= vpu0 <= opts.vmax_pu
        level = opts.vmax_pu * vb
    else:
        live &= vpu0 >= opts.vmin_pu
        level = opts.vmin_pu * vb
    est = crossing(v0[live], y[live], level[live])
    frac = (1 - opts.cloud_fraction) if opts.der == "pv" else 1.0
    proj = np.real(y * np.conj(v0)[:, None]) / np.maximum(np.abs(v0), 1e-9)[:, None]
    worst = (np.abs(proj[live]) / vb[live, None]).max(axis=0) * frac
    with np.errstate(divide="ignore"):
        est = np.minimum(est, np.where(worst > 0, opts.dv_step_pct / 100 / worst, np.inf))
    br = net.branch_rows
    if br is not None:
        i0 = br @ v0
        rated = np.isfinite(fd.rating) & (np.abs(i0) <= opts.thermal_pu * fd.rating)
        lvl = (opts.thermal_pu * fd.rating)[rated]
        est = np.minimum(est, crossing(i0[rated], (br @ y)[rated], lvl))
    if opts.der == "pv" and opts.reverse_flow:
        est = np.minimum(est, _reverse_estimate(fd, v0, y))
    est = np.minimum(est, unbalance_crossing(fd, v0, y, opts.vuf_limit_pct))
    return est / 1e3, y


def _reverse_estimate(fd: Feeder, v0: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Linear estimate of reverse flow at the source and at each regulator (W of rating)."""
    p0 = fd._p_source(v0[:, None])[0] * 1e3
    eps = 1e-3  # linearise by a small finite step of the linear model
    dp = (fd._p_source(v0[:, None] + eps * y)[:] * 1e3 - p0) / eps
    est = np.where((p0 >= 0) & (dp < 0), -p0 / np.where(dp < 0, dp, -1.0), np.inf)
    if fd.reg_xf:
        r0 = fd._p_regs(v0[:, None])[:, 0] * 1e3
        dr = (fd._p_regs(v0[:, None] + eps * y) * 1e3 - r0[:, None]) / eps
        ok = (r0[:, None] >= 0) & (dr < -1e-3)
        er = np.where(ok, -r0[:, None] / np.where(ok, dr, -1.0), np.inf)
        est = np.minimum(est, er.min(axis=0))
    return est
