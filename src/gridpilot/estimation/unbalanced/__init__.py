"""Three-phase (per node-phase) WLS state estimation with bad-data removal.

>>> from gridpilot.estimation.unbalanced import (
...     SensorSpec, TruthOptions, UnbalancedEstimator, build_linear_network,
...     build_measurements, estimate_robust, true_state)
>>> twin = UnbalancedTwin(load_grid("ieee123"))
>>> truth = true_state(twin, 900.0, TruthOptions(hour=7.5))      # twin taps settled, held
>>> lin = build_linear_network(twin)                              # V = A z at those taps
>>> m = build_measurements(lin, truth.truth, SensorSpec(seed=1))  # head, regulators, meters
>>> rep = estimate_robust(UnbalancedEstimator(lin), m)            # LNR removal
>>> rep.result.v_pu, rep.removed_labels

For any size (ieee8500 too), ``build_network(twin)`` picks the dense model or the sparse one
(:mod:`.sparse`: no dense ``A``) and ``estimator_for(lin)`` its estimator.

See docs/estimation.md ("Three-phase estimation").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridpilot._lazy import lazy_exports

_EXPORTS: dict[str, tuple[str, ...]] = {
    "lnr": ("detectability", "estimate_robust"),
    "model": ("build_linear_network",),
    "sparse": ("build_network",),
    "sparse_wls": ("estimator_for",),
    "sensors": ("SensorSpec", "build_measurements"),
    "study": ("Case", "TruthOptions", "default_cases", "run_case", "state_errors", "true_state"),
    "wls": ("UnbalancedEstimator", "UnobservableError"),
    "gridpilot.estimation.robust": ("RobustEstimate",),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from gridpilot.estimation.robust import RobustEstimate
    from gridpilot.estimation.unbalanced.lnr import detectability, estimate_robust
    from gridpilot.estimation.unbalanced.model import build_linear_network
    from gridpilot.estimation.unbalanced.sensors import SensorSpec, build_measurements
    from gridpilot.estimation.unbalanced.sparse import build_network
    from gridpilot.estimation.unbalanced.sparse_wls import estimator_for
    from gridpilot.estimation.unbalanced.study import (
        Case,
        TruthOptions,
        default_cases,
        run_case,
        state_errors,
        true_state,
    )
    from gridpilot.estimation.unbalanced.wls import UnbalancedEstimator, UnobservableError
