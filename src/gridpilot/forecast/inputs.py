"""A typed forecast input: the observed target history plus covariates that run ahead.

:class:`ForecastInputDataset` (cf. OpenSTEF's ``ForecastInputDataset``) is built from one
time-indexed frame holding the target column(s) and covariate columns (weather forecasts,
calendars …). The target is observed up to its last non-missing value; rows after that are
the forecast period, where only covariates have values, as a weather forecast issued with
the data would. Checks, each a :class:`~gridpilot.errors.ValidationError` naming the column
and the timestamp:

- duplicate timestamps, off-grid timestamps, gaps and NaN in the target history (as
  :func:`~gridpilot.forecast.data.prepare_history`, with the same ``repair`` rule);
- a covariate that is not numeric (the value and its timestamp), all NaN, or on another
  time step than the target (e.g. hourly values in a 15-minute file);
- a covariate missing inside the history (unless ``repair="interpolate"`` fills a short
  gap) or, for a forecast, in the forecast period (:meth:`future_covariates`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gridpilot.errors import Issue, ValidationError
from gridpilot.forecast.data import (
    History,
    Repair,
    TimeUnit,
    _not_numeric,
    _to_frame,
    infer_step,
    prepare_history,
)


@dataclass(frozen=True)
class ForecastInputDataset:
    """Target history and covariates on the target's time grid.

    ``history`` is the checked target (T, C); ``covariates`` a frame of float covariates
    indexed from the first history row to the last row with covariate values (T + F rows,
    F ≥ 0 future rows), or ``None``. Timestamps are tz-naive UTC.
    """

    history: History
    covariates: pd.DataFrame | None = None

    @property
    def covariate_names(self) -> tuple[str, ...]:
        """Covariate column names (empty without covariates)."""
        return () if self.covariates is None else tuple(str(c) for c in self.covariates.columns)

    @property
    def target(self) -> tuple[str, ...]:
        """Target column names."""
        return self.history.columns

    def until(self, end: pd.Timestamp) -> ForecastInputDataset:
        """The dataset as it was known with the target observed before ``end`` (covariates
        kept: they are forecasts for the period after)."""
        n = int(self.history.index.searchsorted(pd.Timestamp(end)))
        return ForecastInputDataset(self.history.slice(0, n), self.covariates)

    def history_covariates(self) -> pd.DataFrame | None:
        """Covariates on the history's rows only (None without covariates)."""
        if self.covariates is None:
            return None
        return self.covariates.loc[self.covariates.index <= self.history.index[-1]]

    def future_covariates(self, horizon: int) -> pd.DataFrame | None:
        """Covariates on the history and the next ``horizon`` steps (None without
        covariates); raises naming the column and the first missing time of the forecast
        period when the file does not reach that far or holds NaN there."""
        if self.covariates is None:
            return None
        fut = self.history.future_index(int(horizon))
        sub = self.covariates.reindex(fut)
        bad = ~np.isfinite(sub.to_numpy(dtype=float))
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise ValidationError(
                issues=[
                    Issue(
                        "covariates",
                        str(sub.columns[j]),
                        f"has no value for the forecast period at {fut[i]} (the target ends "
                        f"at {self.history.index[-1]}, the forecast runs to {fut[-1]}): add "
                        "the forecast rows (e.g. the weather forecast) for the whole horizon",
                        value=str(fut[i]),
                    )
                ]
            )
        return self.covariates.loc[self.covariates.index <= fut[-1]]

    @classmethod
    def from_parts(
        cls,
        history: pd.DataFrame | pd.Series | History,
        covariates: pd.DataFrame | None,
        *,
        repair: Repair = "error",
        max_gap_steps: int = 3,
    ) -> ForecastInputDataset:
        """A dataset from a target history and a separate covariate frame (e.g. the loop's
        load history and a weather service's forecast, on the same time step; the covariate
        rows after the history are the forecast). Checked like :meth:`from_frame`."""
        h = prepare_history(history, repair=repair, max_gap_steps=max_gap_steps)
        if covariates is None:
            return cls(h, None)
        return cls(h, covariate_frame(covariates, h, repair, max_gap_steps))

    @classmethod
    def from_frame(  # noqa: PLR0913
        cls,
        frame: pd.DataFrame,
        target: str | Sequence[str],
        covariates: Sequence[str] | str | None = None,
        *,
        repair: Repair = "error",
        max_gap_steps: int = 3,
        time_unit: TimeUnit = "auto",
        what: str = "data",
    ) -> ForecastInputDataset:
        """Split ``frame`` into the target history and covariates (``"all"``: every other
        column). Returns the checked dataset; raises :class:`ValidationError` (see the
        module docstring)."""
        df = _to_frame(frame, what, time_unit)
        targets = [target] if isinstance(target, str) else list(target)
        _check_columns(df, targets, "target", what)
        if covariates is None:
            names: list[str] = []
        elif isinstance(covariates, str) and covariates.strip().lower() == "all":
            names = [str(c) for c in df.columns if c not in targets]
        else:
            names = [covariates] if isinstance(covariates, str) else list(covariates)
            _check_columns(df, names, "covariates", what)
        _check_duplicates(df, what)
        df = df.sort_index(kind="stable")
        tdf = df[targets]
        issues = [i for c in tdf.columns if (i := _not_numeric(tdf[c], what)) is not None]
        if issues:
            raise ValidationError(issues=issues)
        observed = tdf.apply(pd.to_numeric).notna().any(axis=1).to_numpy()
        if not observed.any():
            raise ValidationError(
                issues=[Issue(what, targets[0], "has no observed value", value=None)]
            )
        last = df.index[int(np.flatnonzero(observed)[-1])]
        first = df.index[int(np.argmax(observed))]
        hist = prepare_history(
            tdf.loc[first:last],
            repair=repair,
            max_gap_steps=max_gap_steps,
            what=what,
        )
        if not names:
            return cls(hist, None)
        cov = covariate_frame(df[names].loc[first:], hist, repair, max_gap_steps, what)
        return cls(hist, cov)


def _check_columns(df: pd.DataFrame, names: Sequence[str], role: str, what: str) -> None:
    missing = [c for c in names if c not in df.columns]
    if missing or not names:
        raise ValidationError(
            issues=[
                Issue(
                    what,
                    role,
                    f"has no column {c!r}; columns: {list(map(str, df.columns))}",
                    value=c,
                )
                for c in (missing or ["(none)"])
            ]
        )


def _check_duplicates(df: pd.DataFrame, what: str) -> None:
    dup = df.index.duplicated(keep=False)
    if dup.any():
        t = df.index[dup][0]
        raise ValidationError(
            issues=[
                Issue(
                    what,
                    "index",
                    f"has {int(dup.sum())} rows on duplicate timestamps (first: {t}); "
                    "remove or aggregate them",
                    value=str(t),
                )
            ]
        )


def covariate_frame(
    cov: pd.DataFrame,
    history: History,
    repair: Repair = "error",
    max_gap_steps: int = 3,
    what: str = "covariates",
) -> pd.DataFrame:
    """Covariates checked against ``history``: numeric, not all NaN, on the history's time
    step, complete over the history (short gaps filled with ``repair="interpolate"``).
    Returns float columns indexed from the history's first row to the covariates' last row
    with every value present (the future rows: up to the first missing one)."""
    cov = _to_frame(cov, what)
    _check_duplicates(cov, what)
    cov = cov.sort_index(kind="stable")
    issues = [i for c in cov.columns if (i := _not_numeric(cov[c], what)) is not None]
    if issues:
        raise ValidationError(issues=issues)
    cov = cov.apply(pd.to_numeric).astype(float)
    cov = cov.where(np.isfinite(cov))
    for c in cov.columns:
        col = cov[c].dropna()
        if col.empty:
            raise ValidationError(
                issues=[Issue(what, str(c), "is all NaN (no value at any time)", value=None)]
            )
        if len(col) >= 2:
            step = infer_step(pd.DatetimeIndex(col.index), what)
            if step != history.freq:
                raise ValidationError(
                    issues=[
                        Issue(
                            what,
                            str(c),
                            f"is on a {step} time step, the target on {history.freq} "
                            f"(first value at {col.index[0]}); resample it to {history.freq}",
                            value=str(col.index[0]),
                        )
                    ]
                )
        off = (col.index.asi8 - history.index.asi8[0]) % history.freq.value
        if (off != 0).any():
            t = col.index[int(np.argmax(off != 0))]
            raise ValidationError(
                issues=[
                    Issue(
                        what,
                        str(c),
                        f"has a value at {t}, off the target's {history.freq} grid "
                        f"(which starts at {history.index[0]}); resample it to that grid",
                        value=str(t),
                    )
                ]
            )
    last = min(cov[c].last_valid_index() for c in cov.columns)
    grid = pd.date_range(history.index[0], max(last, history.index[-1]), freq=history.freq)
    on_grid = cov.reindex(grid)
    past = on_grid.loc[: history.index[-1]]
    filled = prepare_history(
        past, repair=repair, max_gap_steps=max_gap_steps, freq=history.freq, what=what
    ).df()
    future = on_grid.loc[on_grid.index > history.index[-1]]
    return pd.concat([filled, future]).astype(float)
