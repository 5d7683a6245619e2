"""A simulated community market on a built-in grid: generated prosumers (PV and load
profiles), signed orders every 15 minutes, grid-aware clearing, signed meter readings with
forecast errors and a few thieves, settlement, and the ledger.

The community's benefit is measured against everyone trading only with the grid (imports at
the retail price, exports at the feed-in price) on the same metered energy.

:func:`simulate` takes its settings as arguments; :func:`run_simulation` takes them as one
:class:`SimulationOptions`. A run is a sequence of named steps per interval: orders from the
forecast (:func:`_orders`), clearing with the twin's base point (:func:`_clear`), signed
readings (:func:`_readings`), settlement and the accounts (:func:`_account`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gridpilot.errors import GridpilotError, Issue, ValidationError
from gridpilot.market.crypto import KeyPair
from gridpilot.market.ledger import Ledger
from gridpilot.market.market import Market, MarketConfig
from gridpilot.market.network import GridSensitivity
from gridpilot.market.orders import GRID, MeterReading, Order, Participant
from gridpilot.market.settlement import Settlement, grid_only_cost_ueur
from gridpilot.model.limits import OperatingLimits
from gridpilot.twin.injections import Injections

log = logging.getLogger(__name__)


@dataclass
class SimulationOptions:
    """The settings of :func:`run_simulation` (see :func:`simulate` for their meaning)."""

    grid: str = "case33bw"
    participants: int = 50
    hours: float = 24.0
    seed: int = 0
    ledger_path: str | Path | None = None
    config: MarketConfig | None = None
    theft_share: float = 0.05
    grid_aware: bool = True
    start: str = "2025-06-21"
    start_hour: float = 8.0
    progress: bool = False
    limits: OperatingLimits = field(default_factory=OperatingLimits)


@dataclass
class _Community:
    """The generated participants: ids, keys, bus, mean demand kW, PV kWp and who steals."""

    ids: list[str]
    keys: list[KeyPair]
    meters: list[KeyPair]
    bus: np.ndarray
    load_kw: np.ndarray
    pv_kwp: np.ndarray
    thief: np.ndarray

    @property
    def bus_of(self) -> dict[str, int]:
        """Each participant's bus id."""
        return dict(zip(self.ids, self.bus.tolist(), strict=True))


@dataclass
class _Shapes:
    """The run's profile shapes per interval (residential load and PV, per unit) and their times."""

    res: np.ndarray
    pv: np.ndarray
    index: Any
    offset: int


def _new_stats() -> dict[str, Any]:
    return {
        "orders": 0,
        "refused_orders": 0,
        "twin_checked": 0,
        "twin_violations": 0,
        "twin_vmin_after": float("inf"),
        "twin_loading_after": 0.0,
        "trades": 0,
        "auction_wh": 0,
        "traded_wh": 0,
        "delivered_wh": 0,
        "shortfall_wh": 0,
        "curtailed_wh": 0,
        "lp_intervals": 0,
        "refused_readings": 0,
    }


@dataclass
class _Run:
    """One simulation run: its grid, market, community and running totals (Wh, µEUR, ms)."""

    g: Any
    cfg: MarketConfig
    rng: np.random.Generator
    market: Market
    ledger: Ledger
    comm: _Community
    shapes: _Shapes
    twin: Any = None
    sens0: GridSensitivity | None = None
    nonce: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    exp_tot: dict[str, int] = field(default_factory=dict)
    imp_tot: dict[str, int] = field(default_factory=dict)
    grid_only: dict[str, int] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=_new_stats)
    clear_ms: list[float] = field(default_factory=list)
    series: list[dict[str, Any]] = field(default_factory=list)
    binding: set[str] = field(default_factory=set)
    limits: OperatingLimits = field(default_factory=OperatingLimits)

    @property
    def h(self) -> float:
        """The interval in hours."""
        return self.cfg.interval_s / 3600.0


def _check_options(o: SimulationOptions) -> None:
    """Refuse fewer than 2 participants, a non-positive duration or an existing ledger file."""
    if o.participants < 2:
        raise ValidationError(
            issues=[Issue("simulate", "participants", "need at least 2", value=o.participants)]
        )
    if o.hours <= 0:
        raise ValidationError(
            issues=[Issue("simulate", "hours", "must be positive", value=o.hours)]
        )
    if o.ledger_path is not None and Path(o.ledger_path).exists():
        raise ValidationError(
            issues=[
                Issue(
                    "simulate",
                    "ledger",
                    "file exists; choose a new path (a ledger is never overwritten)",
                    value=str(o.ledger_path),
                )
            ]
        )


def _shapes(o: SimulationOptions, cfg: MarketConfig, T: int) -> _Shapes:
    """The default profile shapes for ``T`` intervals from ``start_hour`` of the ``start`` day."""
    from gridpilot.model import default_profiles

    steps_per_h = 3600 // cfg.interval_s
    # the default shapes are generated from midnight (their hour of day counts from the start)
    off = round(o.start_hour * steps_per_h)
    prof = default_profiles(
        steps=max(off + T, 24 * steps_per_h), start=o.start, step_s=cfg.interval_s, seed=o.seed + 7
    )
    res_shape = prof.values[off : off + T, prof.names.index("residential")]
    pv_shape = prof.values[off : off + T, prof.names.index("pv")]
    return _Shapes(res_shape, pv_shape, prof.index, off)


def _community(g: Any, rng: np.random.Generator, o: SimulationOptions) -> _Community:
    """``o.participants`` households at random load buses, 55 % with PV, ``theft_share`` of those thieves."""
    load_buses = np.asarray(g.load["bus"], np.int64)
    n = int(o.participants)
    ids = [f"p{i:04d}" for i in range(n)]
    keys = [KeyPair.from_name(f"{o.seed}/{pid}") for pid in ids]
    meters = [KeyPair.from_name(f"{o.seed}/meter/{pid}") for pid in ids]
    bus = rng.choice(load_buses, n)
    load_kw = rng.uniform(0.4, 1.2, n)  # mean household demand
    pv_kwp = np.where(rng.random(n) < 0.55, rng.uniform(3.0, 10.0, n), 0.0)
    thief = (pv_kwp > 0) & (rng.random(n) < o.theft_share)
    return _Community(ids, keys, meters, bus, load_kw, pv_kwp, thief)


def _start(o: SimulationOptions) -> _Run:
    """Load the grid, generate the community, open the ledger and seal the registrations."""
    from gridpilot.model import load_balanced_grid

    cfg = o.config or MarketConfig()
    g = load_balanced_grid(o.grid, "the market simulation")
    rng = np.random.default_rng(o.seed)
    T = max(1, round(o.hours * (3600 // cfg.interval_s)))
    shapes = _shapes(o, cfg, T)
    sens0 = GridSensitivity.from_grid(g, limits=o.limits) if o.grid_aware else None
    twin = None
    try:  # the twin gives the base point per interval and checks the trades afterwards (AC)
        from gridpilot.twin import Twin

        twin = Twin(g)
    except (ImportError, GridpilotError) as exc:  # optional: linearised DistFlow base otherwise
        log.info("market simulation without the twin (%s): linearised DistFlow base", exc)
        twin = None
    operator = KeyPair.from_name(f"operator/{o.seed}")
    ledger = (
        Ledger.open(o.ledger_path, operator)
        if o.ledger_path is not None
        else Ledger(operator=operator)
    )
    market = Market(cfg, ledger, sens0)
    comm = _community(g, rng, o)
    for pid, k, m, b in zip(comm.ids, comm.keys, comm.meters, comm.bus, strict=True):
        market.register(Participant(pid, k.public_key, int(b), m.public_key))
    market.seal(time_ns=0)
    run = _Run(g, cfg, rng, market, ledger, comm, shapes, twin, sens0)
    run.limits = o.limits
    run.nonce = np.zeros(len(comm.ids), np.int64)
    run.grid_only = dict.fromkeys(comm.ids, 0)
    return run


def _orders(r: _Run, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Submit every participant's signed order for interval ``t`` from its forecast.

    Returns the true net export (kW, per participant) and the forecast (Wh) the orders came from.
    """
    cfg, rng, c = r.cfg, r.rng, r.comm
    n = len(c.ids)
    spread = cfg.retail_eur_per_kwh - cfg.feed_in_eur_per_kwh
    shape_l = r.shapes.res[t] * rng.lognormal(0.0, 0.25, n) * 1.6
    true_kw = c.pv_kwp * r.shapes.pv[t] * rng.uniform(0.85, 1.0, n) - c.load_kw * shape_l
    fc_kw = true_kw * rng.normal(1.0, 0.08, n)
    fc_wh = np.rint(fc_kw * r.h * 1000).astype(np.int64)
    orders: list[Order] = []
    for i in np.flatnonzero(np.abs(fc_wh) >= 20):
        sell = fc_wh[i] > 0
        price = (
            cfg.feed_in_eur_per_kwh + rng.uniform(0.0, 0.6) * spread
            if sell
            else cfg.feed_in_eur_per_kwh + rng.uniform(0.3, 1.0) * spread
        )
        r.nonce[i] += 1
        o = Order(
            c.ids[i],
            t,
            "sell" if sell else "buy",
            int(abs(fc_wh[i])),
            round(float(price), 4),
            int(r.nonce[i]),
        )
        orders.append(o.signed(c.keys[i]))
    errs = r.market.submit_many(orders, now_s=t * cfg.interval_s - 1)
    r.stats["orders"] += len(orders)
    r.stats["refused_orders"] += sum(e is not None for e in errs)
    return true_kw, fc_wh


def _clear(r: _Run, t: int) -> Any:
    """Clear interval ``t`` around the twin's base point (where there is a twin) and check the trades in it."""
    stats, g = r.stats, r.g
    sens = None
    base = None
    if r.twin is not None:
        stats["_base_p"] = g.load["p_mw"] * r.shapes.res[t]
        stats["_base_q"] = g.load["q_mvar"] * r.shapes.res[t]
        base = r.twin.powerflow(
            Injections(load_p_mw=stats["_base_p"], load_q_mvar=stats["_base_q"])
        )
        sens = r.sens0.rebase(base) if r.sens0 is not None else None
    cl = r.market.clear_interval(t, sensitivity=sens)
    r.clear_ms.append(cl.clear_ms)
    stats["trades"] += len(cl.trades)
    stats["auction_wh"] += cl.auction.volume_wh
    stats["traded_wh"] += cl.trades.volume_wh
    stats["curtailed_wh"] += int(cl.report["curtailed_wh"])
    stats["lp_intervals"] += int(cl.report["lp"])
    r.binding.update(cl.report["binding"])
    if base is not None and len(cl.trades):
        _twin_check(r, base, cl)
    return cl


def _readings(
    r: _Run, t: int, true_kw: np.ndarray, fc_wh: np.ndarray
) -> tuple[list[MeterReading], np.ndarray, np.ndarray]:
    """Signed readings of interval ``t`` (a thief signs its offer with the wrong key); export and import Wh."""
    c = r.comm
    true_wh = np.rint(true_kw * r.h * 1000).astype(np.int64)
    export = np.maximum(true_wh, 0)
    export[c.thief] = 0
    imp = np.maximum(-true_wh, 0)
    readings = []
    for i in range(len(c.ids)):
        rd = MeterReading(c.ids[i], t, int(export[i]), int(imp[i]))
        if c.thief[i] and fc_wh[i] > 0:  # the thief claims its offer was exported
            readings.append(MeterReading(c.ids[i], t, int(fc_wh[i]), 0).signed(c.keys[i]))
        else:
            readings.append(rd.signed(c.meters[i]))
    return readings, export, imp


def _account(
    r: _Run, t: int, cl: Any, st: Settlement, metered: tuple[np.ndarray, np.ndarray]
) -> None:
    """Add interval ``t``'s settlement to the totals and the series; ``metered``: export and import Wh."""
    export, imp = metered
    cfg, ids, stats = r.cfg, r.comm.ids, r.stats
    stats["delivered_wh"] += int(st.delivered_wh.sum())
    stats["shortfall_wh"] += int(st.shortfall_wh.sum())
    stats["refused_readings"] += len(st.refused_readings)
    vol = cl.trades.volume_wh
    r.series.append(
        {
            "interval": t,
            "time": str(r.shapes.index[r.shapes.offset + t]),
            "price_eur_per_kwh": float((cl.trades.qty_wh * cl.trades.price_eur_per_kwh).sum() / vol)
            if vol
            else None,
            "traded_kwh": vol / 1000,
            "curtailed_kwh": int(cl.report["curtailed_wh"]) / 1000,
            "delivered_kwh": int(st.delivered_wh.sum()) / 1000,
            "export_kwh": int(export.sum()) / 1000,
            "import_kwh": int(imp.sum()) / 1000,
        }
    )
    for i, pid in enumerate(ids):
        r.exp_tot[pid] = r.exp_tot.get(pid, 0) + int(export[i])
        r.imp_tot[pid] = r.imp_tot.get(pid, 0) + int(imp[i])
    for pid, c in grid_only_cost_ueur(
        dict(zip(ids, export.tolist(), strict=True)),
        dict(zip(ids, imp.tolist(), strict=True)),
        cfg.retail_eur_per_kwh,
        cfg.feed_in_eur_per_kwh,
    ).items():
        r.grid_only[pid] += c


def _step(r: _Run, t: int) -> None:
    """One interval: orders, clearing, readings, settlement, accounts, and the ledger's seal."""
    true_kw, fc_wh = _orders(r, t)
    cl = _clear(r, t)
    readings, export, imp = _readings(r, t, true_kw, fc_wh)
    st = r.market.settle(t, readings)
    _account(r, t, cl, st, (export, imp))
    r.market.seal(time_ns=int((t + 1) * r.cfg.interval_s * 1e9))


def _paid_ueur(r: _Run, pids: list[str], reason: str) -> int:
    """The sum of payment amounts (µEUR, signed as in the audit) of ``pids`` for ``reason``."""
    return sum(
        e["amount_ueur"]
        for pid in pids
        for e in r.market.audit.get(pid, [])
        if e["event"] == "payment" and e["reason"] == reason
    )


def _energy_report(r: _Run, o: SimulationOptions, T: int) -> dict[str, Any]:
    """The run's settings and energy figures (kWh) of the report."""
    stats = r.stats
    checked = stats["twin_checked"]
    return {
        "grid": o.grid,
        "participants": len(r.comm.ids),
        "prosumers_with_pv": int((r.comm.pv_kwp > 0).sum()),
        "thieves": int(np.count_nonzero(r.comm.thief)),
        "hours": o.hours,
        "intervals": T,
        "pricing": r.cfg.pricing,
        "grid_aware": bool(o.grid_aware),
        "twin_base": r.twin is not None and o.grid_aware,
        "orders": stats["orders"],
        "refused_orders": stats["refused_orders"],
        "trades": stats["trades"],
        "auction_kwh": stats["auction_wh"] / 1000,
        "traded_kwh": stats["traded_wh"] / 1000,
        "curtailed_kwh": stats["curtailed_wh"] / 1000,
        "twin_check": {
            "intervals": checked,
            "violations_caused_by_trades": stats["twin_violations"],
            "vmin_pu_after_trades": stats["twin_vmin_after"] if checked else None,
            "max_loading_pct_after_trades": stats["twin_loading_after"] if checked else None,
        },
        "intervals_with_grid_curtailment": stats["lp_intervals"],
        "binding_constraints": sorted(r.binding)[:20],
        "delivered_kwh": stats["delivered_wh"] / 1000,
        "shortfall_kwh": stats["shortfall_wh"] / 1000,
        "refused_meter_readings": stats["refused_readings"],
    }


def _money_report(r: _Run) -> dict[str, Any]:
    """The run's money figures (EUR) and the local energy share of the report."""
    ids, m = r.comm.ids, r.market
    cost_market = {pid: -m.balances_ueur.get(pid, 0) for pid in ids}
    thief_ids = [ids[i] for i in np.flatnonzero(r.comm.thief)]
    thief_paid = sum(
        e["amount_ueur"]
        for pid in thief_ids
        for e in m.audit.get(pid, [])
        if e["event"] == "payment" and e["reason"] == "contract" and e["amount_ueur"] > 0
    )
    total_import = sum(r.imp_tot.values())
    return {
        "import_kwh": total_import / 1000,
        "export_kwh": sum(r.exp_tot.values()) / 1000,
        "local_energy_share": r.stats["delivered_wh"] / total_import if total_import else 0.0,
        "cost_grid_only_eur": sum(r.grid_only.values()) / 1e6,
        "cost_with_market_eur": sum(cost_market.values()) / 1e6,
        "money_saved_eur": (sum(r.grid_only.values()) - sum(cost_market.values())) / 1e6,
        "grid_revenue_eur": m.balances_ueur.get(GRID, 0) / 1e6,
        "network_fees_eur": -_paid_ueur(r, ids, "network_fee") / 1e6,
        "thieves_paid_eur": thief_paid / 1e6,
        "balances_sum_ueur": int(sum(m.balances_ueur.values())),
    }


def run_simulation(o: SimulationOptions) -> dict[str, Any]:
    """Run the market as :func:`simulate` does with the settings ``o``; returns the same report."""
    _check_options(o)
    r = _start(o)
    T = len(r.shapes.res)
    steps: Iterable[int] = range(T)
    if o.progress:
        from rich.progress import track

        steps = track(range(T), description="market", transient=True)
    t_run = time.perf_counter()
    for t in steps:
        _step(r, t)
    run_s = time.perf_counter() - t_run
    v = r.ledger.verify()
    report = {
        **_energy_report(r, o, T),
        **_money_report(r),
        "clear_ms_mean": float(np.mean(r.clear_ms)),
        "clear_ms_max": float(np.max(r.clear_ms)),
        "run_s": run_s,
        "series": r.series,
        "ledger": {
            "path": str(o.ledger_path) if o.ledger_path else None,
            "blocks": v.blocks,
            "txs": v.txs,
            "verify_ok": v.ok,
            "verify_s": v.seconds,
            "head": v.head_hash,
        },
    }
    r.ledger.close()
    return report


def simulate(  # noqa: PLR0913
    grid: str = "case33bw",
    participants: int = 50,
    hours: float = 24.0,
    seed: int = 0,
    ledger_path: str | Path | None = None,
    config: MarketConfig | None = None,
    theft_share: float = 0.05,
    grid_aware: bool = True,
    start: str = "2025-06-21",
    start_hour: float = 8.0,
    progress: bool = False,
) -> dict[str, Any]:
    """Run the market for ``hours`` on grid ``grid`` with ``participants`` generated
    prosumers and consumers; returns a JSON-ready report (energy in kWh, money in EUR,
    times in ms).

    ``ledger_path``: SQLite file for the ledger (must not exist yet; None keeps it in
    memory); ``theft_share``: share of PV owners that offer energy but export nothing and
    try a forged meter reading; ``grid_aware``: check trades against the grid (twin base
    point per interval plus linear sensitivities); ``start``/``start_hour``: the simulated
    day (midnight) and the hour the run begins. The same as :func:`run_simulation` with a
    :class:`SimulationOptions`.
    """
    return run_simulation(
        SimulationOptions(
            grid,
            participants,
            hours,
            seed,
            ledger_path,
            config,
            theft_share,
            grid_aware,
            start,
            start_hour,
            progress,
        )
    )


def _twin_check(r: _Run, base: Any, cl: Any) -> None:
    """Run the twin (AC) with the cleared transfers applied as load changes at the traders'
    buses; count intervals where trades push a voltage or a loading past the limits (or
    further past them than the base point already was)."""
    g, stats, bus_of, lim = r.g, r.stats, r.comm.bus_of, r.limits
    load_bus = np.asarray(g.load["bus"], np.int64)
    first = {int(b): i for i, b in reversed(list(enumerate(load_bus.tolist())))}
    c = cl.contracts
    mw = c.qty_wh / 1e6 / r.h
    delta = np.zeros(len(load_bus))
    for s, b, x in zip(c.seller.tolist(), c.buyer.tolist(), mw.tolist(), strict=True):
        ks, kb = first.get(bus_of[s]), first.get(bus_of[b])
        if ks is None or kb is None:
            return
        delta[ks] -= x  # the seller injects: less load
        delta[kb] += x
    p0 = stats["_base_p"]
    q0 = stats["_base_q"]
    after = r.twin.powerflow(Injections(load_p_mw=p0 + delta, load_q_mvar=q0))
    stats["twin_checked"] += 1
    v_after = after.vmin_pu if after.converged else 0.0
    load_after = after.max_loading_pct if after.converged else float("inf")
    stats["twin_vmin_after"] = min(stats["twin_vmin_after"], v_after)
    stats["twin_loading_after"] = max(stats["twin_loading_after"], load_after)
    if (
        v_after < min(base.vmin_pu, lim.v_min_pu) - 1e-3
        or load_after > max(base.max_loading_pct, lim.loading_max_pct) + 0.5
        or (after.converged and after.vmax_pu > max(base.vmax_pu, lim.v_max_pu) + 1e-3)
    ):
        stats["twin_violations"] += 1
