"""Price and carbon-intensity time series: documented synthetic defaults, or your own.

Defaults (see docs/flex.md): a day/night tariff-like wholesale price with a morning and an
evening peak and a midday dip when PV is high (EUR/MWh), and a carbon intensity of the
marginal supply (t CO2/MWh) that falls when PV and wind are high. Both depend only on the
time of day and the grid's PV/wind shapes, so they are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridpilot.errors import ValidationError
from gridpilot.model import Grid
from gridpilot.twin import profiles_for


@dataclass
class Signals:
    """Per-step ``price_eur_per_mwh`` and ``co2_t_per_mwh`` arrays (same length)."""

    price_eur_per_mwh: np.ndarray
    co2_t_per_mwh: np.ndarray
    source: str = "synthetic"

    def __post_init__(self) -> None:
        self.price_eur_per_mwh = np.asarray(self.price_eur_per_mwh, np.float64)
        self.co2_t_per_mwh = np.asarray(self.co2_t_per_mwh, np.float64)
        if (
            self.price_eur_per_mwh.shape != self.co2_t_per_mwh.shape
            or self.price_eur_per_mwh.ndim != 1
        ):
            raise ValidationError(
                f"signals: price {self.price_eur_per_mwh.shape} and co2 "
                f"{self.co2_t_per_mwh.shape} must be 1-D of the same length"
            )
        for name, a in (
            ("price_eur_per_mwh", self.price_eur_per_mwh),
            ("co2_t_per_mwh", self.co2_t_per_mwh),
        ):
            if not np.all(np.isfinite(a)):
                raise ValidationError(f"signals: field '{name}' has non-finite values")
        if np.any(self.co2_t_per_mwh < 0):
            raise ValidationError("signals: field 'co2_t_per_mwh' must be >= 0")

    def window(self, start: int, steps: int) -> Signals:
        """The slice ``start .. start + steps`` (an error if the series is too short)."""
        if start + steps > self.price_eur_per_mwh.size:
            raise ValidationError(
                f"signals: have {self.price_eur_per_mwh.size} steps, asked for {start}+{steps}"
            )
        sl = slice(start, start + steps)
        return Signals(self.price_eur_per_mwh[sl], self.co2_t_per_mwh[sl], self.source)


def default_signals(grid: Grid, steps: int, step_h: float = 0.25) -> Signals:
    """Synthetic price (EUR/MWh) and carbon intensity (t/MWh) for the grid's first ``steps`` steps.

    price = 60 + 45 * evening peak + 25 * morning peak - 45 * pv shape + 10 * night-winter term;
    co2 = 0.45 - 0.25 * pv - 0.15 * wind (clipped at 0.05), where pv/wind are the mean
    normalised shapes of the grid's generators (the default shapes if it has none).
    """
    prof, cols = profiles_for(grid, steps)
    vals = prof.values[:steps]
    hour = (np.arange(steps) * step_h) % 24.0
    if prof.index.size >= steps:
        sec = (prof.index[:steps] - prof.index[:steps].astype("datetime64[D]")).astype(np.int64)
        hour = sec / 3600.0
    gcols = cols["gen_p"]
    gk = grid.generator["kind"]
    pv_cols = np.unique(gcols[(gcols >= 0) & (gk != 1)])
    wind_cols = np.unique(gcols[(gcols >= 0) & (gk == 1)])

    def shape(c: np.ndarray) -> np.ndarray:
        if c.size == 0:
            return np.zeros(steps)
        s = vals[:, c].mean(axis=1)
        return s / max(float(np.max(s)), 1e-9)

    pv = shape(pv_cols)
    if pv_cols.size == 0:
        pv = np.clip(np.sin(np.pi * (hour - 6.0) / 14.0), 0, None)
    wind = shape(wind_cols)
    evening = np.exp(-0.5 * ((hour - 19.0) / 1.8) ** 2)
    morning = np.exp(-0.5 * ((hour - 8.0) / 1.2) ** 2)
    price = (
        60.0 + 45.0 * evening + 25.0 * morning - 45.0 * pv + 5.0 * np.cos(2 * np.pi * hour / 24.0)
    )
    co2 = np.clip(0.45 - 0.25 * pv - 0.15 * wind + 0.05 * evening, 0.05, None)
    return Signals(price, co2, "synthetic default (see docs/flex.md)")
