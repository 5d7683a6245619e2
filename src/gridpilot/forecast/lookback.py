"""Forecasters over a lookback window whose length is chosen among candidates on validation.

:class:`LookbackForecaster` holds what the linear models share: the candidate lengths
(validated), the chosen one (``lookback_``, reset for every new history), ``min_context`` and
the fit: with a validation part each candidate is fitted on the training origins and scored
on the validation origins by the model's :meth:`~LookbackForecaster._fit_candidate`
(``val_scores_`` per candidate), and the best one's fitted state is kept
(:meth:`~LookbackForecaster._use`); without one the model is trained on every origin with
the chosen lookback (:meth:`~LookbackForecaster._fit_all`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gridpilot.errors import Issue, ValidationError
from gridpilot.forecast.base import ForecastBatch, Forecaster
from gridpilot.forecast.data import History, Repair


@dataclass(frozen=True)
class LookbackFit:
    """What a lookback model trains on: the standardised values ``z`` (T, C), their
    ``index``, the ``lookback``, the training ``origins`` and, when a candidate lookback is
    scored, the validation origins ``val_origins``."""

    z: np.ndarray
    index: pd.DatetimeIndex
    lookback: int
    origins: np.ndarray
    val_origins: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))


class LookbackForecaster(Forecaster):
    """Base of the models over a lookback window of ``lookback`` steps (or candidates)."""

    def __init__(
        self,
        horizon: int,
        lookback: int | Sequence[int],
        *,
        calibration_fraction: float = 0.2,
        repair: Repair = "error",
        refit: bool = True,
    ) -> None:
        super().__init__(
            horizon, calibration_fraction=calibration_fraction, repair=repair, refit=refit
        )
        cands = (lookback,) if isinstance(lookback, int | np.integer) else tuple(lookback)
        if not cands or any(int(c) < 2 for c in cands):
            raise ValidationError(
                issues=[Issue(self.name, "lookback", "must be at least 2 steps", value=lookback)]
            )
        self.lookbacks = tuple(sorted(int(c) for c in cands))
        self.lookback_: int | None = None
        self.val_scores_: dict[int, float] = {}  # validation score of each candidate

    @property
    def min_context(self) -> int:
        """Rows of history a forecast needs: the chosen (or first candidate) lookback."""
        return self.lookback_ if self.lookback_ is not None else self.lookbacks[0]

    def _on_history(self, history: History) -> None:
        self.lookback_ = None

    def _fit_arrays(self, data: ForecastBatch, val_start: int | None) -> None:
        z, index = self.normalise(data.values), data.index
        if val_start is None:
            self._check_trained(self.lookback_)
            assert self.lookback_ is not None
            lb = self.lookback_
            self._fit_all(LookbackFit(z, index, lb, np.arange(lb, len(z) - self.horizon + 1)))
        else:
            self._choose_lookback(z, index, val_start)

    def _fit_all(self, fit: LookbackFit) -> None:
        """Train on every origin of ``fit`` with the chosen lookback."""
        raise NotImplementedError

    def _fit_candidate(self, fit: LookbackFit) -> tuple[float, Any]:
        """Fit with ``fit.lookback`` on its origins; (score on ``val_origins``, fitted state)."""
        raise NotImplementedError

    def _use(self, state: Any) -> None:
        """Keep the fitted state of the chosen candidate."""
        raise NotImplementedError

    def _choose_lookback(self, z: np.ndarray, index: pd.DatetimeIndex, val_start: int) -> None:
        """Fit every candidate on rows before ``val_start``, keep the best on the rest."""
        h = self.horizon
        val_origins = np.arange(val_start, len(z) - h + 1)
        best: tuple[float, int, Any] | None = None
        self.val_scores_ = {}
        for lb in self.lookbacks:
            train_origins = np.arange(lb, val_start - h + 1)
            if len(train_origins) < 2 or val_origins[0] < lb:
                continue
            score, state = self._fit_candidate(
                LookbackFit(z, index, lb, train_origins, val_origins)
            )
            self.val_scores_[lb] = score
            if best is None or score < best[0]:
                best = (score, lb, state)
        if best is None:
            raise ValidationError(
                issues=[
                    Issue(
                        "history",
                        "rows",
                        f"too short for every lookback {list(self.lookbacks)} with horizon {h}",
                        value=len(z),
                    )
                ]
            )
        self.lookback_ = best[1]
        self._use(best[2])
