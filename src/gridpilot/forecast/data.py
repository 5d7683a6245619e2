"""Validated, regular time series: the one input format every forecaster accepts.

A history is a time-indexed :class:`pandas.DataFrame` (or Series): a ``DatetimeIndex`` or a
time column named ``date``, ``time``, ``timestamp`` or ``datetime``, and one numeric column per
series. :func:`prepare_history` checks it and returns a :class:`History` (numpy values plus a
regular index). What it refuses, with a :class:`~gridpilot.errors.ValidationError` naming the
column and the timestamp:

- duplicate timestamps (never guessed which row is right);
- NaN / inf values and gaps in the time grid, unless ``repair="interpolate"``: then the index
  is re-gridded to the inferred step and runs of at most ``max_gap_steps`` missing values are
  linearly interpolated (longer runs are still an error);
- timestamps off the inferred regular grid, non-numeric columns, an empty frame.

Rows out of time order are sorted (a documented repair: order carries no information).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from gridpilot.errors import Issue, ValidationError

TIME_COLUMNS = ("date", "time", "timestamp", "datetime")
Repair = Literal["error", "interpolate"]
REPAIRS: tuple[str, ...] = ("error", "interpolate")
TimeUnit = Literal["auto", "s", "ms", "us", "ns"]
TIME_UNITS: tuple[str, ...] = ("auto", "s", "ms", "us", "ns")
REPAIR_HINT = "repair='interpolate' (CLI: --repair interpolate)"


@dataclass(frozen=True)
class History:
    """A checked, regular multi-series history.

    ``values`` is a float64 array (T, C) in the data's own units, ``index`` the T timestamps
    (regular, step ``freq``), ``columns`` the C series names.
    """

    index: pd.DatetimeIndex
    values: np.ndarray
    columns: tuple[str, ...]
    freq: pd.Timedelta

    def __len__(self) -> int:
        return len(self.index)

    @property
    def steps_per_day(self) -> int:
        """Number of steps in 24 h (at least 1)."""
        return max(1, round(pd.Timedelta(days=1) / self.freq))

    def future_index(self, horizon: int) -> pd.DatetimeIndex:
        """The ``horizon`` timestamps that follow the last one."""
        return pd.date_range(self.index[-1] + self.freq, periods=horizon, freq=self.freq)

    def slice(self, start: int, stop: int) -> History:
        """Rows [start, stop) as a new History (views, no copies)."""
        return History(self.index[start:stop], self.values[start:stop], self.columns, self.freq)

    def df(self) -> pd.DataFrame:
        """The history as a DataFrame indexed by time."""
        return pd.DataFrame(self.values, index=self.index, columns=list(self.columns))


def _to_frame(
    history: pd.DataFrame | pd.Series, what: str, time_unit: TimeUnit = "auto"
) -> pd.DataFrame:
    if isinstance(history, pd.Series):
        history = history.to_frame(name=str(history.name or "value"))
    if not isinstance(history, pd.DataFrame):
        raise ValidationError(
            f"{what} must be a pandas DataFrame or Series, got {type(history).__name__}"
        )
    df = history
    if not isinstance(df.index, pd.DatetimeIndex):
        cols = {str(c).lower(): c for c in df.columns}
        tcol = next((cols[c] for c in TIME_COLUMNS if c in cols), None)
        if tcol is None:
            raise ValidationError(
                issues=[
                    Issue(
                        what,
                        "index",
                        "needs a DatetimeIndex or a time column named one of "
                        f"{', '.join(TIME_COLUMNS)}",
                        value=type(df.index).__name__,
                    )
                ]
            )
        idx = parse_times(df[tcol], what, str(tcol), time_unit)
        df = df.drop(columns=[tcol]).set_index(pd.DatetimeIndex(idx, name=str(tcol)))
    if df.index.tz is not None:
        df = df.tz_convert("UTC").tz_localize(None)
    return df


def epoch_unit(values: np.ndarray) -> str:
    """The unit of integer/float epoch timestamps judged by magnitude: ``"s"``, ``"ms"``,
    ``"us"`` or ``"ns"`` (median |value| below 1e11, 1e14, 1e17 or above). Right for dates
    from 1973-03 to 5138; earlier dates in ms/us/ns would be read as a finer unit's seconds:
    pass the unit explicitly for those."""
    v = np.abs(np.asarray(values, np.float64))
    v = v[np.isfinite(v)]
    med = float(np.median(v)) if v.size else 0.0
    for unit, bound in (("s", 1e11), ("ms", 1e14), ("us", 1e17)):
        if med < bound:
            return unit
    return "ns"


def parse_times(
    col: pd.Series, what: str, name: str, time_unit: TimeUnit = "auto"
) -> pd.DatetimeIndex:
    """A time column as a tz-naive UTC :class:`~pandas.DatetimeIndex`.

    Strings are parsed with ``utc=True``: offsets may differ row to row (e.g. ``+02:00`` in
    summer, ``+01:00`` in winter) and every time is converted to UTC; strings without an offset
    are taken as UTC. Numbers are epoch times in ``time_unit`` (``"auto"``: by magnitude, see
    :func:`epoch_unit`). Unparseable values raise a ValidationError naming the column, the
    value and its row.
    """
    if time_unit not in TIME_UNITS:
        raise ValidationError(
            issues=[Issue(what, "time_unit", f"must be one of {TIME_UNITS}", value=time_unit)]
        )
    numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
    unit = None
    if numeric:
        unit = epoch_unit(col.to_numpy()) if time_unit == "auto" else time_unit
    try:
        if numeric:
            idx = pd.to_datetime(col, unit=unit, utc=True, errors="raise")
        else:
            idx = pd.to_datetime(col, utc=True, errors="raise")
    except (ValueError, TypeError, OverflowError) as exc:
        bad = pd.to_datetime(col, utc=True, unit=unit, errors="coerce").isna() & col.notna()
        row = int(np.argmax(bad.to_numpy())) if bad.any() else None
        where = f" (row {row}: {col.iloc[row]!r})" if row is not None else ""
        raise ValidationError(
            issues=[
                Issue(
                    what,
                    name,
                    f"cannot parse as timestamps{where}: {exc}",
                    value=None if row is None else str(col.iloc[row])[:80],
                )
            ]
        ) from None
    if idx.isna().any():
        row = int(np.argmax(idx.isna().to_numpy()))
        raise ValidationError(
            issues=[Issue(what, name, f"has an empty timestamp at row {row}", value=None)]
        )
    return pd.DatetimeIndex(idx).tz_convert("UTC").tz_localize(None)


def infer_step(index: pd.DatetimeIndex, what: str = "history") -> pd.Timedelta:
    """The regular time step of ``index``: the most common positive difference."""
    if len(index) < 2:
        raise ValidationError(
            issues=[Issue(what, "index", "needs at least 2 timestamps", value=len(index))]
        )
    d = np.diff(index.as_unit("ns").asi8)
    vals, counts = np.unique(d[d > 0], return_counts=True)
    if len(vals) == 0:
        raise ValidationError(issues=[Issue(what, "index", "all timestamps are equal")])
    return pd.Timedelta(int(vals[np.argmax(counts)]), unit="ns")


def prepare_history(  # noqa: PLR0913
    history: pd.DataFrame | pd.Series | History,
    *,
    columns: Sequence[str] | None = None,
    repair: Repair = "error",
    max_gap_steps: int = 3,
    freq: pd.Timedelta | str | None = None,
    what: str = "history",
    time_unit: TimeUnit = "auto",
) -> History:
    """Check a time-indexed frame and return it as a regular :class:`History`.

    ``columns`` selects (and orders) series; by default every column is used. ``repair``
    chooses between refusing NaN/gaps (``"error"``, the default) and interpolating runs of at
    most ``max_gap_steps`` missing steps (``"interpolate"``). ``freq`` forces the step;
    otherwise the most common step is used. ``time_unit`` is the unit of a numeric time column
    (epoch; ``"auto"``: by magnitude, :func:`epoch_unit`). Returns values in the input's own
    units.
    """
    if isinstance(history, History):
        return history
    if repair == "none":
        repair = "error"
    if repair not in REPAIRS:
        raise ValidationError(
            issues=[Issue(what, "repair", "must be 'error' or 'interpolate'", value=repair)]
        )
    df = _numeric_series(_to_frame(history, what, time_unit), columns, what)
    df = _sorted_unique(df, what)
    step = pd.Timedelta(freq) if freq is not None else infer_step(df.index, what)
    _check_on_grid(df.index, step, what)
    full = pd.date_range(df.index[0], df.index[-1], freq=step)
    values = _regridded(df, full, step, repair, what)
    nan = np.isnan(values)
    if nan.any():
        if repair == "error":
            raise ValidationError(issues=_nan_issues(nan, df.columns, full, what))
        values = _interpolate(values, nan, max_gap_steps, full, df.columns, what)
    cols = tuple(str(c) for c in df.columns)
    return History(full, values, cols, step)


def _numeric_series(df: pd.DataFrame, columns: Sequence[str] | None, what: str) -> pd.DataFrame:
    """The selected columns (all by default), checked non-empty and numeric, as numbers."""
    if len(df) == 0 or df.shape[1] == 0:
        raise ValidationError(
            issues=[Issue(what, "rows", "is empty (no rows or no series)", value=df.shape)]
        )
    if columns is not None:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ValidationError(
                issues=[Issue(what, "columns", f"has no column {c!r}", value=c) for c in missing]
            )
        df = df[list(columns)]
    issues = [iss for c in df.columns if (iss := _not_numeric(df[c], what)) is not None]
    if issues:
        raise ValidationError(issues=issues)
    obj = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if obj:  # object columns holding only numbers (checked above)
        df = df.copy()
        for c in obj:
            df[c] = pd.to_numeric(df[c])
    return df


def _sorted_unique(df: pd.DataFrame, what: str) -> pd.DataFrame:
    """``df`` on a nanosecond index in time order; duplicate timestamps are an error."""
    if isinstance(df.index, pd.DatetimeIndex) and df.index.unit != "ns":
        df = df.set_axis(df.index.as_unit("ns"), axis=0)  # steps below count nanoseconds
    if not df.index.is_monotonic_increasing:
        df = df.sort_index(kind="stable")
    dup = df.index.duplicated(keep=False)
    if dup.any():
        first = df.index[dup][:5]
        raise ValidationError(
            issues=[
                Issue(
                    what,
                    "index",
                    f"has {int(dup.sum())} rows on duplicate timestamps "
                    f"(first: {', '.join(str(t) for t in first)}); remove or aggregate them",
                    value=str(first[0]),
                )
            ]
        )
    return df


def _check_on_grid(index: pd.DatetimeIndex, step: pd.Timedelta, what: str) -> None:
    """Every timestamp on the regular ``step`` grid from the first one."""
    offsets = (index.asi8 - index.asi8[0]) % step.value
    if (offsets != 0).any():
        bad = index[offsets != 0][:3]
        raise ValidationError(
            issues=[
                Issue(
                    what,
                    "index",
                    f"timestamps off the regular {step} grid (first: "
                    f"{', '.join(str(t) for t in bad)}); resample to {step} first",
                    value=str(bad[0]),
                )
            ]
        )


def _regridded(
    df: pd.DataFrame, full: pd.DatetimeIndex, step: pd.Timedelta, repair: str, what: str
) -> np.ndarray:
    """The values (T, C) on the full grid, NaN for non-finite values and missing steps
    (missing steps are an error with ``repair="error"``)."""
    values = df.to_numpy(dtype=np.float64, copy=True)
    values[~np.isfinite(values)] = np.nan
    if len(full) == len(df):
        return values
    if repair == "error":
        missing_t = full.difference(df.index)
        raise ValidationError(
            issues=[
                Issue(
                    what,
                    "index",
                    f"has {len(missing_t)} missing timestamps (first: {missing_t[0]}); "
                    f"fill them or pass {REPAIR_HINT}",
                    value=str(missing_t[0]),
                )
            ]
        )
    pos = ((df.index.asi8 - full.asi8[0]) // step.value).astype(np.int64)
    regridded = np.full((len(full), values.shape[1]), np.nan)
    regridded[pos] = values
    return regridded


def _nan_issues(
    nan: np.ndarray, columns: pd.Index, full: pd.DatetimeIndex, what: str
) -> list[Issue]:
    """One issue per column holding NaN/inf: how many and the first time."""
    issues = []
    for j in np.flatnonzero(nan.any(axis=0)):
        i = int(np.argmax(nan[:, j]))
        issues.append(
            Issue(
                what,
                str(columns[j]),
                f"has {int(nan[:, j].sum())} NaN/inf values (first at {full[i]}); "
                f"fill them or pass {REPAIR_HINT}",
                value=float("nan"),
            )
        )
    return issues


def _not_numeric(col: pd.Series, what: str) -> Issue | None:
    """An Issue naming the column, the first non-numeric value and its timestamp (None when
    the column is numeric)."""
    if pd.api.types.is_bool_dtype(col):
        return Issue(what, str(col.name), "is not numeric (boolean)", value=str(col.dtype))
    if pd.api.types.is_numeric_dtype(col):
        return None
    coerced = pd.to_numeric(col, errors="coerce")
    bad = (coerced.isna() & col.notna()).to_numpy()
    if not bad.any():  # e.g. an object column of numbers: accepted as numbers
        return None
    i = int(np.argmax(bad))
    return Issue(
        what,
        str(col.name),
        f"is not numeric: {col.iloc[i]!r} at {col.index[i]} "
        f"({int(bad.sum())} non-numeric value(s) in all)",
        value=str(col.iloc[i])[:80],
    )


def _interpolate(
    values: np.ndarray,
    nan: np.ndarray,
    max_gap: int,
    index: pd.DatetimeIndex,
    names: pd.Index,
    what: str,
) -> np.ndarray:
    """Linear interpolation of NaN runs no longer than ``max_gap``; longer runs raise."""
    issues: list[Issue] = []
    out = values.copy()
    t = np.arange(len(values))
    for j in np.flatnonzero(nan.any(axis=0)):
        m = nan[:, j]
        # run lengths of consecutive NaN
        edges = np.diff(np.concatenate([[0], m.astype(np.int8), [0]]))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        lengths = stops - starts
        bad = (lengths > max_gap) | (starts == 0) | (stops == len(m))
        if bad.any():
            k = int(np.argmax(bad))
            issues.append(
                Issue(
                    what,
                    str(names[j]),
                    f"has a run of {int(lengths[k])} missing values from {index[starts[k]]} "
                    f"that cannot be interpolated (longer than max_gap_steps={max_gap} "
                    "or at an end of the history)",
                    value=int(lengths[k]),
                )
            )
            continue
        out[m, j] = np.interp(t[m], t[~m], values[~m, j])
    if issues:
        raise ValidationError(issues=issues)
    return out


def align_covariates(
    covariates: pd.DataFrame | pd.Series | None,
    index: pd.DatetimeIndex,
    *,
    what: str = "covariates",
) -> np.ndarray | None:
    """Covariate values (len(index), K) on exactly ``index``; an error names any missing time."""
    if covariates is None:
        return None
    df = _to_frame(covariates, what)
    if df.index.duplicated().any():
        raise ValidationError(
            issues=[Issue(what, "index", "has duplicate timestamps", value=str(df.index[0]))]
        )
    for c in df.columns:
        if not pd.api.types.is_numeric_dtype(df[c]):
            raise ValidationError(
                issues=[Issue(what, str(c), "is not numeric", value=str(df[c].dtype))]
            )
    sub = df.reindex(index)
    vals = sub.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(vals)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValidationError(
            issues=[
                Issue(
                    what,
                    str(df.columns[j]),
                    f"has no finite value at {index[i]} ({int(bad.sum())} missing in all); "
                    "covariates must cover the history and, for prediction, the horizon",
                    value=str(index[i]),
                )
            ]
        )
    return vals
