"""PV forecaster: LightGBM with a physical clear-sky shape (pvlib) as a feature.

The clear-sky global horizontal irradiance of the site (pvlib, Haurwitz model: needs only
the sun's position, no data files) at the target time gives the diurnal and seasonal shape
that a PV output must follow. Features on top of :class:`GBMForecaster`'s: clear-sky GHI at
the target time, the solar elevation, and the clear-sky-scaled persistence
``y[same time yesterday] · cs(target) / cs(yesterday)``. Values are scaled by the training
maximum (not standardised), the target is the scaled output itself, and every forecast and
quantile is clipped to ``[0, capacity]`` and set to zero when the sun is down.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any, Literal

import numpy as np
import pandas as pd

from gridpilot.errors import Issue, ValidationError
from gridpilot.forecast.base import DEFAULT_QUANTILES, ForecastBatch, horizon_rows, values_at
from gridpilot.forecast.data import Repair
from gridpilot.forecast.gbm import GBMForecaster, per_target


def clearsky_ghi(
    index: pd.DatetimeIndex, latitude: float, longitude: float, altitude_m: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Clear-sky GHI in W/m² and solar elevation in degrees at ``index`` (naive = UTC)."""
    from pvlib.location import Location

    times = index if index.tz is not None else index.tz_localize("UTC")
    loc = Location(latitude, longitude, tz="UTC", altitude=altitude_m)
    solpos = loc.get_solarposition(times)
    cs = loc.get_clearsky(times, model="haurwitz", solar_position=solpos)
    return cs["ghi"].to_numpy(dtype=float), solpos["apparent_elevation"].to_numpy(dtype=float)


class PVForecaster(GBMForecaster):
    """PV output forecaster for a site at ``latitude``/``longitude`` (degrees).

    Timestamps without a time zone are taken as UTC. ``capacity`` (data units, e.g. MW)
    caps forecasts; default the training maximum. Other parameters as
    :class:`GBMForecaster`; covariates such as forecast irradiance are used when given.
    """

    name = "pv"

    def __init__(  # noqa: PLR0913
        self,
        horizon: int,
        latitude: float,
        longitude: float,
        *,
        altitude_m: float = 0.0,
        capacity: float | None = None,
        season: int | None = None,
        holidays: Iterable[date | str | pd.Timestamp] = (),
        n_estimators: int = 300,
        learning_rate: float = 0.05,
        max_rows: int = 200_000,
        objective: Literal["l2", "l1"] = "l2",
        quantile_method: Literal["conformal", "quantile"] = "conformal",
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
        params: dict[str, Any] | None = None,
        num_threads: int = 1,
        calibration_fraction: float = 0.2,
        repair: Repair = "error",
        refit: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(
            horizon,
            season=season,
            holidays=holidays,
            n_estimators=n_estimators,
            learning_rate=learning_rate,
            max_rows=max_rows,
            objective=objective,
            profile_features=False,
            quantile_method=quantile_method,
            quantiles=quantiles,
            params=params,
            num_threads=num_threads,
            calibration_fraction=calibration_fraction,
            repair=repair,
            refit=refit,
            seed=seed,
        )
        if not -90.0 <= latitude <= 90.0:
            raise ValidationError(
                issues=[Issue(self.name, "latitude", "must lie in [-90, 90]", value=latitude)]
            )
        if not -180.0 <= longitude <= 180.0:
            raise ValidationError(
                issues=[Issue(self.name, "longitude", "must lie in [-180, 180]", value=longitude)]
            )
        if capacity is not None and capacity <= 0:
            raise ValidationError(
                issues=[Issue(self.name, "capacity", "must be positive", value=capacity)]
            )
        self.latitude = float(latitude)
        self.longitude = float(longitude)
        self.altitude_m = float(altitude_m)
        self.capacity = capacity
        self._cs_cache: tuple[int, int, np.ndarray, np.ndarray] | None = None

    @property
    def min_context(self) -> int:
        """Rows of history a forecast needs: the horizon in seasons plus a week of seasons."""
        return self.season_ * int(np.ceil(self.horizon / self.season_)) + self.season_ * 7

    def _clearsky(self, index: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
        key = (len(index), int(index.asi8[0]))
        if self._cs_cache is None or self._cs_cache[:2] != key:
            ghi, elev = clearsky_ghi(index, self.latitude, self.longitude, self.altitude_m)
            self._cs_cache = (key[0], key[1], ghi, elev)
        return self._cs_cache[2], self._cs_cache[3]

    def _fit_arrays(self, data: ForecastBatch, val_start: int | None) -> None:
        # scale by capacity (or training maximum), no offset: zero stays zero
        values = data.values
        end = len(values) if val_start is None else val_start
        cap = self.capacity or float(np.nanmax(np.abs(values[:end])))
        self.mean_ = np.zeros(values.shape[1])
        self.std_ = np.full(values.shape[1], cap if cap > 0 else 1.0)
        super()._fit_arrays(data, val_start)

    def _extra_features(
        self,
        z: np.ndarray,
        index: pd.DatetimeIndex,
        cov: np.ndarray | None,
        origins: np.ndarray,
        pos: np.ndarray,
    ) -> dict[str, np.ndarray]:
        ghi, elev = self._clearsky(index)
        c = z.shape[1]
        src = self._seasonal_rows(pos, self.season_)
        cs_t, cs_s = ghi[pos], ghi[src]
        ratio = np.where(cs_s > 10.0, cs_t / np.maximum(cs_s, 10.0), 0.0)
        persist = values_at(z, src) * ratio[:, None, :]
        return {
            "cs_ghi": per_target(cs_t / 1000.0, c),
            "elevation": per_target(elev[pos], c),
            "cs_persist": persist,
        }

    def _target(self, z: np.ndarray, anchor: np.ndarray, pos: np.ndarray) -> np.ndarray:
        return values_at(z, pos).reshape(-1)

    def _from_target(self, pred: np.ndarray, anchor: np.ndarray) -> np.ndarray:
        return pred

    def _postprocess(
        self, pred: np.ndarray, index: pd.DatetimeIndex, pos: np.ndarray
    ) -> np.ndarray:
        """Forecasts ``pred`` (N, C, H), or quantiles (Q, N, C, H), in data units clipped to
        [0, capacity] and set to 0 where the target rows ``pos`` (N, H) are at night."""
        assert self.std_ is not None
        ghi, _ = self._clearsky(index)
        night = (ghi[pos] <= 0.0)[:, None, :]
        return np.where(night, 0.0, np.clip(pred, 0.0, self.std_[:, None]))

    def residual_scale(self, index: pd.DatetimeIndex, origins: np.ndarray) -> np.ndarray | None:
        """Clear-sky GHI at each target in kW/m² (at least 0.05), NaN when the sun is down:
        PV errors grow with the available sunlight, so quantiles are scaled by it."""
        ghi, _ = self._clearsky(index)
        g = ghi[horizon_rows(origins, self.horizon)] / 1000.0
        return np.where(g > 0, np.maximum(g, 0.05), np.nan)[:, None, :]

    def _bound_quantiles(self, qs: np.ndarray, batch: ForecastBatch) -> np.ndarray:
        """Quantiles clipped to [0, capacity], 0 at night."""
        return self._postprocess(qs, batch.index, horizon_rows(batch.origins, self.horizon))
