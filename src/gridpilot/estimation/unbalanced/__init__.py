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
    "lnr": (
        "RemovedRow",
        "RobustEstimate",
        "detectability",
        "estimate_robust",
        "normalised_residuals",
    ),
    "measurements": ("UnbalancedMeasurements",),
    "model": ("LinearNetwork", "SeNetwork", "build_linear_network"),
    "sparse": ("SparseNetwork", "build_network", "build_sparse_network", "check_network_size"),
    "sparse_wls": ("SparseEstimator", "estimator_for"),
    "sensors": ("SensorSpec", "SensorTruth", "build_measurements", "metered_loads"),
    "study": (
        "Case",
        "GrossError",
        "TrueState",
        "TruthOptions",
        "default_cases",
        "default_gross_errors",
        "node_errors",
        "run_case",
        "state_errors",
        "true_state",
        "with_gross_errors",
    ),
    "wls": ("UnbalancedEstimate", "UnbalancedEstimator", "UnobservableError", "WlsOptions"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from gridpilot.estimation.unbalanced.lnr import (
        RemovedRow,
        RobustEstimate,
        detectability,
        estimate_robust,
        normalised_residuals,
    )
    from gridpilot.estimation.unbalanced.measurements import UnbalancedMeasurements
    from gridpilot.estimation.unbalanced.model import (
        LinearNetwork,
        SeNetwork,
        build_linear_network,
    )
    from gridpilot.estimation.unbalanced.sensors import (
        SensorSpec,
        SensorTruth,
        build_measurements,
        metered_loads,
    )
    from gridpilot.estimation.unbalanced.sparse import (
        SparseNetwork,
        build_network,
        build_sparse_network,
        check_network_size,
    )
    from gridpilot.estimation.unbalanced.sparse_wls import SparseEstimator, estimator_for
    from gridpilot.estimation.unbalanced.study import (
        Case,
        GrossError,
        TrueState,
        TruthOptions,
        default_cases,
        default_gross_errors,
        node_errors,
        run_case,
        state_errors,
        true_state,
        with_gross_errors,
    )
    from gridpilot.estimation.unbalanced.wls import (
        UnbalancedEstimate,
        UnbalancedEstimator,
        UnobservableError,
        WlsOptions,
    )
