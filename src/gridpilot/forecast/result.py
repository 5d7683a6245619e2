"""The result of one forecast: point values and quantiles for every series and step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gridpilot.errors import Issue, ValidationError


@dataclass(frozen=True)
class ForecastResult:
    """Forecast for ``len(index)`` future steps of ``len(columns)`` series.

    ``point`` is (H, C) in the history's own units (e.g. MW), ``quantiles`` maps a level
    such as 0.1 to an (H, C) array (non-decreasing across levels). ``model`` names the
    forecaster that produced it.
    """

    index: pd.DatetimeIndex
    columns: tuple[str, ...]
    point: np.ndarray
    quantiles: dict[float, np.ndarray] = field(default_factory=dict)
    model: str = ""

    @property
    def horizon(self) -> int:
        """Number of forecast steps."""
        return len(self.index)

    def point_df(self) -> pd.DataFrame:
        """Point forecast as a DataFrame (time × series)."""
        return pd.DataFrame(self.point, index=self.index, columns=list(self.columns))

    def quantile(self, q: float) -> np.ndarray:
        """The (H, C) array of quantile ``q``; an error lists the levels available."""
        for k, v in self.quantiles.items():
            if abs(k - q) < 1e-9:
                return v
        raise ValidationError(
            issues=[
                Issue(
                    "forecast",
                    "quantile",
                    f"not computed; available: {sorted(self.quantiles)}",
                    value=q,
                )
            ]
        )

    def quantile_df(self, q: float) -> pd.DataFrame:
        """Quantile ``q`` as a DataFrame (time × series)."""
        return pd.DataFrame(self.quantile(q), index=self.index, columns=list(self.columns))

    def series(self, name: str) -> pd.DataFrame:
        """One series: columns ``point`` and ``q0.1``, ``q0.5`` … indexed by time."""
        if name not in self.columns:
            raise ValidationError(
                issues=[Issue("forecast", "series", f"not in {list(self.columns)}", value=name)]
            )
        j = self.columns.index(name)
        data = {"point": self.point[:, j]}
        for q in sorted(self.quantiles):
            data[f"q{q:g}"] = self.quantiles[q][:, j]
        return pd.DataFrame(data, index=self.index)

    def matrix(
        self, order: Sequence[str] | None = None, quantile: float | None = None
    ) -> np.ndarray:
        """(H, n) array of the point forecast (or of ``quantile``) with columns in ``order``.

        This is the shape :class:`gridpilot.twin.Injections` takes for ``load_p_mw`` or
        ``gen_p_mw`` when the series are named after the grid's loads or generators in table
        order. Unknown names raise a :class:`ValidationError` listing them.
        """
        arr = self.point if quantile is None else self.quantile(quantile)
        if order is None:
            return arr.copy()
        pos = {c: i for i, c in enumerate(self.columns)}
        missing = [str(o) for o in order if str(o) not in pos]
        if missing:
            raise ValidationError(
                issues=[
                    Issue(
                        "forecast",
                        "series",
                        "has no forecast",
                        ids=tuple(missing),
                        value=missing[0],
                    )
                ]
            )
        return arr[:, [pos[str(o)] for o in order]].copy()

    def to_long(self) -> pd.DataFrame:
        """Long table with columns ``time``, ``series``, ``kind`` (point or q0.1 …), ``value``."""
        frames = []
        for kind, arr in [("point", self.point)] + [
            (f"q{q:g}", self.quantiles[q]) for q in sorted(self.quantiles)
        ]:
            df = pd.DataFrame(arr, index=self.index, columns=list(self.columns))
            df = (
                df.rename_axis("time")
                .reset_index()
                .melt(id_vars="time", var_name="series", value_name="value")
            )
            df["kind"] = kind
            frames.append(df)
        return pd.concat(frames, ignore_index=True)[["time", "series", "kind", "value"]]
