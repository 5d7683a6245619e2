"""The chi-square view shared by every estimate: weighted residuals and the bad-data flag."""

from __future__ import annotations

import numpy as np


class ChiSquareMixin:
    """Properties over an estimate's ``residual``, ``sigma``, ``chi2`` and ``chi2_limit``
    (the balanced and the three-phase estimates both carry them)."""

    residual: np.ndarray
    sigma: np.ndarray
    chi2: float
    chi2_limit: float

    @property
    def weighted_residual(self) -> np.ndarray:
        """Residuals divided by their measurement sigmas (dimensionless)."""
        return self.residual / self.sigma

    @property
    def bad_data_suspected(self) -> bool:
        """True when the chi-square statistic exceeds its limit."""
        return bool(self.chi2 > self.chi2_limit)
