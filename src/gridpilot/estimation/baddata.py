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
"""

from __future__ import annotations

import numpy as np

from gridpilot.estimation.measurements import Measurements
from gridpilot.estimation.robust import RemovedMeasurement, RobustEstimate
from gridpilot.estimation.se import EstimationResult, StateEstimator


def normalised_residuals(
    se: StateEstimator, m: Measurements, res: EstimationResult, candidates: int = 30
) -> np.ndarray:
    """|r_i| / sqrt(Omega_ii) for the ``candidates`` largest weighted residuals (0 elsewhere).

    Dimensionless; critical measurements (no redundancy) get 0; NaN where ``K_ii`` could not
    be computed (the estimate with that measurement perturbed failed with every method).
    """
    w = np.abs(res.weighted_residual)
    rows = np.argsort(-w)[: max(1, min(candidates, w.size))]
    k = se.diag_sensitivity(m, rows)
    one_minus = 1.0 - k
    out = np.zeros(w.size)
    ok = one_minus > 1e-6
    out[rows[ok]] = np.abs(res.residual[rows[ok]]) / (res.sigma[rows[ok]] * np.sqrt(one_minus[ok]))
    out[rows[np.isnan(k)]] = np.nan
    return out


def _split_row(m: Measurements, row: int) -> tuple[list[int], list[int]]:
    """Voltage rows and power-sensor rows to drop for scalar measurement ``row``.

    A power sensor measures P and Q together; a bad P or Q removes the sensor.
    """
    nv, npw = m.v_pu.size, m.p_kind.size
    if row < nv:
        return [row], []
    return [], [(row - nv) % npw]


def estimate_robust(
    se: StateEstimator,
    m: Measurements,
    *,
    lnr_limit: float = 3.0,
    max_removals: int = 5,
    candidates: int = 30,
) -> RobustEstimate[EstimationResult, Measurements]:
    """Estimate, detect bad data (chi-square), identify it (largest normalised residual),
    remove it and re-estimate; returns a :class:`~gridpilot.estimation.robust.RobustEstimate`
    (the same type as the three-phase estimator's).

    Raises only :class:`~gridpilot.errors.GridpilotError` (bad input). When the estimate
    does not converge, or bad data is suspected but cannot be identified (no normalised
    residual above ``lnr_limit``, or some could not be computed), ``report.note`` says so.
    """
    cur = m.copy()
    res = se.estimate(cur)
    first = res
    report: RobustEstimate[EstimationResult, Measurements] = RobustEstimate(
        res, first, cur, chi2_history=[res.chi2]
    )
    for _ in range(max_removals):
        if not res.converged:
            report.note = f"no estimate: {res.meta.get('error', 'did not converge')}"
            break
        if not res.bad_data_suspected:  # detection: chi-square passes, nothing to remove
            break
        rn = normalised_residuals(se, cur, res, candidates)
        worst = int(np.nanargmax(rn)) if np.isfinite(rn).any() else -1
        if worst < 0 or rn[worst] <= lnr_limit:  # suspected but not identifiable
            report.note = _unidentified(cur, res, rn)
            break
        label = cur.labels()[worst]
        report.removed.append(
            RemovedMeasurement(label, float(res.residual[worst]), float(rn[worst]), row=worst)
        )
        v_rows, p_rows = _split_row(cur, worst)
        without = cur.without(v_rows, p_rows)
        after = se.estimate(without)
        if not after.converged:  # a critical measurement: without it there is no estimate
            report.removed.pop()
            why = after.meta.get("error", "did not converge")
            report.note = (
                f"bad data suspected at {label} (r_N {rn[worst]:.2f}) but without it there is "
                f"no estimate ({why}): kept, a critical measurement"
            )
            break
        cur, res = without, after
        report.chi2_history.append(res.chi2)
    else:
        if res.converged and res.bad_data_suspected:
            report.note = f"bad data still suspected after {max_removals} removals"
    report.result = res
    report.measurements = cur
    return report


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
