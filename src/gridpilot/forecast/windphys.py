"""Wind physics: a turbine power curve from hub-height wind speed.

:class:`PowerCurve` is the generic shape of a pitch-regulated turbine, per unit of its rated
power: zero below the cut-in speed, growing with the cube of the speed up to the rated
speed, one up to the cut-out speed, zero above. :func:`wind_per_unit` applies it to a wind
speed series (optionally measured at another height: log-law shear). Used by
:class:`~gridpilot.forecast.netload.NetLoadForecaster` (load net of local wind) and
:class:`~gridpilot.forecast.renewables.WindWeatherForecaster`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PowerCurve:
    """Generic power curve, speeds in m/s; output per unit of rated power."""

    cut_in_ms: float = 3.0
    rated_ms: float = 12.0
    cut_out_ms: float = 25.0

    def __call__(self, speed_ms: np.ndarray) -> np.ndarray:
        """Output per unit (same shape as ``speed_ms``, 0 … 1); NaN speeds give 0."""
        v = np.nan_to_num(np.asarray(speed_ms, dtype=float), nan=0.0)
        lo, hi = self.cut_in_ms**3, self.rated_ms**3
        p = np.clip((v**3 - lo) / (hi - lo), 0.0, 1.0)
        p[(v < self.cut_in_ms) | (v >= self.cut_out_ms)] = 0.0
        return p


def hub_speed(
    speed_ms: np.ndarray, height_m: float, hub_m: float, z0_m: float = 0.05
) -> np.ndarray:
    """Wind speed at ``hub_m`` from a speed at ``height_m`` (log law, roughness ``z0_m``)."""
    if height_m == hub_m:
        return np.asarray(speed_ms, dtype=float)
    return np.asarray(speed_ms, float) * np.log(hub_m / z0_m) / np.log(height_m / z0_m)


def wind_per_unit(
    speed_ms: np.ndarray,
    curve: PowerCurve | None = None,
    *,
    height_m: float = 100.0,
    hub_m: float = 100.0,
) -> np.ndarray:
    """Turbine output per unit of rated power (T,) from wind speeds in m/s measured at
    ``height_m`` (shifted to ``hub_m`` by the log law)."""
    return (curve or PowerCurve())(hub_speed(speed_ms, height_m, hub_m))
