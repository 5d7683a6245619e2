"""Bad-data detection and identification: chi-square test and largest normalised residual.

Method (Abur & Expósito, *Power System State Estimation*, ch. 5):

1. Estimate; ``J = sum((r_i / sigma_i)^2)``. With Gaussian errors J follows a chi-square
   distribution with ``m - (2n - 1)`` degrees of freedom; ``J`` above its ``1 - alpha`` quantile
   says bad data is present.
2. Normalised residuals ``r_N,i = |r_i| / sqrt(Omega_ii)`` with ``Omega_ii = (1 - K_ii) sigma_i^2``
   the residual variance; ``K_ii`` is the hat-matrix diagonal, obtained from power-grid-model
   by one batch of estimates each perturbing one measurement
   (:meth:`StateEstimator.diag_sensitivity`). To bound the work on large measurement sets
   only the ``candidates`` largest weighted residuals are normalised (the largest normalised
   residual is almost always among them; this is the approximation).
3. Only when J fails: if the largest ``r_N`` exceeds ``lnr_limit`` (3), that measurement is bad:
   remove it and estimate again; repeat until J passes (or no ``r_N`` exceeds the limit, or
   ``max_removals``).

Critical measurements (``K_ii`` close to 1, no redundancy) have tiny ``Omega_ii``; their
errors cannot be detected (documented, they are skipped: ``1 - K_ii < 1e-6``).

**Several per pass** (``simultaneous=True``, the default). The same batch gives the whole
residual sensitivity among the candidates (:meth:`StateEstimator.residual_sensitivity`), so
the residual covariance ``Omega`` among them. For the linearised WLS, removing a set ``R``
changes the others' residuals to ``r - Omega_:R Omega_RR^-1 r_R``, their covariance to
``Omega - Omega_:R Omega_RR^-1 Omega_R:`` and J to ``J - r_R' Omega_RR^-1 r_R``. The pass
plays the one-at-a-time loop forward on that model: after the largest ``r_N``, the next
largest predicted ``r_N`` (among the candidates) joins the pass while

* the predicted J still fails by a margin (3 standard deviations of the chi-square,
  ``3 sqrt(2 dof)``, above its limit);
* its predicted ``r_N`` exceeds ``lnr_limit + 1``;
* it does not interact with those already in the pass: the multiple correlation of its
  residual with theirs is at most 0.1 (removing them keeps its residual variance within 1 %,
  so its predicted ``r_N`` is near exact; one they leave critical or nearly is not taken);
* every other candidate of its own residual group (those it interacts with: its error
  smears onto them) is predicted below 0.8 times its ``r_N`` (e.g. a voltage error and its
  bus's load P/Q: left to the next estimate).

A power sensor's other row (Q of a P, P of a Q) goes with it: in this mode the batch also
perturbs the other row of each candidate power sensor (up to twice the scenarios). After the
estimate without the whole pass, its J must be the predicted one (within ``3 sqrt(2 dof)``
plus a quarter of the predicted drop), else the pass is undone and only the first row is
removed, as is done when the estimate without the pass fails. So the removals are those of
the one-at-a-time loop wherever the linear model holds; the critical rule below applies to
the first row as before.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.special import chdtri

from gridpilot.estimation.measurements import Measurements
from gridpilot.estimation.robust import RemovedMeasurement, RobustEstimate
from gridpilot.estimation.se import EstimationResult, StateEstimator

log = logging.getLogger(__name__)
CRITICAL = 1e-6  # 1 - K_ii below this: a critical measurement, never removed
RHO_MAX = 0.1  # residual correlation above which candidates interact
J_MARGIN = 3.0  # a pass goes on only while the predicted J exceeds its limit by this many
# standard deviations of the chi-square (sqrt(2 dof))
RN_MARGIN = 1.0  # ... and the next predicted r_N exceeds lnr_limit by this much
J_SLACK = 0.25  # the J after a pass may differ from the predicted by this share of its drop
RIVAL_RATIO = 0.8  # ... and no candidate interacting with it is predicted above this share of it


def normalised_residuals(
    se: StateEstimator, m: Measurements, res: EstimationResult, candidates: int = 30
) -> np.ndarray:
    """|r_i| / sqrt(Omega_ii) for the ``candidates`` largest weighted residuals (0 elsewhere).

    Dimensionless; critical measurements (no redundancy) get 0; NaN where ``K_ii`` could not
    be computed (the estimate with that measurement perturbed failed with every method).
    """
    return _candidates(se, m, res, candidates)[2]


def _candidates(
    se: StateEstimator,
    m: Measurements,
    res: EstimationResult,
    candidates: int,
    partners: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidate rows (the ``candidates`` largest weighted residuals first; with
    ``partners`` then the other row of each candidate power sensor), their residual
    sensitivity block ``S`` (:meth:`StateEstimator.residual_sensitivity`) and ``r_N`` over
    every row (of the candidates only: the partners are there for :func:`_pass`)."""
    w = np.abs(res.weighted_residual)
    top = np.argsort(-w)[: max(1, min(candidates, w.size))]
    rows = top
    if partners:
        mates = [x for x in (_partner(m, int(i)) for i in top) if x is not None]
        rows = np.concatenate([top, np.setdiff1d(np.array(mates, np.int64), top)])
    s = se.residual_sensitivity(m, rows)
    one_minus = np.abs(np.diagonal(s))[: top.size] if s.size else np.zeros(0)
    k = 1.0 - np.clip(one_minus, 0.0, 1.0)
    one_minus = 1.0 - k
    out = np.zeros(w.size)
    ok = one_minus > CRITICAL
    out[top[ok]] = np.abs(res.residual[top[ok]]) / (res.sigma[top[ok]] * np.sqrt(one_minus[ok]))
    out[top[np.isnan(k)]] = np.nan
    return rows, s, out


def _split_row(m: Measurements, row: int) -> tuple[list[int], list[int]]:
    """Voltage rows and power-sensor rows to drop for scalar measurement ``row``.

    A power sensor measures P and Q together; a bad P or Q removes the sensor.
    """
    nv, npw = m.v_pu.size, m.p_kind.size
    if row < nv:
        return [row], []
    return [], [(row - nv) % npw]


def _partner(m: Measurements, row: int) -> int | None:
    """The other scalar row removed with ``row`` (Q of a P, P of a Q); None for a voltage."""
    nv, npw = m.v_pu.size, m.p_kind.size
    if row < nv:
        return None
    return row + npw if row < nv + npw else row - npw


def _pass(  # noqa: PLR0913
    m: Measurements,
    res: EstimationResult,
    rows: np.ndarray,
    s: np.ndarray,
    first: tuple[int, float],
    lnr_limit: float,
    alpha: float,
    room: int,
    n_top: int,
) -> tuple[list[tuple[int, float]], float]:
    """The rows one pass removes (module docstring, *Several per pass*), ``first`` (row,
    r_N) first; each with its r_N (predicted for all but the first); and the J predicted
    without them all (NaN when only ``first``). ``rows``: the block's rows, the first
    ``n_top`` the candidates (the rest their power sensors' other rows, which are removed
    with them but never chosen)."""
    out = [first]
    pos = {int(x): i for i, x in enumerate(rows)}
    if room <= 1 or not np.isfinite(s).all():
        return out, float("nan")
    sig, r = res.sigma[rows], res.residual[rows]
    om = s * sig[None, :] ** 2
    om = 0.5 * (om + om.T)  # Omega is symmetric; the batch gives both halves
    picked: list[int] = []
    for row, _ in out:
        mate = _partner(m, row)
        if mate is not None and mate not in pos:
            return out, float("nan")  # its partner's effect on the rest is not known
        picked += [pos[row]] + ([pos[mate]] if mate is not None else [])
    while len(out) < room:
        if not (np.diagonal(om)[picked] > 0).all():
            break  # a non-positive variance: the block cannot predict anything
        oar = om[:, picked]
        try:
            sol = np.linalg.solve(om[np.ix_(picked, picked)], np.column_stack([r[picked], oar.T]))
        except np.linalg.LinAlgError:
            break
        j2 = res.chi2 - float(r[picked] @ sol[:, 0])
        dof = max(res.dof - len(picked), 1)
        if j2 <= float(chdtri(dof, alpha)) + J_MARGIN * np.sqrt(2.0 * dof):
            log.debug("pass ends: predicted J %.1f (after %d rows)", j2, len(picked))
            break  # J would pass (or nearly): the next estimate decides
        r2 = r - oar @ sol[:, 0]
        d2 = np.diagonal(om) - np.einsum("ik,ki->i", oar, sol[:, 1:])
        free = d2 > CRITICAL * sig**2  # left critical by the others' removal: never removed
        free[picked] = False
        free[n_top:] = False
        rn2 = np.where(free, np.abs(r2) / np.sqrt(np.where(free, d2, 1.0)), 0.0)
        c = int(np.argmax(rn2))
        var = om[c, c] * np.diagonal(om)
        rho = np.where(var > 0, np.abs(om[c]) / np.sqrt(np.where(var > 0, var, 1.0)), 1.0)
        # its own group (candidates it interacts with) may hold others above the limit (its
        # error smeared onto them) only clearly below it
        rivals = (rn2 > lnr_limit) & (rho > RHO_MAX) & (np.arange(rows.size) != c)
        close = rn2[rivals].max(initial=0.0) > RIVAL_RATIO * rn2[c]
        # its multiple correlation with the pass: how much of its residual variance goes
        # with the others' removal (above RHO_MAX, its predicted r_N is not to be trusted)
        # (a variance that grows says the block is not a covariance there: no better)
        mixed = float(np.sqrt(abs(1.0 - d2[c] / om[c, c])))
        if rn2[c] <= lnr_limit + RN_MARGIN or mixed > RHO_MAX or close:
            log.debug("pass ends before row %d: r_N %.2f, |rho| %.3f, rival close %s, J %.1f",
                      rows[c], rn2[c], mixed, close, j2)  # fmt: skip
            break
        log.debug("pass takes row %d: r_N %.2f -> %.2f, variance kept %.4f, partners rN %s",
                  rows[c], abs(r[c]) / np.sqrt(om[c, c]), rn2[c], d2[c] / om[c, c],
                  np.round(np.abs(r[picked]) / np.sqrt(np.diagonal(om)[picked]), 2))  # fmt: skip
        out.append((int(rows[c]), float(rn2[c])))
        mate = _partner(m, int(rows[c]))
        if mate is not None and mate not in pos:
            break
        picked += [c] + ([pos[mate]] if mate is not None else [])
    if len(out) == 1:
        return out, float("nan")
    try:  # J without the whole pass, for the check after the estimate
        drop = float(r[picked] @ np.linalg.solve(om[np.ix_(picked, picked)], r[picked]))
    except np.linalg.LinAlgError:
        return out[:1], float("nan")
    return out, res.chi2 - drop


def estimate_robust(
    se: StateEstimator,
    m: Measurements,
    *,
    lnr_limit: float = 3.0,
    max_removals: int = 5,
    candidates: int = 30,
    simultaneous: bool = True,
) -> RobustEstimate[EstimationResult, Measurements]:
    """Estimate, detect bad data (chi-square), identify it (largest normalised residual),
    remove it and re-estimate; returns a :class:`~gridpilot.estimation.robust.RobustEstimate`
    (the same type as the three-phase estimator's). ``simultaneous``: a pass may remove
    several non-interacting measurements (module docstring), else one per estimate;
    ``chi2_history`` has one J per estimate.

    Raises only :class:`~gridpilot.errors.GridpilotError` (bad input). When the estimate
    does not converge, or bad data is suspected but cannot be identified (no normalised
    residual above ``lnr_limit``, or some could not be computed), ``report.note`` says so.
    """
    cur = m.copy()
    res = se.estimate(cur)
    report: RobustEstimate[EstimationResult, Measurements] = RobustEstimate(
        res, res, cur, chi2_history=[res.chi2]
    )
    while True:
        if not res.converged:
            report.note = f"no estimate: {res.meta.get('error', 'did not converge')}"
            break
        if not res.bad_data_suspected:  # detection: chi-square passes, nothing to remove
            break
        if len(report.removed) >= max_removals:
            report.note = f"bad data still suspected after {max_removals} removals"
            break
        rows, s, rn = _candidates(se, cur, res, candidates, partners=simultaneous)
        worst = int(np.nanargmax(rn)) if np.isfinite(rn).any() else -1
        if worst < 0 or rn[worst] <= lnr_limit:  # suspected but not identifiable
            report.note = _unidentified(cur, res, rn)
            break
        picked, j_pred = [(worst, float(rn[worst]))], float("nan")
        if simultaneous:
            room = max_removals - len(report.removed)
            n_top = min(max(1, candidates), rn.size)
            picked, j_pred = _pass(cur, res, rows, s, picked[0], lnr_limit, se.alpha, room, n_top)
        step = _remove(se, cur, picked, res, j_pred)
        if not step[1].converged:  # without it there is no estimate
            label = cur.labels()[worst]
            why = step[1].meta.get("error", "did not converge")
            report.note = (
                f"bad data suspected at {label} (r_N {rn[worst]:.2f}) but without it there is "
                f"no estimate ({why}): kept, a critical measurement"
            )
            break
        without, after, picked = step
        labels = cur.labels()
        for row, r_n in picked:
            report.removed.append(
                RemovedMeasurement(labels[row], float(res.residual[row]), r_n, row=row)
            )
        if len(picked) > 1:
            log.info("removed %d in one pass: %s", len(picked), [labels[x] for x, _ in picked])
        cur, res = without, after
        report.chi2_history.append(res.chi2)
    report.result = res
    report.measurements = cur
    return report


def _remove(
    se: StateEstimator,
    m: Measurements,
    picked: list[tuple[int, float]],
    res: EstimationResult,
    j_pred: float,
) -> tuple[Measurements, EstimationResult, list[tuple[int, float]]]:
    """Estimate without the ``picked`` rows; if that fails with several, or its J is not
    the one the linear model predicted (``j_pred``: the prediction does not hold, so neither
    may the choice), without the first only (the one-at-a-time loop's step). Returns the
    set, its estimate and the rows removed (when even the first alone leaves no estimate:
    that failed estimate)."""
    for trial in [picked, picked[:1]] if len(picked) > 1 else [picked]:
        v_rows: list[int] = []
        p_rows: list[int] = []
        for row, _ in trial:
            v, p = _split_row(m, row)
            v_rows += v
            p_rows += p
        without = m.without(sorted(set(v_rows)), sorted(set(p_rows)))
        after = se.estimate(without)
        if len(trial) > 1:
            tol = J_MARGIN * np.sqrt(2.0 * max(after.dof, 1)) + J_SLACK * (res.chi2 - j_pred)
            log.debug("pass of %d: J %.1f, predicted %.1f (tolerance %.1f)",
                      len(trial), after.chi2, j_pred, tol)  # fmt: skip
            if not after.converged or not abs(after.chi2 - j_pred) <= tol:
                continue
        if after.converged:
            return without, after, trial
    return without, after, trial


def _unidentified(m: Measurements, res: EstimationResult, rn: np.ndarray) -> str:
    """Why bad data that the chi-square test suspects was not identified."""
    msg = f"bad data suspected (J = {res.chi2:.1f} > {res.chi2_limit:.1f}) but not identified"
    unknown = np.flatnonzero(np.isnan(rn))
    unknown = unknown[np.argsort(-np.abs(res.weighted_residual[unknown]))]  # worst first
    if unknown.size:
        labels = m.labels()
        names = ", ".join(labels[i] for i in unknown[:5])
        more = f" (+{unknown.size - 5} more)" if unknown.size > 5 else ""
        return f"{msg}: the normalised residual of {names}{more} could not be computed"
    return f"{msg}: no normalised residual above the limit (critical measurements?)"
