"""``gridpilot forecast …`` commands: backtests and day-ahead forecasts from CSV files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from gridpilot.forecast.backtest import BacktestResult
    from gridpilot.forecast.data import History

forecast_app = typer.Typer(
    name="forecast",
    help="Load and renewable forecasts: backtests beside seasonal-naive, day-ahead forecasts.",
    no_args_is_help=True,
)


RepairOpt = typer.Option(
    "error",
    "--repair",
    help="error|none: refuse NaN and gaps; interpolate: fill runs of at most "
    "--max-gap-steps missing steps linearly.",
)
MaxGapOpt = typer.Option(3, "--max-gap-steps", help="Longest run --repair interpolate fills.")
TargetOpt = typer.Option(
    None,
    "--target",
    help="Target column(s), comma-separated; rows after its last value are the forecast "
    "period (covariates only). Default: every column except --covariates.",
)
CovOpt = typer.Option(
    None,
    "--covariates",
    help="Covariate columns (e.g. temp,radiation) or 'all' (every column but the target): "
    "weather forecasts; rows beyond the last target value are their forecast for the horizon.",
)
TimeUnitOpt = typer.Option(
    "auto",
    "--time-unit",
    help="Unit of a numeric (epoch) time column: auto (by magnitude)|s|ms|us|ns.",
)


@dataclass(frozen=True)
class CsvOptions:
    """How a history CSV is read: series, repair of NaN/gaps, epoch unit."""

    columns: str | None = None
    repair: str = "error"
    max_gap_steps: int = 3
    time_unit: str = "auto"
    target: str | None = None
    covariates: str | None = None


def _split(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [c.strip() for c in text.split(",") if c.strip()]


BUILTIN = "builtin:"
BUILTIN_DAYS = 120  # a built-in grid's series: the first 120 days of its profiles


def builtin_frame(spec: str, days: int = BUILTIN_DAYS) -> Any:
    """A balanced built-in grid's own load (and PV, wind) series in MW from its profiles
    (:func:`gridpilot.model.grid_series`); ``spec`` is the grid name. Raises a named error
    for an unknown or three-phase grid."""
    from gridpilot.model import grid_series, load_balanced_grid

    grid = load_balanced_grid(spec.strip(), "--data builtin:<grid>")
    return grid_series(grid, days * 96)


def _read_csv(path: Path, opts: CsvOptions) -> Any:
    """The CSV as a :class:`History` (no target/covariates given) or, with ``--target`` or
    ``--covariates``, as a :class:`ForecastInputDataset`."""
    import pandas as pd

    from gridpilot.errors import Issue, ValidationError
    from gridpilot.forecast.data import prepare_history
    from gridpilot.forecast.inputs import ForecastInputDataset

    if str(path).startswith(BUILTIN):
        df = _with_time_index(builtin_frame(str(path)[len(BUILTIN) :]).reset_index())
    else:
        if not path.exists():
            raise ValidationError(issues=[Issue("data", "path", "file not found", value=str(path))])
        try:
            df = pd.read_csv(path)
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise ValidationError(
                issues=[Issue("data", "path", f"cannot read as CSV: {exc}", value=str(path))]
            ) from None
        df = _with_time_index(df)
    cols = _split(opts.columns)
    if opts.max_gap_steps < 1:
        raise ValidationError(
            issues=[Issue("data", "max_gap_steps", "must be at least 1", value=opts.max_gap_steps)]
        )
    if opts.target is not None or opts.covariates is not None:
        cov: Any = _split(opts.covariates)
        if opts.covariates is not None and opts.covariates.strip().lower() == "all":
            cov = "all"
        target = _split(opts.target) or cols
        if target is None:
            from gridpilot.forecast.data import TIME_COLUMNS

            target = [
                str(c)
                for c in df.columns
                if str(c).lower() not in TIME_COLUMNS
                and str(c) not in (cov if isinstance(cov, list) else [])
            ]
        return ForecastInputDataset.from_frame(
            df,
            target,
            cov,
            repair=opts.repair,  # type: ignore[arg-type]  # checked by prepare_history
            max_gap_steps=opts.max_gap_steps,
            time_unit=opts.time_unit,  # type: ignore[arg-type]  # checked by parse_times
            what=str(path),
        )
    return prepare_history(
        df,
        columns=cols,
        what=str(path),
        repair=opts.repair,  # type: ignore[arg-type]  # checked by prepare_history
        max_gap_steps=opts.max_gap_steps,
        time_unit=opts.time_unit,  # type: ignore[arg-type]  # checked by parse_times
    )


def reliability_path(plot: Path) -> Path:
    """Where the reliability diagram goes beside the forecast plot ``plot``."""
    return plot.with_name(f"{plot.stem}-reliability{plot.suffix}")


def _with_time_index(df: Any) -> Any:
    """A frame whose unnamed first column holds the time (as pandas writes an index) gets
    it named ``time``; others are returned as they are."""
    from gridpilot.forecast.data import TIME_COLUMNS

    names = [str(c).lower() for c in df.columns]
    if any(n in TIME_COLUMNS for n in names) or not len(df.columns):
        return df
    first = str(df.columns[0])
    if first == "" or first.startswith("Unnamed"):
        return df.rename(columns={df.columns[0]: "time"})
    return df


def _model_kwargs(
    model: str, lookback: int | None, lat: float | None, lon: float | None
) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if lookback is not None:
        kw["lookback"] = lookback
    if model in ("pv", "pv-weather"):
        kw["latitude"] = lat
        kw["longitude"] = lon
    return kw


def _history_and_covariates(read: Any) -> tuple[History, Any]:
    """The history of what :func:`_read_csv` read and its covariates (None without any)."""
    from gridpilot.forecast.inputs import ForecastInputDataset

    if isinstance(read, ForecastInputDataset):
        return read.history, read.history_covariates()
    return read, None


def _write_plots(res: BacktestResult, plot: Path) -> None:
    """Forecast vs actual at ``plot`` and the reliability diagram beside it."""
    from gridpilot.forecast.plot import plot_reliability

    res.plot(plot)
    plot_reliability(res, reliability_path(plot))


def _split_rows(
    h: History, protocol: str | None, source: str, test_fraction: float, val_fraction: float
) -> tuple[History, int | None, int | None]:
    """The history to backtest (standardised under ``--protocol ett``) and its validation and
    test starts (None: the backtest's own split)."""
    from gridpilot.forecast.data import History
    from gridpilot.forecast.protocol import ett_split

    val_start = test_start = None
    if protocol == "ett":
        sp = ett_split(h.freq, len(h), source)
        tr = sp.val_start
        mu = h.values[:tr].mean(axis=0)
        sd = h.values[:tr].std(axis=0)
        h = History(h.index[: sp.end], (h.values[: sp.end] - mu) / sd, h.columns, h.freq)
        val_start, test_start = sp.val_start, sp.test_start
    elif protocol is not None:
        raise typer.BadParameter(f"unknown protocol {protocol!r}; use 'ett'")
    elif val_fraction > 0:
        test_start = len(h) - round(test_fraction * len(h))
        val_start = test_start - round(val_fraction * len(h))
    return h, val_start, test_start


def _print_backtest(res: BacktestResult, horizon: int, plot: Path | None) -> None:
    """The backtest's metrics beside the seasonal-naive baseline, as a table on the console."""
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{res.model} vs seasonal-naive, horizon {horizon}, {len(res.origins)} origins"
    )
    table.add_column("metric")
    table.add_column(res.model, justify="right")
    table.add_column("seasonal-naive", justify="right")
    base = res.baseline_metrics or {}
    for k, v in res.metrics.items():
        table.add_row(k, f"{v:.4f}", f"{base.get(k, float('nan')):.4f}")
    console = Console()
    console.print(table)
    if res.mae_reduction is not None:
        console.print(f"MAE reduction vs seasonal-naive: {100 * res.mae_reduction:.1f} %")
    console.print(f"train: {res.train_s:.2f} s")
    if plot is not None:
        console.print(f"plot: {plot}, reliability diagram: {reliability_path(plot)}")


@forecast_app.command("backtest")
def backtest_cmd(
    data: Path = typer.Option(
        ...,
        "--data",
        help="CSV: a time column, one column per series; or builtin:<grid> (its own profiles).",
    ),
    model: str = typer.Option(
        "linear",
        "--model",
        help="seasonal-naive|linear|linear-tod|gbm|gbm-l1|gbm-quantile|ensemble|pv",
    ),
    horizon: int = typer.Option(24, "--horizon", help="Forecast horizon in steps."),
    columns: str | None = typer.Option(None, "--columns", help="Comma-separated series."),
    lookback: int | None = typer.Option(None, "--lookback", help="Linear model lookback (steps)."),
    test_fraction: float = typer.Option(0.2, "--test-fraction", help="Share of rows tested."),
    val_fraction: float = typer.Option(
        0.0,
        "--val-fraction",
        help="Share of rows for validation before the test part (0: model's own).",
    ),
    protocol: str | None = typer.Option(
        None,
        "--protocol",
        help="'ett': 12/4/4 months of 30 days (rows from the time step), standardised on "
        "training rows.",
    ),
    stride: int = typer.Option(1, "--stride", help="Steps between forecast origins."),
    refit_every: int | None = typer.Option(
        None,
        "--refit-every",
        help="Retrain on all rows observed before each block of N test steps (default: once).",
    ),
    plot: Path | None = typer.Option(
        None,
        "--plot",
        help="Write forecast vs actual (.png/.html) and beside it NAME-reliability.png/.html "
        "(observed share below each quantile vs its level, pinball loss per level).",
    ),
    latitude: float | None = typer.Option(None, "--lat", help="PV site latitude (model pv)."),
    longitude: float | None = typer.Option(None, "--lon", help="PV site longitude (model pv)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    repair: str = RepairOpt,
    max_gap_steps: int = MaxGapOpt,
    time_unit: str = TimeUnitOpt,
    target: str | None = TargetOpt,
    covariates: str | None = CovOpt,
) -> None:
    """Rolling-origin backtest; prints the model's metrics beside the seasonal-naive baseline."""
    from gridpilot.errors import GridpilotError
    from gridpilot.forecast.api import make_model
    from gridpilot.forecast.backtest import backtest

    try:
        read = _read_csv(
            data, CsvOptions(columns, repair, max_gap_steps, time_unit, target, covariates)
        )
        h, cov = _history_and_covariates(read)
        h, val_start, test_start = _split_rows(h, protocol, str(data), test_fraction, val_fraction)
        kw = _model_kwargs(model, lookback, latitude, longitude)
        m = make_model(model, horizon, **kw)
        res = backtest(
            m,
            h,
            test_start=test_start,
            val_start=val_start,
            test_fraction=test_fraction,
            stride=stride,
            refit_every=refit_every,
            covariates=cov,
        )
        if plot is not None:
            _write_plots(res, plot)
    except GridpilotError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    out = res.to_dict()
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    _print_backtest(res, horizon, plot)


@forecast_app.command("day-ahead")
def day_ahead_cmd(
    data: Path = typer.Option(
        ...,
        "--data",
        help="CSV history: a time column, one column per series; or builtin:<grid>.",
    ),
    horizon: int | None = typer.Option(None, "--horizon", help="Steps (default one day)."),
    model: str = typer.Option(
        "linear", "--model", help="seasonal-naive|linear|linear-tod|gbm|gbm-l1|ensemble|pv"
    ),
    columns: str | None = typer.Option(None, "--columns", help="Comma-separated series."),
    latitude: float | None = typer.Option(None, "--lat", help="PV site latitude (model pv)."),
    longitude: float | None = typer.Option(None, "--lon", help="PV site longitude (model pv)."),
    out: Path | None = typer.Option(None, "--out", help="Write the long table (CSV)."),
    plot: Path | None = typer.Option(None, "--plot", help="Write a plot (.png/.html)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    repair: str = RepairOpt,
    max_gap_steps: int = MaxGapOpt,
    time_unit: str = TimeUnitOpt,
    target: str | None = TargetOpt,
    covariates: str | None = CovOpt,
) -> None:
    """Fit on the whole history and forecast the next day with P10/P50/P90."""
    from gridpilot.errors import GridpilotError
    from gridpilot.forecast.api import day_ahead
    from gridpilot.forecast.plot import plot_forecast

    try:
        read = _read_csv(
            data, CsvOptions(columns, repair, max_gap_steps, time_unit, target, covariates)
        )
        res = day_ahead(
            read, horizon, model=model, **_model_kwargs(model, None, latitude, longitude)
        )
        if plot is not None:
            hist = getattr(read, "history", read)
            plot_forecast(res, plot, history=hist.df())
    except GridpilotError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    long = res.to_long()
    if out is not None:
        long.to_csv(out, index=False)
    if as_json:
        long["time"] = long["time"].astype(str)
        typer.echo(json.dumps(long.to_dict(orient="records")))
    else:
        _print_band(res)


def _print_band(res: Any) -> None:
    """One Rich table per series: time, P10, P50 (point) and P90."""
    from gridpilot.tables import print_table, rows_table

    q = sorted(res.quantiles)
    lo, hi = (q[0], q[-1]) if q else (None, None)
    for j, name in enumerate(res.columns):
        rows = []
        for i, t in enumerate(res.index):
            row: dict[str, Any] = {"time": str(t)}
            if lo is not None:
                row[f"P{round(lo * 100)}"] = float(res.quantiles[lo][i, j])
            row["point"] = float(res.point[i, j])
            if hi is not None:
                row[f"P{round(hi * 100)}"] = float(res.quantiles[hi][i, j])
            rows.append(row)
        print_table(rows_table(f"day-ahead forecast: {name}", list(rows[0]), rows))


@forecast_app.command("export")
def export_cmd(
    grid: str = typer.Argument(..., help="a balanced built-in grid, e.g. case33bw"),
    out: Path = typer.Option(..., "--out", help="CSV file to write"),
    days: int = typer.Option(BUILTIN_DAYS, "--days", min=1, help="days of 15-min steps"),
) -> None:
    """Write a grid's own load (and PV, wind) series in MW to CSV: what ``--data
    builtin:<grid>`` forecasts, for use with other tools."""
    from gridpilot.errors import GridpilotError

    try:
        frame = builtin_frame(grid, days)
        frame.to_csv(out)
    except GridpilotError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(f"error: --out: cannot write {str(out)!r}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {len(frame):,} rows x {frame.shape[1]} series to {out}")


def register(app: typer.Typer) -> None:
    """Attach the ``forecast`` sub-app to the root CLI."""
    app.add_typer(forecast_app, name="forecast")
