"""First-pass limits from sensitivities: unit current injections at the candidate nodes are
solved as multi-column right-hand sides on the factorised network (loads as their
admittances at the operating point), and each check's boundary is solved on that linear
model: ``|x + P·y| = limit`` per node and branch conductor, ``P_src + P·dP = 0`` for
reverse flow. Unbalance has no estimate (the exact checks find it)."""

from __future__ import annotations

import numpy as np

from gridpilot.twin.hosting.feeder import Feeder
from gridpilot.twin.hosting.options import HostingOptions


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


def estimate_kw(
    fd: Feeder, v0: np.ndarray, cols: np.ndarray, der_pu: float, opts: HostingOptions
) -> tuple[np.ndarray, np.ndarray]:
    """Linear estimate of each candidate's limit (kW of rating) for candidates ``cols``
    at the base voltages ``v0`` (V, nodes), and the voltage change per W of rating
    (V/W, nodes × candidates) it rests on."""
    net = fd.twin.net
    n = net.n
    k = fd.node_idx[cols]
    rhs = np.zeros((n, len(cols)), complex)
    rhs[k, np.arange(len(cols))] = 1.0
    z = fd.twin.factor().solve(rhs)
    sign = 1.0 if opts.der == "pv" else -1.0
    # dV per W of rating: current injected = sign·der_pu / conj(V_k)
    y = z * (sign * der_pu / np.conj(v0[k]))[None, :]
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
