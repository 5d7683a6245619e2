"""Load net of local PV and wind: physical components driven by the weather forecast.

A substation's metered load is the demand minus the generation behind it. Trees and lag
models see that generation as noise on the demand that depends on the next day's weather.
:class:`NetLoadForecaster` separates the two:

1. each component turns covariates into output per unit of installed capacity ``s_i(t)``:
   :class:`PVComponent` (pvlib: irradiance and temperature → kW per kWp,
   :func:`~gridpilot.forecast.pvphys.pv_per_kwp`), :class:`WindComponent` (hub-height wind
   speed → power curve, :func:`~gridpilot.forecast.windphys.wind_per_unit`);
2. the installed capacities ``k_i`` (data units per unit, ≥ 0) are estimated on the training
   rows by least squares of the one-day differences of the load on those of the ``s_i``
   (:func:`estimate_capacities`: the daily profile and the slow level of the demand do not
   leak into ``k``);
3. the base model forecasts the gross demand ``load + Σ k_i·s_i``; the forecast is that
   minus ``Σ k_i·s_i`` at the target times. The learned correction of the physics is the
   base model's, which also sees the covariates.

``k`` is re-estimated whenever the base model is trained (first fit and every refit).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gridpilot.errors import Issue, ValidationError
from gridpilot.forecast.base import ForecastBatch, Forecaster, horizon_rows
from gridpilot.forecast.data import History, Repair
from gridpilot.forecast.pvphys import PVSite, pv_per_kwp
from gridpilot.forecast.windphys import PowerCurve, wind_per_unit

log = logging.getLogger(__name__)


def _column(cov: np.ndarray, names: Sequence[str], name: str, who: str) -> np.ndarray:
    if name not in names:
        raise ValidationError(
            issues=[Issue(who, "covariates", f"needs the column {name!r}", value=list(names))]
        )
    return cov[:, list(names).index(name)]


@dataclass(frozen=True)
class PVComponent:
    """PV behind the meter: ``site`` and the irradiance / temperature covariate names."""

    site: PVSite
    ghi_column: str = "radiation"
    temp_column: str | None = "temp"
    name: str = field(default="pv", init=False)

    def shape(self, index: pd.DatetimeIndex, cov: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """Output per kWp (T,) from the covariates."""
        ghi = _column(cov, names, self.ghi_column, self.name)
        temp = None
        if self.temp_column is not None and self.temp_column in names:
            temp = _column(cov, names, self.temp_column, self.name)
        return pv_per_kwp(index, ghi, temp, self.site)


@dataclass(frozen=True)
class WindComponent:
    """Wind behind the meter: wind speed covariate (m/s at ``height_m``), power curve."""

    speed_column: str = "windspeed_100m"
    curve: PowerCurve = field(default_factory=PowerCurve)
    height_m: float = 100.0
    hub_m: float = 100.0
    name: str = field(default="wind", init=False)

    def shape(self, index: pd.DatetimeIndex, cov: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """Output per unit of rated power (T,) from the covariates."""
        v = _column(cov, names, self.speed_column, self.name)
        return wind_per_unit(v, self.curve, height_m=self.height_m, hub_m=self.hub_m)


Component = PVComponent | WindComponent


def estimate_capacities(
    load: np.ndarray, shapes: np.ndarray, steps_per_day: int, *, sign: float = -1.0
) -> np.ndarray:
    """Generation behind the meter (K,) in load units per unit of each shape (≥ 0).

    Least squares of the one-day differences ``load[t] − load[t − day]`` on those of the
    ``shapes`` (T, K): the difference removes the daily profile and the slow level of the
    demand and keeps what the weather changes from one day to the next (a day fixed effect
    would remove that too: wind and cloud cover persist over a day). ``sign`` −1: the load
    falls as the shape rises (generation netted off a load); +1: a generation series, fitted
    on the levels through the origin instead (the diurnal cycle is the signal there, and
    differences would let the covariates' forecast noise shrink ``k`` more). A component
    whose capacity comes out negative gets 0 and the others are fitted again.
    """
    s = int(steps_per_day)
    x = np.asarray(shapes, float).reshape(len(load), -1)
    y = np.asarray(load, float)
    if len(y) <= s + 1:
        return np.zeros(x.shape[1])
    if sign > 0:  # a generation series: y ≈ Σ k·s through the origin, on the levels
        dy, dx = y, x
    else:
        dy = sign * (y[s:] - y[:-s])
        dx = x[s:] - x[:-s]
    k = np.zeros(x.shape[1])
    active = np.array([float(dx[:, j] @ dx[:, j]) > 1e-12 for j in range(x.shape[1])])
    while active.any():
        sol, *_ = np.linalg.lstsq(dx[:, active], dy, rcond=None)
        if (sol >= 0).all():
            k[active] = sol
            break
        active[np.flatnonzero(active)[int(np.argmin(sol))]] = False
    return k


class NetLoadForecaster(Forecaster):
    """Forecasts a load net of local generation as ``base``'s forecast of the gross demand
    minus the physical estimate of each of ``components`` (see the module docstring).

    The covariates passed to fit/predict must hold the components' columns; the base model
    gets every covariate if it uses covariates. ``capacity_`` (C, K) holds the estimated
    capacities (load units per unit of each component's shape). ``sign`` −1: a load net of
    the generation (default); +1: the series *is* the generation (a PV or wind plant: the
    base model then forecasts the physics' error, the learned correction), with forecasts
    and quantiles not below ``floor`` (e.g. 0). ``window_days``: estimate the capacities on
    the last that many days of the training rows only (default: all of them).
    ``zero_when_idle``: forecast exactly 0 where every component's physics gives 0 (PV at
    night).
    """

    uses_covariates = True

    def __init__(  # noqa: PLR0913
        self,
        base: Forecaster,
        components: Sequence[Component],
        *,
        sign: float = -1.0,
        floor: float | None = None,
        window_days: float | None = None,
        zero_when_idle: bool = False,
        repair: Repair = "error",
    ) -> None:
        super().__init__(
            base.horizon,
            calibration_fraction=base.calibration_fraction,
            repair=repair,
            refit=base.refit,
        )
        if not components:
            raise ValidationError(
                issues=[Issue("net-load", "components", "needs at least one (pv, wind)")]
            )
        if sign not in (-1.0, 1.0):
            raise ValidationError(
                issues=[Issue("net-load", "sign", "must be -1 or +1", value=sign)]
            )
        self.sign = float(sign)
        self.floor = floor
        self.window_days = window_days
        self.zero_when_idle = bool(zero_when_idle)
        self.base = base
        self.components = tuple(components)
        self.name = base.name + "".join(f"+{c.name}" for c in self.components)
        self.capacity_: np.ndarray | None = None  # (C, K)
        self._spd = 24

    @property
    def min_context(self) -> int:
        """Rows of history a forecast needs: the base model's."""
        return self.base.min_context

    def min_train_rows(self) -> int:
        """Rows needed to fit: the base model's."""
        return self.base.min_train_rows()

    def _on_history(self, history: History) -> None:
        self._spd = history.steps_per_day
        self.base._on_history(history)

    def shapes(self, index: pd.DatetimeIndex, cov: np.ndarray | None) -> np.ndarray:
        """Per-unit output (T, K) of every component from the covariates at ``index``."""
        names = self.cov_columns_ or ()
        if cov is None:
            raise ValidationError(
                issues=[Issue(self.name, "covariates", "are needed (weather forecasts)")]
            )
        return np.stack([c.shape(index, cov, names) for c in self.components], axis=1)

    def _fit_arrays(self, data: ForecastBatch, val_start: int | None) -> None:
        values, cov = data.values, data.cov
        end = len(values) if val_start is None else val_start
        sh = self.shapes(data.index, cov)
        start = 0
        if self.window_days is not None:
            start = max(0, end - round(self.window_days * self._spd))
        self.capacity_ = np.stack(
            [
                estimate_capacities(values[start:end, j], sh[start:end], self._spd, sign=self.sign)
                for j in range(values.shape[1])
            ]
        )
        log.info("%s: generation behind the meter %s", self.name, self.capacity_)
        gross = values - self.sign * (sh @ self.capacity_.T)
        if val_start is not None or self.base.mean_ is None:
            self.base.mean_ = gross[:end].mean(axis=0)
            sd = gross[:end].std(axis=0)
            self.base.std_ = np.where(sd > 1e-12, sd, 1.0)
        self.base.cov_columns_ = self.cov_columns_
        self.base._fit_arrays(self._base_batch(data, gross), val_start)

    def _base_batch(self, batch: ForecastBatch, gross: np.ndarray) -> ForecastBatch:
        """The batch the base model sees: the gross load, covariates only if it uses them."""
        return batch.but(values=gross, cov=batch.cov if self.base.uses_covariates else None)

    def generation(
        self, index: pd.DatetimeIndex, cov: np.ndarray | None, origins: np.ndarray
    ) -> np.ndarray:
        """Estimated generation (N, C, H) at each origin's targets, data units."""
        self._check_trained(self.capacity_)
        assert self.capacity_ is not None
        sh = self.shapes(index, cov)
        gen = sh @ self.capacity_.T  # (T, C)
        return np.transpose(gen[horizon_rows(origins, self.horizon)], (0, 2, 1))

    def _forecast(self, batch: ForecastBatch) -> np.ndarray:
        """Point forecasts (N, C, H) of the net load in data units."""
        self._check_trained(self.capacity_)
        assert self.capacity_ is not None
        gross = batch.values - self.sign * (self.shapes(batch.index, batch.cov) @ self.capacity_.T)
        g = self.base._forecast(self._base_batch(batch, gross))
        gen = self.generation(batch.index, batch.cov, batch.origins)
        out = g + self.sign * gen
        if self.zero_when_idle:
            out = np.where(gen == 0.0, 0.0, out)
        return out if self.floor is None else np.maximum(out, self.floor)

    def _bound_quantiles(self, qs: np.ndarray, batch: ForecastBatch) -> np.ndarray:
        """Quantiles (Q, N, C, H) not below ``floor``."""
        return qs if self.floor is None else np.maximum(qs, self.floor)
