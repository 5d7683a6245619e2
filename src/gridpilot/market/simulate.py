"""A simulated community market on a built-in grid: generated prosumers (PV and load
profiles), signed orders every 15 minutes, grid-aware clearing, signed meter readings with
forecast errors and a few thieves, settlement, and the ledger.

The community's benefit is measured against everyone trading only with the grid (imports at
the retail price, exports at the feed-in price) on the same metered energy.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from gridpilot.errors import GridpilotError, Issue, ValidationError
from gridpilot.market.crypto import KeyPair
from gridpilot.market.ledger import Ledger
from gridpilot.market.market import Market, MarketConfig
from gridpilot.market.network import GridSensitivity
from gridpilot.market.orders import GRID, MeterReading, Order, Participant
from gridpilot.market.settlement import grid_only_cost_ueur


def simulate(
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
    day (midnight) and the hour the run begins.
    """
    from gridpilot.model import default_profiles, load_grid

    if participants < 2:
        raise ValidationError(
            issues=[Issue("simulate", "participants", "need at least 2", value=participants)]
        )
    if hours <= 0:
        raise ValidationError(issues=[Issue("simulate", "hours", "must be positive", value=hours)])
    if ledger_path is not None and Path(ledger_path).exists():
        raise ValidationError(
            issues=[
                Issue(
                    "simulate",
                    "ledger",
                    "file exists; choose a new path (a ledger is never overwritten)",
                    value=str(ledger_path),
                )
            ]
        )
    cfg = config or MarketConfig()
    g = load_grid(grid)
    rng = np.random.default_rng(seed)
    steps_per_h = 3600 // cfg.interval_s
    T = max(1, round(hours * steps_per_h))
    # the default shapes are generated from midnight (their hour of day counts from the start)
    off = round(start_hour * steps_per_h)
    prof = default_profiles(
        steps=max(off + T, 24 * steps_per_h), start=start, step_s=cfg.interval_s, seed=seed + 7
    )
    res_shape = prof.values[off : off + T, prof.names.index("residential")]
    pv_shape = prof.values[off : off + T, prof.names.index("pv")]

    twin = None
    sens0 = GridSensitivity.from_grid(g) if grid_aware else None
    try:  # the twin gives the base point per interval and checks the trades afterwards (AC)
        from gridpilot.twin import Twin

        twin = Twin(g)
    except (ImportError, GridpilotError):  # optional: linearised DistFlow base otherwise
        twin = None
    operator = KeyPair.from_name(f"operator/{seed}")
    ledger = (
        Ledger.open(ledger_path, operator) if ledger_path is not None else Ledger(operator=operator)
    )
    market = Market(cfg, ledger, sens0)

    load_buses = np.asarray(g.load["bus"], np.int64)
    n = int(participants)
    ids = [f"p{i:04d}" for i in range(n)]
    keys = [KeyPair.from_name(f"{seed}/{pid}") for pid in ids]
    meters = [KeyPair.from_name(f"{seed}/meter/{pid}") for pid in ids]
    bus = rng.choice(load_buses, n)
    load_kw = rng.uniform(0.4, 1.2, n)  # mean household demand
    pv_kwp = np.where(rng.random(n) < 0.55, rng.uniform(3.0, 10.0, n), 0.0)
    thief = (pv_kwp > 0) & (rng.random(n) < theft_share)
    bus_of = dict(zip(ids, bus.tolist(), strict=True))
    for pid, k, m, b in zip(ids, keys, meters, bus, strict=True):
        market.register(Participant(pid, k.public_key, int(b), m.public_key))
    market.seal(time_ns=0)

    spread = cfg.retail_eur_per_kwh - cfg.feed_in_eur_per_kwh
    h = cfg.interval_s / 3600.0
    nonce = np.zeros(n, np.int64)
    exp_tot: dict[str, int] = {}
    imp_tot: dict[str, int] = {}
    grid_only: dict[str, int] = dict.fromkeys(ids, 0)
    stats: dict[str, Any] = {
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
    clear_ms: list[float] = []
    series: list[dict[str, Any]] = []
    binding: set[str] = set()
    steps: Iterable[int] = range(T)
    if progress:
        from rich.progress import track

        steps = track(range(T), description="market", transient=True)
    t_run = time.perf_counter()
    for t in steps:
        shape_l = res_shape[t] * rng.lognormal(0.0, 0.25, n) * 1.6
        true_kw = pv_kwp * pv_shape[t] * rng.uniform(0.85, 1.0, n) - load_kw * shape_l
        fc_kw = true_kw * rng.normal(1.0, 0.08, n)
        fc_wh = np.rint(fc_kw * h * 1000).astype(np.int64)
        orders: list[Order] = []
        for i in np.flatnonzero(np.abs(fc_wh) >= 20):
            sell = fc_wh[i] > 0
            price = (
                cfg.feed_in_eur_per_kwh + rng.uniform(0.0, 0.6) * spread
                if sell
                else cfg.feed_in_eur_per_kwh + rng.uniform(0.3, 1.0) * spread
            )
            nonce[i] += 1
            o = Order(
                ids[i],
                t,
                "sell" if sell else "buy",
                int(abs(fc_wh[i])),
                round(float(price), 4),
                int(nonce[i]),
            )
            orders.append(o.signed(keys[i]))
        errs = market.submit_many(orders, now_s=t * cfg.interval_s - 1)
        stats["orders"] += len(orders)
        stats["refused_orders"] += sum(e is not None for e in errs)
        sens = None
        base = None
        if twin is not None:
            stats["_base_p"] = g.load["p_mw"] * res_shape[t]
            stats["_base_q"] = g.load["q_mvar"] * res_shape[t]
            base = twin.powerflow(load_p_mw=stats["_base_p"], load_q_mvar=stats["_base_q"])
            sens = sens0.rebase(base) if sens0 is not None else None
        cl = market.clear_interval(t, sensitivity=sens)
        clear_ms.append(cl.clear_ms)
        stats["trades"] += len(cl.trades)
        stats["auction_wh"] += cl.auction.volume_wh
        stats["traded_wh"] += cl.trades.volume_wh
        stats["curtailed_wh"] += int(cl.report["curtailed_wh"])
        stats["lp_intervals"] += int(cl.report["lp"])
        binding.update(cl.report["binding"])
        if base is not None and len(cl.trades):
            _twin_check(g, twin, base, cl, bus_of, h, stats)
        true_wh = np.rint(true_kw * h * 1000).astype(np.int64)
        export = np.maximum(true_wh, 0)
        export[thief] = 0
        imp = np.maximum(-true_wh, 0)
        readings = []
        for i in range(n):
            r = MeterReading(ids[i], t, int(export[i]), int(imp[i]))
            if (
                thief[i] and fc_wh[i] > 0
            ):  # the thief claims its offer was exported, signing with the wrong key
                readings.append(MeterReading(ids[i], t, int(fc_wh[i]), 0).signed(keys[i]))
            else:
                readings.append(r.signed(meters[i]))
        st = market.settle(t, readings)
        stats["delivered_wh"] += int(st.delivered_wh.sum())
        stats["shortfall_wh"] += int(st.shortfall_wh.sum())
        stats["refused_readings"] += len(st.refused_readings)
        vol = cl.trades.volume_wh
        series.append(
            {
                "interval": t,
                "time": str(prof.index[off + t]),
                "price_eur_per_kwh": float(
                    (cl.trades.qty_wh * cl.trades.price_eur_per_kwh).sum() / vol
                )
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
            exp_tot[pid] = exp_tot.get(pid, 0) + int(export[i])
            imp_tot[pid] = imp_tot.get(pid, 0) + int(imp[i])
        for pid, c in grid_only_cost_ueur(
            dict(zip(ids, export.tolist(), strict=True)),
            dict(zip(ids, imp.tolist(), strict=True)),
            cfg.retail_eur_per_kwh,
            cfg.feed_in_eur_per_kwh,
        ).items():
            grid_only[pid] += c
        market.seal(time_ns=int((t + 1) * cfg.interval_s * 1e9))
    run_s = time.perf_counter() - t_run
    cost_market = {pid: -market.balances_ueur.get(pid, 0) for pid in ids}
    thief_ids = [ids[i] for i in np.flatnonzero(thief)]
    thief_paid = sum(
        e["amount_ueur"]
        for pid in thief_ids
        for e in market.audit.get(pid, [])
        if e["event"] == "payment" and e["reason"] == "contract" and e["amount_ueur"] > 0
    )
    total_import = sum(imp_tot.values())
    v = ledger.verify()
    balance_sum = sum(market.balances_ueur.values())
    report = {
        "grid": grid,
        "participants": n,
        "prosumers_with_pv": int((pv_kwp > 0).sum()),
        "thieves": len(thief_ids),
        "hours": hours,
        "intervals": T,
        "pricing": cfg.pricing,
        "grid_aware": bool(grid_aware),
        "twin_base": twin is not None and grid_aware,
        "orders": stats["orders"],
        "refused_orders": stats["refused_orders"],
        "trades": stats["trades"],
        "auction_kwh": stats["auction_wh"] / 1000,
        "traded_kwh": stats["traded_wh"] / 1000,
        "curtailed_kwh": stats["curtailed_wh"] / 1000,
        "twin_check": {
            "intervals": stats["twin_checked"],
            "violations_caused_by_trades": stats["twin_violations"],
            "vmin_pu_after_trades": stats["twin_vmin_after"] if stats["twin_checked"] else None,
            "max_loading_pct_after_trades": stats["twin_loading_after"]
            if stats["twin_checked"]
            else None,
        },
        "intervals_with_grid_curtailment": stats["lp_intervals"],
        "binding_constraints": sorted(binding)[:20],
        "delivered_kwh": stats["delivered_wh"] / 1000,
        "shortfall_kwh": stats["shortfall_wh"] / 1000,
        "refused_meter_readings": stats["refused_readings"],
        "import_kwh": total_import / 1000,
        "export_kwh": sum(exp_tot.values()) / 1000,
        "local_energy_share": stats["delivered_wh"] / total_import if total_import else 0.0,
        "cost_grid_only_eur": sum(grid_only.values()) / 1e6,
        "cost_with_market_eur": sum(cost_market.values()) / 1e6,
        "money_saved_eur": (sum(grid_only.values()) - sum(cost_market.values())) / 1e6,
        "grid_revenue_eur": market.balances_ueur.get(GRID, 0) / 1e6,
        "network_fees_eur": sum(
            -e["amount_ueur"]
            for pid in ids
            for e in market.audit.get(pid, [])
            if e["event"] == "payment" and e["reason"] == "network_fee"
        )
        / 1e6,
        "thieves_paid_eur": thief_paid / 1e6,
        "balances_sum_ueur": int(balance_sum),
        "clear_ms_mean": float(np.mean(clear_ms)),
        "clear_ms_max": float(np.max(clear_ms)),
        "run_s": run_s,
        "series": series,
        "ledger": {
            "path": str(ledger_path) if ledger_path else None,
            "blocks": v.blocks,
            "txs": v.txs,
            "verify_ok": v.ok,
            "verify_s": v.seconds,
            "head": v.head_hash,
        },
    }
    ledger.close()
    return report


def _twin_check(
    g: Any, twin: Any, base: Any, cl: Any, bus_of: dict[str, int], h: float, stats: dict[str, Any]
) -> None:
    """Run the twin (AC) with the cleared transfers applied as load changes at the traders'
    buses; count intervals where trades push a voltage or a loading past the limits (or
    further past them than the base point already was)."""
    load_bus = np.asarray(g.load["bus"], np.int64)
    first = {int(b): i for i, b in reversed(list(enumerate(load_bus.tolist())))}
    c = cl.contracts
    mw = c.qty_wh / 1e6 / h
    delta = np.zeros(len(load_bus))
    for s, b, x in zip(c.seller.tolist(), c.buyer.tolist(), mw.tolist(), strict=True):
        ks, kb = first.get(bus_of[s]), first.get(bus_of[b])
        if ks is None or kb is None:
            return
        delta[ks] -= x  # the seller injects: less load
        delta[kb] += x
    p0 = stats["_base_p"]
    q0 = stats["_base_q"]
    after = twin.powerflow(load_p_mw=p0 + delta, load_q_mvar=q0)
    stats["twin_checked"] += 1
    v_after = after.vmin_pu if after.converged else 0.0
    load_after = after.max_loading_pct if after.converged else float("inf")
    stats["twin_vmin_after"] = min(stats["twin_vmin_after"], v_after)
    stats["twin_loading_after"] = max(stats["twin_loading_after"], load_after)
    if (
        v_after < min(base.vmin_pu, 0.95) - 1e-3
        or load_after > max(base.max_loading_pct, 100.0) + 0.5
        or (after.converged and after.vmax_pu > max(base.vmax_pu, 1.05) + 1e-3)
    ):
        stats["twin_violations"] += 1
