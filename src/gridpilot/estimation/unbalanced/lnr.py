"""Bad data on the three-phase estimator: chi-square detection, largest normalised residual
identification, removal and re-estimation (Abur & Expósito, ch. 5).

The residual covariance is ``Ω = R - H G⁻¹ Hᵀ``, so ``Ω_ii = σ_i² (1 - K_ii)`` with ``K_ii``
the hat-matrix diagonal the estimator returns (exact, from its SVD, no approximation).
``r_N,i = |r_i| / sqrt(Ω_ii)``.

**Detectability.** A gross error ``b`` alone on measurement ``i`` moves its residual by
``(1 - K_ii) b``, so its normalised residual by ``b sqrt(1 - K_ii) / σ_i``. The smallest
error the test flags is therefore ``λ σ_i / sqrt(1 - K_ii)`` (λ = ``lnr_limit``):
:func:`detectability` returns it per measurement, in the measurement's units. A *critical*
measurement (``1 - K_ii`` < 1e-6: nothing else sees what it sees) cannot be checked at all;
its detectability is infinite and it is never removed.

Pseudo-measurements are never removed: they are what keeps the unmetered loads observable,
and their wide σ already says how little they are trusted.

**When to look.** Identification runs while the chi-square test fails and the largest
``r_N`` exceeds ``lnr_limit`` (3), as in the textbook, *or* while the largest ``r_N`` alone
exceeds ``lnr_alarm`` (4; a Gaussian false alarm of 6e-5 per row): a gross error on a
nearly critical row (a smart meter's P, whose only check is the feeder-head sum through the
pseudo-measurements' wide σ) moves J too little for the chi-square test to notice.
"""

from __future__ import annotations

import logging

import numpy as np

from gridpilot.errors import ConvergenceError
from gridpilot.estimation.robust import RemovedMeasurement, RobustEstimate
from gridpilot.estimation.unbalanced.measurements import UnbalancedMeasurements
from gridpilot.estimation.unbalanced.wls import GaussNewton, UnbalancedEstimate

log = logging.getLogger(__name__)
CRITICAL = 1e-6


def normalised_residuals(est: UnbalancedEstimate) -> np.ndarray:
    """``|r_i| / (σ_i sqrt(1 - K_ii))`` per measurement (dimensionless); 0 for critical ones."""
    om = 1.0 - est.k_diag
    ok = om > CRITICAL
    out = np.zeros(est.residual.size)
    out[ok] = np.abs(est.residual[ok]) / (est.sigma[ok] * np.sqrt(om[ok]))
    return out


def detectability(est: UnbalancedEstimate, lnr_limit: float = 3.0) -> np.ndarray:
    """The smallest gross error (in each measurement's units) that the largest-normalised-
    residual test flags when it is the only one: ``λ σ / sqrt(1 - K_ii)``; inf if critical."""
    om = 1.0 - est.k_diag
    return np.where(
        om > CRITICAL, lnr_limit * est.sigma / np.sqrt(np.maximum(om, CRITICAL)), np.inf
    )


def estimate_robust(
    se: GaussNewton,
    m: UnbalancedMeasurements,
    *,
    lnr_limit: float = 3.0,
    lnr_alarm: float = 4.0,
    max_removals: int = 10,
) -> RobustEstimate[UnbalancedEstimate, UnbalancedMeasurements]:
    """Estimate; while bad data is detected (module docstring: chi-square with r_N above
    ``lnr_limit``, or r_N above ``lnr_alarm``), remove the measurement with the largest
    normalised residual (a smart meter's P/Q is replaced by its profile pseudo-measurement,
    see :meth:`UnbalancedMeasurements.replaced`) and estimate again (from the last state). Returns a
    :class:`~gridpilot.estimation.robust.RobustEstimate` (the same type as the balanced
    estimator's); ``note`` says why bad data may remain."""
    cur = m
    res = se.estimate(cur)
    rep: RobustEstimate[UnbalancedEstimate, UnbalancedMeasurements] = RobustEstimate(
        res, res, cur, chi2_history=[res.chi2]
    )
    for _ in range(max_removals):
        rn = normalised_residuals(res)
        rn[np.array(cur.source) == "pseudo"] = 0.0  # never removed (they keep observability)
        worst = int(np.argmax(rn))
        if not res.bad_data_suspected and rn[worst] <= lnr_alarm:
            break
        if rn[worst] <= lnr_limit:
            rep.note = (
                f"bad data suspected (J = {res.chi2:.1f} > {res.chi2_limit:.1f}) but no "
                f"normalised residual above {lnr_limit} (critical measurements?)"
            )
            break
        rep.removed.append(
            RemovedMeasurement(
                cur.labels[worst],
                float(res.residual[worst]),
                float(rn[worst]),
                row=worst,
                source=cur.source[worst],
            )
        )
        log.info("%s: removed %s (r_N %.1f)", se.lin.grid, cur.labels[worst], rn[worst])
        swapped = cur.replaced(worst)
        cur = swapped if swapped is not None else cur.without([worst])
        try:
            res = se.estimate(cur, z0=res.z)
        except ConvergenceError:
            res = se.estimate(cur)
        rep.chi2_history.append(res.chi2)
    else:
        if res.bad_data_suspected or normalised_residuals(res).max(initial=0.0) > lnr_alarm:
            rep.note = f"bad data still suspected after {max_removals} removals"
    rep.result = res
    rep.measurements = cur
    return rep
