"""Forecasting benchmark on ETTh1 (or ``--data X``) beside the published DLinear / PatchTST figures.

The data set's name is the file's stem; its published figures come from :data:`DATASETS`
(ETTh1 only, from ../shared/data/ett/README.md): for any other file none are printed and the
``beats_dlinear`` / ``mse96`` targets are ``null``. The split (12/4/4 months of 30 days) is
derived from the file's time step (``gridpilot.forecast.protocol.ett_split``; 15-minute data
gets 34560/11520/11520 rows), and so are the day-ahead horizon and the seasonal-naive season
(one day of steps). The day-ahead rows use ETT's six load columns where present, else every
column.

1. Long-horizon protocol (../shared/data/ett/README.md): multivariate, 7 columns standardised
   with the training rows, train/val/test = 8640/2880/2880 rows, every test window (stride 1),
   horizons 96/192/336/720. Our DLinear-style closed-form ridge model (lookback chosen among
   336/512/720 on the validation part) beside the seasonal-naive baseline run in the same
   process and the published test MSE/MAE.
2. Day-ahead load forecasting: the six load series, horizon 24 h, rolling origins over the
   test part, MAE vs seasonal-naive, P10–P90 coverage (conformal, recalibrated daily).
   Rows: linear, linear-tod (weights per origin hour and series, Huber loss) and LightGBM
   (L1) fitted once on the training rows; the ensemble (LightGBM-L1 + linear-tod +
   seasonal-naive, per-step weights tuned on the validation rows)
   refitted every ``--refit-every`` steps (default 720 = 30 days) on all rows observed
   before each block of test origins.

    .venv/bin/python bench/forecast.py --json            # full
    .venv/bin/python bench/forecast.py --json --quick    # horizon 96 only, lookback 512
    .venv/bin/python bench/forecast.py --json --only openstef307   # weather, OpenSTEF set 307
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from gridpilot.errors import ValidationError
from gridpilot.forecast import (
    EnsembleForecaster,
    GBMForecaster,
    LinearForecaster,
    SeasonalNaive,
    TimeOfDayLinearForecaster,
    backtest,
    prepare_history,
)
from gridpilot.forecast.base import target_windows
from gridpilot.forecast.protocol import EttSplit, ett_split

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ett" / "ETTh1.csv"
LOADS = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL"]
ETTH1_PUBLISHED: dict[str, dict[int, tuple[float, float]]] = {
    "DLinear": {96: (0.375, 0.399), 192: (0.405, 0.416), 336: (0.439, 0.443), 720: (0.472, 0.490)},
    "PatchTST/42": {
        96: (0.375, 0.399),
        192: (0.414, 0.421),
        336: (0.431, 0.436),
        720: (0.449, 0.466),
    },
    "PatchTST/64": {
        96: (0.370, 0.400),
        192: (0.413, 0.429),
        336: (0.422, 0.440),
        720: (0.447, 0.468),
    },
}

# published test MSE/MAE per data set (file stem), model and horizon; absent: none printed
DATASETS: dict[str, dict[str, dict[int, tuple[float, float]]]] = {"ETTh1": ETTH1_PUBLISHED}


@dataclass(frozen=True)
class Data:
    """The benchmark's data set: name (file stem), frame, ETT split from its time step, steps
    per day, day-ahead columns and published figures (None: not known for this data set)."""

    name: str
    df: pd.DataFrame
    split: EttSplit
    day: int
    loads: list[str]
    published: dict[str, dict[int, tuple[float, float]]] | None

    @property
    def train(self) -> int:
        return self.split.val_start

    @property
    def val(self) -> int:
        return self.split.test_start - self.split.val_start

    @property
    def test(self) -> int:
        return self.split.end - self.split.test_start


def load_data(path: Path) -> Data:
    """Read the CSV (``date`` column) and derive the split and day length from its step."""
    h = prepare_history(pd.read_csv(path), what=str(path))
    df = h.df()
    loads = [c for c in LOADS if c in df.columns]
    return Data(
        path.stem,
        df,
        ett_split(h.freq, len(h), str(path)),
        h.steps_per_day,
        loads if len(loads) == len(LOADS) else list(df.columns),
        DATASETS.get(path.stem),
    )


def long_horizon(
    d: Data, horizons: list[int], lookbacks: tuple[int, ...], err: Console
) -> list[dict[str, Any]]:
    """Protocol rows: horizon, mse, mae, baseline_mse, baseline_mae, train_s, published."""
    df, TRAIN, VAL, TEST = d.df, d.train, d.val, d.test
    pub = d.published
    vals = df.to_numpy(dtype=float)
    mu, sd = vals[:TRAIN].mean(axis=0), vals[:TRAIN].std(axis=0)
    z = pd.DataFrame((vals - mu) / sd, index=df.index, columns=df.columns).iloc[
        : TRAIN + VAL + TEST
    ]
    zv = z.to_numpy()
    rows = []
    for h in horizons:
        err.log(f"horizon {h}: fitting linear (lookbacks {list(lookbacks)}) …")
        model = LinearForecaster(h, lookback=lookbacks)
        model.fit(z.iloc[:TRAIN], validation=z.iloc[TRAIN : TRAIN + VAL])
        origins = np.arange(TRAIN + VAL, TRAIN + VAL + TEST - h + 1)
        t0 = time.perf_counter()
        p = model.forecast_origins(zv, z.index, None, origins)
        pred_s = time.perf_counter() - t0
        y = target_windows(zv, origins, h)
        base = SeasonalNaive(h, season=d.day).fit(
            z.iloc[:TRAIN], validation=z.iloc[TRAIN : TRAIN + VAL]
        )
        pb = base.forecast_origins(zv, z.index, None, origins)
        rows.append(
            {
                "horizon": h,
                "mse": round(float(np.mean((p - y) ** 2)), 4),
                "mae": round(float(np.mean(np.abs(p - y))), 4),
                "baseline_mse": round(float(np.mean((pb - y) ** 2)), 4),
                "baseline_mae": round(float(np.mean(np.abs(pb - y))), 4),
                "train_s": round(model.train_s_, 2),
                "predict_s": round(pred_s, 3),
                "lookback": model.lookback_,
                "val_mse_by_lookback": {k: round(v, 4) for k, v in model.val_mse_.items()},
                "n_windows": len(origins),
                "published": None
                if pub is None
                else {k: {"mse": v[h][0], "mae": v[h][1]} for k, v in pub.items() if h in v},
                "beats_dlinear": None
                if pub is None or h not in pub.get("DLinear", {})
                else bool(np.mean((p - y) ** 2) < pub["DLinear"][h][0]),
            }
        )
        err.log(
            f"horizon {h}: mse {rows[-1]['mse']} mae {rows[-1]['mae']} ({model.train_s_:.1f} s)"
        )
    return rows


def lead_and_issue_figures(res: Any, std: np.ndarray) -> dict[str, Any]:
    """MAE reduction vs seasonal-naive per lead (1..24 h) and for the origins issued at
    00:00 only (a once-a-day forecast for the coming day), on data standardised with
    ``std`` (the training rows' std per series, as in the backtest)."""
    sd = std[None, :, None]
    e = np.abs(res.point - res.actual) / sd
    b = np.abs(res.baseline_point - res.actual) / sd
    lead = 1.0 - e.mean(axis=(0, 1)) / b.mean(axis=(0, 1))
    at0 = np.asarray(res.origins.hour == 0)
    return {
        "mae_reduction_by_lead": [round(float(x), 4) for x in lead],
        "mae_reduction_issued_00h": round(float(1.0 - e[at0].mean() / b[at0].mean()), 4),
        "n_origins_issued_00h": int(at0.sum()),
    }


def naive_context(d: Data) -> dict[str, float]:
    """Standardised test MAE of the one-day (the baseline) and the one-week seasonal-naive
    and of the last value (persistence) over the day-ahead origins: which naive is harder."""
    n, H = d.split.end, d.day
    v = d.df[d.loads].iloc[:n].to_numpy(dtype=float)
    sd = v[: d.train].std(axis=0)[None, :, None]
    o = np.arange(d.split.test_start, n - H + 1)
    y = target_windows(v, o, H)
    rows = o[:, None] + np.arange(H)[None, :]  # (N, H) target rows
    day = np.transpose(v[rows - H], (0, 2, 1))
    week = np.transpose(v[rows - 7 * H], (0, 2, 1))
    last = np.broadcast_to(v[o - 1][:, :, None], y.shape)
    return {
        name: round(float(np.mean(np.abs(p - y) / sd)), 4)
        for name, p in (
            ("seasonal_naive_day", day),
            ("seasonal_naive_week", week),
            ("last_value", last),
        )
    }


def day_ahead(
    d: Data,
    stride: int,
    with_gbm: bool,
    refit_every: int | None,
    err: Console,
    retune_window: int | None = None,
    plot: Path | None = None,
) -> list[dict[str, Any]]:
    """Day-ahead rows for the six load series: model vs seasonal-naive, coverage; ``plot``:
    a PNG/HTML of the last model's stitched forecasts of HUFL over the first 14 test days."""
    H = d.day
    loads = d.df[d.loads].iloc[: d.split.end]
    std = loads.iloc[: d.train].to_numpy(dtype=float).std(axis=0)
    out = []
    models: list[tuple[Any, int | None]] = [
        (LinearForecaster(H, lookback=(7 * H, 14 * H, 512 * H // 24)), None),
        (TimeOfDayLinearForecaster(H), None),
    ]
    if with_gbm:
        models.append((GBMForecaster(H, objective="l1", num_threads=2), None))
        models.append(
            (EnsembleForecaster(H, num_threads=2, retune_window=retune_window), refit_every)
        )
    for m, refit in models:
        err.log(f"day-ahead: {m.name} (refit every {refit} steps) …")
        t0 = time.perf_counter()
        res = backtest(
            m,
            loads,
            val_start=d.train,
            test_start=d.split.test_start,
            stride=stride,
            refit_every=refit,
        )
        wall = time.perf_counter() - t0
        b = res.baseline_metrics or {}
        err.log(f"day-ahead: {m.name}: MAE reduction {res.mae_reduction:.4f} ({wall:.0f} s)")
        if plot is not None and m is models[-1][0]:
            shown = res.plot(plot, series=d.loads[0], max_days=14)
            err.log(f"day-ahead: plot of {m.name} -> {shown}")
        out.append(
            {
                "model": m.name,
                "refit_every": refit,
                "retune_window": getattr(m, "retune_window", None),
                "weights_by_step": (
                    None
                    if not isinstance(m, EnsembleForecaster) or m.weights_ is None
                    else {
                        mm.name: [round(float(w), 2) for w in m.weights_[:, i]]
                        for i, mm in enumerate(m.members)
                    }
                ),
                "backtest_wall_s": round(wall, 1),
                "horizon": H,
                "n_origins": len(res.origins),
                "mae_norm": round(res.metrics["mae_norm"], 4),
                "baseline_mae_norm": round(b["mae_norm"], 4),
                "mae_reduction": round(res.mae_reduction or 0.0, 4),
                "mse_norm": round(res.metrics["mse_norm"], 4),
                "baseline_mse_norm": round(b["mse_norm"], 4),
                "mae_mw": round(res.metrics["mae"], 4),
                "baseline_mae_mw": round(b["mae"], 4),
                "pinball_norm": round(res.metrics["pinball_norm"], 4),
                "baseline_pinball_norm": round(b["pinball_norm"], 4),
                "coverage_80": round(res.metrics["coverage_80"], 4),
                "train_s": round(res.train_s, 2),
                "per_series_mae_reduction": {
                    k: round(float(v), 4) for k, v in res.per_series["mae_reduction"].items()
                },
                **lead_and_issue_figures(res, std),
            }
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print JSON")
    ap.add_argument("--quick", action="store_true", help="horizon 96 only, lookback 512")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument(
        "--no-gbm", action="store_true", help="skip the LightGBM and ensemble day-ahead rows"
    )
    ap.add_argument(
        "--refit-every",
        type=int,
        default=720,
        help="refit the day-ahead ensemble every N test steps (0: fit once)",
    )
    ap.add_argument(
        "--retune-window",
        type=int,
        default=0,
        help="re-tune the ensemble's weights at each refit on the last N origins (0: keep)",
    )
    ap.add_argument("--day-ahead-only", action="store_true", help="skip the long horizons")
    ap.add_argument(
        "--only",
        choices=("ett", "openstef307", "renewables"),
        default="ett",
        help="ett: ETTh1 (or --data) protocol and day-ahead rows; openstef307: day-ahead "
        "with weather on OpenSTEF's reference set 307 (bench/forecast_openstef.py)",
    )
    ap.add_argument(
        "--plot", type=Path, default=None, help="PNG/HTML of the day-ahead forecasts (HUFL)"
    )
    ap.add_argument(
        "--rows",
        default=None,
        help="openstef307: comma-separated positions of the methods to run (default: all)",
    )
    args = ap.parse_args()
    err = Console(stderr=True)
    if args.only == "openstef307":
        return _openstef307(args, err)
    if args.only == "renewables":
        from threadpoolctl import threadpool_limits

        from forecast_renewables import run as run_renewables

        with threadpool_limits(1):
            print(json.dumps(run_renewables(err), indent=2))
        return 0
    if not args.data.exists():
        err.print(f"data not found at {args.data}")
        return 2
    try:
        d = load_data(args.data)
    except ValidationError as exc:
        err.print(f"error: {exc}")
        return 2
    if d.published is None:
        err.log(f"{d.name}: no published figures known for this data set; none are shown")
    horizons = [96] if args.quick else [96, 192, 336, 720]
    lookbacks = (512,) if args.quick else (336, 512, 720)
    t0 = time.perf_counter()
    rows = [] if args.day_ahead_only else long_horizon(d, horizons, lookbacks, err)
    da = day_ahead(
        d,
        stride=4 if args.quick else 1,
        with_gbm=not (args.quick or args.no_gbm),
        refit_every=args.refit_every or None,
        err=err,
        retune_window=args.retune_window or None,
        plot=args.plot,
    )
    total = time.perf_counter() - t0
    result = {
        "bench": "forecast",
        "data": d.name,
        "split_rows": [d.train, d.val, d.test],
        "quick": args.quick,
        "rows": rows,
        "day_ahead": da,
        "day_ahead_naive_mae_norm": naive_context(d),
        "train_s_all_horizons": round(sum(r["train_s"] for r in rows), 2),
        "wall_s": round(total, 1),
        "targets": {
            "mse96_le_0.365": next(
                (r["mse"] <= 0.365 for r in rows if r["horizon"] == 96 and d.name == "ETTh1"),
                None,
            ),
            "every_horizon_beats_dlinear": (
                all(r["beats_dlinear"] for r in rows)
                if rows and all(r["beats_dlinear"] is not None for r in rows)
                else None
            ),
            "train_all_horizons_under_300s": (
                sum(r["train_s"] for r in rows) < 300 if rows else None
            ),
            "day_ahead_mae_25pct_below_naive": max(d["mae_reduction"] for d in da) >= 0.25,
            "coverage_80_within_5pts": all(abs(d["coverage_80"] - 0.8) <= 0.05 for d in da),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "numpy": np.__version__,
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    pub = d.published or {}
    t = Table(title=f"{d.name} multivariate, standardised test MSE / MAE")
    for c in ["horizon", "ours", "seasonal-naive", *pub, "train s"]:
        t.add_column(c, justify="right")
    for r in rows:
        h = r["horizon"]
        t.add_row(
            str(h),
            f"{r['mse']:.3f} / {r['mae']:.3f}",
            f"{r['baseline_mse']:.3f} / {r['baseline_mae']:.3f}",
            *[f"{v[h][0]:.3f} / {v[h][1]:.3f}" if h in v else "-" for v in pub.values()],
            f"{r['train_s']:.1f}",
        )
    con = Console()
    con.print(t)
    for d in da:
        con.print(
            f"day-ahead {d['model']}: MAE(norm) {d['mae_norm']} vs seasonal-naive "
            f"{d['baseline_mae_norm']} ({100 * d['mae_reduction']:.1f} % lower), "
            f"P10–P90 coverage {100 * d['coverage_80']:.1f} %"
        )
    con.print(result["targets"])
    return 0


def _openstef307(args: argparse.Namespace, err: Console) -> int:
    """The ``--only openstef307`` bench: JSON rows or a table."""
    from threadpoolctl import threadpool_limits

    from forecast_openstef import DATA, run

    if not DATA.exists():
        err.print(f"data not found at {DATA}")
        return 2
    t0 = time.perf_counter()
    with threadpool_limits(1):
        only = [int(x) for x in args.rows.split(",")] if args.rows else None
        out = run(672 if args.refit_every == 720 else args.refit_every, err, args.plot, only)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    t = Table(title="OpenSTEF 307, day-ahead issued 00:00 UTC (MAE MW)")
    for c in ("method", "covariates", "mae", "rmse", "gain %", "P10–P90", "train s"):
        t.add_column(c)
    for r in out["rows"]:
        t.add_row(
            r["method"],
            "weather" if r["covariates"] else "-",
            f"{r['mae']:.3f}",
            "-" if r["rmse"] is None else f"{r['rmse']:.3f}",
            f"{r['gain_vs_naive_pct']:.1f}",
            f"{100 * r['coverage_p10_p90']:.0f} %",
            "-" if r["train_s"] is None else f"{r['train_s']:.1f}",
        )
    Console().print(t)
    Console().print(out["targets"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
