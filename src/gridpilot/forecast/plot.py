"""Plots of forecasts against actuals: PNG (matplotlib) or a self-contained HTML page (plotly)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from gridpilot.errors import Issue, ValidationError
from gridpilot.forecast.result import ForecastResult

if TYPE_CHECKING:
    from gridpilot.forecast.backtest import BacktestResult


def _stitch(res: BacktestResult, j: int, max_days: int) -> pd.DataFrame:
    """Non-overlapping forecasts (one per horizon) stitched into one series for column j."""
    hzn = res.horizon
    start = res.origins[0]
    steps = np.asarray((res.origins - start) / res.freq, dtype=np.int64)
    pick = np.flatnonzero(steps % hzn == 0)
    limit = int(pd.Timedelta(days=max_days) / res.freq)
    pick = pick[steps[pick] < max(limit, hzn)]
    if len(pick) == 0:
        pick = np.array([0])
    times, act, pt, lo, hi = [], [], [], [], []
    for i in pick:
        t = pd.date_range(res.origins[i], periods=hzn, freq=res.freq)
        times.append(t)
        act.append(res.actual[i, j])
        pt.append(res.point[i, j])
        if 0.1 in res.quantiles and 0.9 in res.quantiles:
            lo.append(res.quantiles[0.1][i, j])
            hi.append(res.quantiles[0.9][i, j])
    idx = times[0].append(times[1:]) if len(times) > 1 else times[0]
    df = pd.DataFrame({"actual": np.concatenate(act), "forecast": np.concatenate(pt)}, index=idx)
    if lo:
        df["p10"] = np.concatenate(lo)
        df["p90"] = np.concatenate(hi)
    if res.baseline_point is not None:
        df["seasonal_naive"] = np.concatenate([res.baseline_point[i, j] for i in pick])
    return df


def _write(df: pd.DataFrame, title: str, path: Path) -> Path:
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".png":
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(12, 4))
        if "p10" in df:
            ax.fill_between(df.index, df["p10"], df["p90"], alpha=0.25, label="P10–P90")
        ax.plot(df.index, df["actual"], color="black", lw=1.2, label="actual")
        ax.plot(df.index, df["forecast"], lw=1.2, label="forecast")
        if "seasonal_naive" in df:
            ax.plot(df.index, df["seasonal_naive"], lw=0.8, ls="--", label="seasonal naive")
        ax.set_title(title)
        ax.legend(loc="upper right")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
    elif suffix in (".html", ".htm"):
        import plotly.graph_objects as go

        fig = go.Figure()
        if "p10" in df:
            fig.add_trace(go.Scatter(x=df.index, y=df["p90"], line={"width": 0}, showlegend=False))
            fig.add_trace(
                go.Scatter(
                    x=df.index, y=df["p10"], fill="tonexty", line={"width": 0}, name="P10–P90"
                )
            )
        fig.add_trace(
            go.Scatter(x=df.index, y=df["actual"], name="actual", line={"color": "black"})
        )
        fig.add_trace(go.Scatter(x=df.index, y=df["forecast"], name="forecast"))
        if "seasonal_naive" in df:
            fig.add_trace(
                go.Scatter(
                    x=df.index, y=df["seasonal_naive"], name="seasonal naive", line={"dash": "dash"}
                )
            )
        fig.update_layout(title=title)
        fig.write_html(path, include_plotlyjs=True)
    else:
        raise ValidationError(
            issues=[Issue("plot", "path", "must end in .png or .html", value=str(path))]
        )
    return path


def plot_backtest(
    res: BacktestResult, path: str | Path, series: str | None = None, max_days: int = 14
) -> Path:
    """Write a backtest's stitched forecasts vs actuals for one series; returns the path."""
    name = series or res.columns[0]
    if name not in res.columns:
        raise ValidationError(
            issues=[Issue("plot", "series", f"not in {list(res.columns)}", value=name)]
        )
    df = _stitch(res, res.columns.index(name), max_days)
    return _write(df, f"{res.model}: {name}, horizon {res.horizon} (backtest)", Path(path))


def plot_forecast(
    result: ForecastResult,
    path: str | Path,
    series: str | None = None,
    history: pd.DataFrame | None = None,
) -> Path:
    """Write one forecast (point, P10–P90 band) after the recent ``history``; returns the path."""
    name = series or result.columns[0]
    df = result.series(name).rename(columns={"point": "forecast", "q0.1": "p10", "q0.9": "p90"})
    df["actual"] = np.nan
    if history is not None and name in history.columns:
        past = history[name].iloc[-3 * max(result.horizon, 24) :]
        df = pd.concat([pd.DataFrame({"actual": past}), df])
    return _write(df, f"{result.model}: {name} forecast", Path(path))


def plot_reliability(res: BacktestResult, path: str | Path) -> Path:
    """Reliability diagram of a backtest's quantiles (PNG or HTML): observed share of
    actuals at or below each quantile forecast against its nominal level, with the
    pinball loss of each level in the labels. Returns the path written."""
    from gridpilot.forecast.metrics import pinball_by_quantile, reliability

    path = Path(path)
    if not res.quantiles:
        raise ValidationError(issues=[Issue("plot", "quantiles", "the backtest has none")])
    rel = reliability(res.actual, res.quantiles)
    pin = pinball_by_quantile(res.actual, res.quantiles)
    levels = np.array(sorted(rel))
    obs = np.array([rel[q] for q in levels])
    path.parent.mkdir(parents=True, exist_ok=True)
    title = f"{res.model}: reliability of the quantiles ({len(res.origins)} origins)"
    if path.suffix.lower() == ".png":
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="ideal")
        ax.plot(levels, obs, marker="o", label=res.model)
        for q, o in zip(levels, obs, strict=True):
            ax.annotate(
                f"pinball {pin[q]:.3g}",
                (q, o),
                fontsize=7,
                xytext=(4, -10),
                textcoords="offset points",
            )
        ax.set_xlabel("nominal quantile level")
        ax.set_ylabel("observed share at or below")
        ax.set_title(title, fontsize=9)
        ax.legend(loc="upper left")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path
    if path.suffix.lower() == ".html":
        import plotly.graph_objects as go

        fig = go.Figure()
        fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="ideal")
        fig.add_scatter(
            x=levels,
            y=obs,
            mode="lines+markers",
            name=res.model,
            text=[f"pinball {pin[q]:.3g}" for q in levels],
        )
        fig.update_layout(title=title, xaxis_title="nominal level", yaxis_title="observed")
        fig.write_html(path, include_plotlyjs=True)
        return path
    raise ValidationError(
        issues=[Issue("plot", "path", "must end in .png or .html", value=str(path))]
    )
