"""gridpilot.estimation: state estimation, bad data, and anomaly detection at the meter edge.

>>> from gridpilot.estimation import StateEstimator, estimate_robust, measurements_from_powerflow
>>> se = StateEstimator(grid)                      # compiled once (PGM network + sensor maps)
>>> res = se.estimate(measurements)                # EstimationResult: v_pu, residuals, chi2
>>> rep = estimate_robust(se, measurements)        # chi-square, largest normalised residual, re-estimate
>>> rep.removed_labels                             # e.g. ['V bus 18']

Anomaly detection: :class:`TheftDetector` and :class:`FdiDetector` (per-meter state of a few
numbers, vectorised over meters), :func:`feeder_balance`, :func:`threshold_baseline`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridpilot._lazy import lazy_exports

# public names by submodule; imported on first use (see gridpilot/_lazy.py)
_EXPORTS: dict[str, tuple[str, ...]] = {
    "anomaly": (
        "FdiDetector",
        "TheftDetector",
        "calibrate_threshold",
        "feeder_balance",
        "threshold_baseline",
    ),
    "baddata": ("estimate_robust",),
    "measurements": (
        "Measurements",
        "PowerSensorKind",
        "measurements_from_meters",
        "measurements_from_powerflow",
    ),
    "robust": ("RobustEstimate",),
    "se": ("EstimationResult", "StateEstimator"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from gridpilot.estimation.anomaly import (
        FdiDetector,
        TheftDetector,
        calibrate_threshold,
        feeder_balance,
        threshold_baseline,
    )
    from gridpilot.estimation.baddata import estimate_robust
    from gridpilot.estimation.measurements import (
        Measurements,
        PowerSensorKind,
        measurements_from_meters,
        measurements_from_powerflow,
    )
    from gridpilot.estimation.robust import RobustEstimate
    from gridpilot.estimation.se import EstimationResult, StateEstimator
