"""gridpilot.estimation: state estimation, bad data, and anomaly detection at the meter edge.

>>> from gridpilot.estimation import StateEstimator, estimate_robust, measurements_from_powerflow
>>> se = StateEstimator(grid)                      # compiled once (PGM network + sensor maps)
>>> res = se.estimate(measurements)                # EstimationResult: v_pu, residuals, chi2
>>> rep = estimate_robust(se, measurements)        # chi-square, largest normalised residual, re-estimate
>>> rep.removed_labels                             # e.g. ['V bus 18']

Anomaly detection: :class:`TheftDetector` and :class:`FdiDetector` (per-meter state of a few
numbers, vectorised over meters), :func:`feeder_balance`, :func:`threshold_baseline`.
"""

from gridpilot.estimation.anomaly import (
    FdiDetector,
    TheftDetector,
    calibrate_threshold,
    feeder_balance,
    group_median,
    threshold_baseline,
)
from gridpilot.estimation.baddata import (
    BadData,
    BadDataReport,
    estimate_robust,
    normalised_residuals,
)
from gridpilot.estimation.measurements import (
    Measurements,
    PowerSensorKind,
    measurements_from_meters,
    measurements_from_powerflow,
)
from gridpilot.estimation.se import EstimationResult, StateEstimator

__all__ = [
    "BadData",
    "BadDataReport",
    "EstimationResult",
    "FdiDetector",
    "Measurements",
    "PowerSensorKind",
    "StateEstimator",
    "TheftDetector",
    "calibrate_threshold",
    "estimate_robust",
    "feeder_balance",
    "group_median",
    "measurements_from_meters",
    "measurements_from_powerflow",
    "normalised_residuals",
    "threshold_baseline",
]
