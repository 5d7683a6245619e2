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

**Candidates.** ``r_N`` is computed for every row whose ``K_ii`` the estimate already has
(the dense model: all of them, from its SVD) and for the ``candidates`` (30) largest
weighted residuals ``|r_i| / σ_i`` among the removable rows, as the balanced estimator does
(:mod:`gridpilot.estimation.baddata`), *and* the ``candidates`` largest of each group of
rows (source and kind: head P, reg V, meter P, ...). On the sparse model ``K_ii`` costs one
sparse solve per row (6,389 on ieee8500, ~90 % of an estimate), so only the candidates are
solved, as one multi-column solve. The groups are needed because ``1 - K_ii`` differs by
three orders of magnitude between them: a smart meter's P is nearly critical (median
``1 - K_ii`` 4e-4 on ieee123), so its gross error shows a weighted residual of
``(1 - K_ii) b / σ``, far below other rows' (on ieee123 the × 5 meter P of the study was the
108th weighted residual, the 5th normalised one), while within a group ``1 - K_ii`` is alike
and it was the largest. The approximation: a row outside the candidates (NaN ``r_N``,
never chosen) whose normalised residual would be the largest is not seen.
``candidates=None`` normalises every row. When bad data is suspected and no candidate is
above the limit, ``note`` says how many rows were not normalised.
"""

from __future__ import annotations

import logging

import numpy as np

from gridpilot.errors import ConvergenceError, ValidationError
from gridpilot.estimation.robust import RemovedMeasurement, RobustEstimate
from gridpilot.estimation.unbalanced.measurements import UnbalancedMeasurements
from gridpilot.estimation.unbalanced.wls import GaussNewton, UnbalancedEstimate

log = logging.getLogger(__name__)
CRITICAL = 1e-6


def normalised_residuals(est: UnbalancedEstimate, rows: np.ndarray | None = None) -> np.ndarray:
    """``|r_i| / (σ_i sqrt(1 - K_ii))`` for measurement ``rows`` (all when None; same order),
    dimensionless; 0 for critical ones. ``K_ii`` comes from :meth:`UnbalancedEstimate.k_at`
    (on the sparse model: one sparse solve per row not yet known)."""
    idx = np.arange(est.residual.size) if rows is None else np.asarray(rows, dtype=int)
    om = 1.0 - est.k_at(idx)
    ok = om > CRITICAL
    out = np.zeros(idx.size)
    out[ok] = np.abs(est.residual[idx[ok]]) / (est.sigma[idx[ok]] * np.sqrt(om[ok]))
    return out


def _lnr(
    est: UnbalancedEstimate,
    m: UnbalancedMeasurements,
    candidates: int | None,
    with_pseudo: bool = False,
) -> np.ndarray:
    """``r_N`` per row for the LNR test (module docstring, *Candidates*): rows whose ``K_ii``
    is known, the ``candidates`` largest weighted residuals among removable rows and the
    ``candidates`` largest of each group (source and kind: meter P, reg V, ...); NaN for rows
    not normalised, 0 for pseudo-measurements (never removed) unless ``with_pseudo`` (then
    theirs where ``K_ii`` is known: the final "still suspected" check, as before)."""
    removable = np.array(m.source) != "pseudo"
    if candidates is None:
        rows = np.arange(est.residual.size)
    else:
        w = np.where(removable, np.abs(est.residual) / est.sigma, -np.inf)
        order = np.argsort(-w, kind="stable")
        group = np.char.add(np.array(m.source, dtype=str), m.kind.astype(str))[order]
        picked = [order[: min(candidates, int(removable.sum()))]]
        for g in np.unique(group[np.isfinite(w[order])]):  # the largest of each group too
            picked.append(order[group == g][:candidates])
        known = np.flatnonzero(~np.isnan(est.k_known))
        rows = np.union1d(known, np.concatenate(picked))
    rn = np.full(est.residual.size, np.nan)
    rn[rows] = normalised_residuals(est, rows)
    if not with_pseudo:
        rn[~removable] = 0.0
    return rn


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
    candidates: int | None = 30,
) -> RobustEstimate[UnbalancedEstimate, UnbalancedMeasurements]:
    """Estimate; while bad data is detected (module docstring: chi-square with r_N above
    ``lnr_limit``, or r_N above ``lnr_alarm``), remove the measurement with the largest
    normalised residual (a smart meter's P/Q is replaced by its profile pseudo-measurement,
    see :meth:`UnbalancedMeasurements.replaced`) and estimate again (from the last state). Returns a
    :class:`~gridpilot.estimation.robust.RobustEstimate` (the same type as the balanced
    estimator's); ``note`` says why bad data may remain. ``candidates``: how many of the
    largest weighted residuals are normalised where ``K_ii`` is not known yet (module
    docstring; None: every row)."""
    if candidates is not None and candidates < 1:
        raise ValidationError(f"candidates: must be at least 1 or None, got {candidates!r}")
    cur = m
    res = se.estimate(cur)
    rep: RobustEstimate[UnbalancedEstimate, UnbalancedMeasurements] = RobustEstimate(
        res, res, cur, chi2_history=[res.chi2]
    )
    for _ in range(max_removals):
        rn = _lnr(res, cur, candidates)
        worst = int(np.nanargmax(rn))
        if not res.bad_data_suspected and rn[worst] <= lnr_alarm:
            break
        if rn[worst] <= lnr_limit:
            rep.note = _unidentified(res, rn, lnr_limit)
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
        if (
            res.bad_data_suspected
            or np.nanmax(_lnr(res, cur, candidates, True), initial=0.0) > lnr_alarm
        ):
            rep.note = f"bad data still suspected after {max_removals} removals"
    rep.result = res
    rep.measurements = cur
    return rep


def _unidentified(res: UnbalancedEstimate, rn: np.ndarray, lnr_limit: float) -> str:
    """Why bad data that the chi-square test suspects was not identified."""
    msg = f"bad data suspected (J = {res.chi2:.1f} > {res.chi2_limit:.1f}) but no normalised "
    skipped = int(np.isnan(rn).sum())
    if skipped:
        done = rn.size - skipped
        return (
            f"{msg}residual above {lnr_limit} among the {done} rows normalised (the largest "
            f"weighted residuals); {skipped} rows not normalised (candidates), the bad "
            f"measurement may be among them"
        )
    return f"{msg}residual above {lnr_limit} (critical measurements?)"
