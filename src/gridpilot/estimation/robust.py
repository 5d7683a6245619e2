"""What a bad-data-robust estimate returns, for the balanced and the three-phase estimator.

:func:`gridpilot.estimation.estimate_robust` (balanced, power-grid-model WLS) and
:func:`gridpilot.estimation.unbalanced.estimate_robust` (per node-phase WLS) both detect bad
data (chi-square), identify it (largest normalised residual), remove it and estimate again.
They return the same :class:`RobustEstimate`, parametrised by the estimator's result and
measurement types, so a caller reads the same fields from either: ``result``, ``first``,
``measurements``, ``removed`` (each a :class:`RemovedMeasurement`), ``chi2_history``, ``note``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

E = TypeVar("E")  # the estimator's result type
M = TypeVar("M")  # its measurement set type


@dataclass
class RemovedMeasurement:
    """One measurement removed as bad data.

    ``label`` names it; ``residual`` is its residual (in its own units) and
    ``normalised_residual`` its r_N in the estimate that identified it; ``row`` its index in
    the measurement set of that estimate; ``source`` where it came from when the set records
    it (three-phase: ``"head"``, ``"reg"``, ``"meter"``; "" on the balanced set).
    """

    label: str
    residual: float
    normalised_residual: float
    row: int = -1
    source: str = ""


@dataclass
class RobustEstimate(Generic[E, M]):
    """An estimate after bad-data removal.

    ``result`` is the final estimate and ``measurements`` the set it used; ``first`` the
    estimate with every measurement; ``removed`` what was taken out, in the order found;
    ``chi2_history`` the chi-square J of each estimate (``first`` first); ``note`` why the
    result may still hold bad data or has no estimate ("" when neither).
    """

    result: E
    first: E
    measurements: M
    removed: list[RemovedMeasurement] = field(default_factory=list)
    chi2_history: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def removed_labels(self) -> list[str]:
        """Labels of the removed measurements, in the order found."""
        return [r.label for r in self.removed]
