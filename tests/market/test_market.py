"""Order validation, settlement (money and energy conservation, theft), grid curtailment."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridpilot.errors import AuthError, UnknownComponentError, ValidationError
from gridpilot.market import KeyPair, Ledger, Market, MarketConfig, MeterReading, Order, Participant
from gridpilot.market.orders import GRID
from gridpilot.market.settlement import Contracts, settle_interval

KEYS = {n: KeyPair.from_name(n) for n in ("s1", "s2", "b1", "b2", "mallory")}
METERS = {n: KeyPair.from_name("meter/" + n) for n in KEYS}


def _market(**cfg: object) -> Market:
    m = Market(MarketConfig(**cfg), Ledger(operator=KeyPair.from_name("op")))  # type: ignore[arg-type]
    for n in ("s1", "s2", "b1", "b2"):
        m.register(Participant(n, KEYS[n].public_key, meter_key=METERS[n].public_key))
    return m


def _order(
    who: str,
    side: str,
    qty: int,
    price: float,
    nonce: int,
    interval: int = 5,
    key: str | None = None,
) -> Order:
    return Order(who, interval, side, qty, price, nonce).signed(KEYS[key or who])


def test_order_validation_errors_and_nothing_stored() -> None:
    m = _market()
    bad = [
        (
            Order("eve", 5, "buy", 100, 0.2, 1).signed(KEYS["mallory"]),
            UnknownComponentError,
            "participant",
        ),
        (_order("b1", "buy", 100, 0.2, 1, key="mallory"), AuthError, "bad signature"),
        (_order("b1", "buy", 0, 0.2, 1), ValidationError, "qty_wh"),
        (_order("b1", "buy", -3, 0.2, 1), ValidationError, "qty_wh"),
        (_order("b1", "buy", 100, 0.5, 1), ValidationError, "price_eur_per_kwh"),
        (_order("b1", "buy", 100, 0.01, 1), ValidationError, "price_eur_per_kwh"),
        (_order("b1", "hold", 100, 0.2, 1), ValidationError, "side"),
        (Order("b1", 5, "buy", 100, float("nan"), 1), ValidationError, "encoded"),
        (_order("b1", "buy", True, 0.2, 1), ValidationError, "qty_wh"),
    ]
    for o, err, text in bad:
        with pytest.raises(err, match=text):
            m.submit(o, now_s=0)
    # interval closed: the clock is past the gate
    with pytest.raises(ValidationError, match="interval closed"):
        m.submit(_order("b1", "buy", 100, 0.2, 1), now_s=5 * 900)
    assert not m._books.get(5) or not m._books[5].orders
    m.submit(_order("b1", "buy", 100, 0.2, 1), now_s=0)
    # a replayed order (same nonce, same bytes) and an older nonce are refused
    with pytest.raises(AuthError, match="replayed"):
        m.submit(_order("b1", "buy", 100, 0.2, 1), now_s=0)
    with pytest.raises(AuthError, match="replayed"):
        m.submit(_order("b1", "buy", 100, 0.2, 0, interval=6), now_s=0)
    # a tampered order (quantity changed after signing) is a forgery
    o = _order("b1", "buy", 100, 0.2, 2)
    forged = Order(
        o.participant, o.interval, o.side, 10_000, o.price_eur_per_kwh, o.nonce, o.signature
    )
    with pytest.raises(AuthError, match="bad signature"):
        m.submit(forged, now_s=0)
    with pytest.raises(ValidationError, match="already has a buy order"):
        m.submit(_order("b1", "sell", 100, 0.2, 3), now_s=0)
    assert len(m._books[5].orders) == 1
    m.clear_interval(5)
    with pytest.raises(ValidationError, match="interval closed"):
        m.submit(_order("b2", "buy", 100, 0.2, 1), now_s=0)


@pytest.mark.parametrize(
    ("pricing", "k", "expected"),
    [  # worked by hand: offer 0.10, bid 0.30, intra-zone fee 0.01 -> surplus 0.19 EUR/kWh
        ("uniform", 0.0, 0.10),
        ("uniform", 0.25, 0.1475),
        ("uniform", 1.0, 0.29),
        ("pay_as_bid", 0.0, 0.10),
        ("pay_as_bid", 0.25, 0.1475),
        ("pay_as_bid", None, 0.29),  # pay-as-bid's default k is 1
        ("uniform", None, 0.195),  # uniform's default k is 0.5
    ],
)
def test_market_config_k_sets_the_price(pricing: str, k: float | None, expected: float) -> None:
    m = _market(fee_intra_eur_per_kwh=0.01, pricing=pricing, k=k)
    m.submit(_order("s1", "sell", 1000, 0.10, 1), now_s=0)
    m.submit(_order("b1", "buy", 1000, 0.30, 1), now_s=0)
    cl = m.clear_interval(5)
    assert cl.trades.volume_wh == 1000
    assert float(cl.trades.price_eur_per_kwh[0]) == pytest.approx(expected, abs=1e-12)
    st_ = m.settle(5, _readings(5, {"s1": (1000, 0), "b1": (0, 1000)}))
    assert st_.balances()["s1"] == round(1000 * expected * 1000)  # the seller gets that price


def test_market_config_k_validated() -> None:
    for k in (-0.5, 2.0, float("nan")):
        with pytest.raises(ValidationError, match="'k'"):
            MarketConfig(k=k)


def test_submit_many_reports_each_order() -> None:
    m = _market()
    orders = [
        _order("s1", "sell", 500, 0.1, 1),
        _order("b1", "buy", 500, 0.2, 1, key="s1"),
        _order("s1", "sell", 500, 0.1, 1, interval=6),
        _order("b2", "buy", 500, 0.25, 1),
    ]
    errs = m.submit_many(orders, now_s=0)
    assert errs[0] is None and errs[3] is None
    assert isinstance(errs[1], AuthError) and isinstance(errs[2], AuthError)


def _readings(interval: int, values: dict[str, tuple[int, int]]) -> list[MeterReading]:
    return [MeterReading(p, interval, e, i).signed(METERS[p]) for p, (e, i) in values.items()]


def test_full_interval_delivery_theft_and_forgery() -> None:
    m = _market(fee_intra_eur_per_kwh=0.01)
    for o in [
        _order("s1", "sell", 1000, 0.10, 1),
        _order("s2", "sell", 1000, 0.10, 1),
        _order("b1", "buy", 1000, 0.30, 1),
        _order("b2", "buy", 1000, 0.30, 1),
    ]:
        m.submit(o, now_s=0)
    cl = m.clear_interval(5)
    assert cl.trades.volume_wh == 2000
    price = float(cl.trades.price_eur_per_kwh[0])
    assert price == pytest.approx(0.10 + 0.5 * (0.30 - 0.01 - 0.10))
    # s1 delivers and more, s2 (the thief) exports nothing and forges a reading with its order key
    readings = _readings(5, {"s1": (1500, 0), "b1": (0, 1000), "b2": (0, 1200)})
    readings.append(MeterReading("s2", 5, 1000, 0).signed(KEYS["s2"]))
    st_ = m.settle(5, readings)
    assert st_.refused_readings == ["s2"]
    bal = st_.balances()
    assert sum(bal.values()) == 0  # money is conserved with the grid as a participant
    paid_to_s2 = [p for p in st_.payments if p.payee == "s2"]
    assert paid_to_s2 == []  # the non-delivering seller is never paid
    assert bal["s2"] == -round(1000 * (0.30 - price) * 1000)  # it pays the replacement's extra cost
    # s1: 1000 Wh at the contract price plus 500 Wh oversupply at feed-in
    assert bal["s1"] == round(1000 * price * 1000) + round(500 * 0.08 * 1000)
    # b2 imported 200 Wh more than it bought: retail for those
    assert any(
        p.payer == "b2" and p.reason == "retail" and p.energy_wh == 200 for p in st_.payments
    )
    assert m.balances_ueur[GRID] == bal[GRID]
    assert any(e["reason"] == "shortfall" for e in m.audit["s2"] if e["event"] == "payment")
    m.seal()
    assert m.ledger.verify().ok
    kinds = {t.kind for _, t in m.ledger.transactions()}
    assert {"register", "order", "contract", "meter", "payment", "settlement"} <= kinds
    metered = sorted(t.payload()["participant"] for _, t in m.ledger.transactions("meter"))
    assert metered == ["b1", "b2", "s1"]  # the forged reading is not recorded as a meter reading
    with pytest.raises(ValidationError, match="already settled"):
        m.settle(5, readings)


names = ["s1", "s2", "b1", "b2"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["s1", "s2"]),
            st.sampled_from(["b1", "b2"]),
            st.integers(1, 3000),
            st.floats(0.08, 0.3),
            st.floats(0.0, 0.03),
        ),
        max_size=8,
    ),
    st.dictionaries(st.sampled_from(names), st.tuples(st.integers(0, 5000), st.integers(0, 5000))),
)
def test_settlement_conserves_money_and_energy(trades, meters) -> None:
    n = len(trades)
    c = Contracts(
        3,
        np.arange(n),
        np.array([t[0] for t in trades], dtype=object),
        np.array([t[1] for t in trades], dtype=object),
        np.array([t[2] for t in trades], np.int64),
        np.array([t[3] for t in trades], float),
        np.array([t[4] for t in trades], float),
    )
    parts = {p: Participant(p, KEYS[p].public_key, meter_key=METERS[p].public_key) for p in names}
    st_ = settle_interval(c, _readings(3, meters), parts, 0.30, 0.08)
    assert sum(st_.balances().values()) == 0
    assert np.all(st_.delivered_wh + st_.shortfall_wh == c.qty_wh)
    assert np.all(st_.delivered_wh >= 0) and np.all(st_.shortfall_wh >= 0)
    for s in ("s1", "s2"):
        sold = int(c.qty_wh[c.seller == s].sum())
        delivered = int(st_.delivered_wh[c.seller == s].sum())
        assert delivered <= min(sold, meters.get(s, (0, 0))[0])
        if meters.get(s, (0, 0))[0] == 0:
            assert not any(p.payee == s for p in st_.payments)
    # energy at contract price: paid by buyers == received by sellers
    got = sum(p.energy_wh for p in st_.payments if p.reason == "contract")
    assert got == int(st_.delivered_wh.sum())
    assert all(p.amount_ueur > 0 for p in st_.payments)


def test_grid_curtails_trades_that_break_limits() -> None:
    from gridpilot.market.network import GridSensitivity
    from gridpilot.model import load_grid

    g = load_grid("case33bw")
    sens = GridSensitivity.from_grid(
        g, load_p_mw=g.load["p_mw"] * 0.3, load_q_mvar=g.load["q_mvar"] * 0.3
    )
    m = Market(MarketConfig(), Ledger(operator=KeyPair.from_name("op")), sens)
    # a big seller at the substation end, a big buyer at the feeder's far end (bus 18)
    m.register(Participant("s1", KEYS["s1"].public_key, bus=2))
    m.register(Participant("b1", KEYS["b1"].public_key, bus=18))
    with pytest.raises(UnknownComponentError, match="bus"):
        m.register(Participant("b2", KEYS["b2"].public_key, bus=999))
    m.submit(_order("s1", "sell", 2_000_000, 0.1, 1), now_s=0)  # 2 MWh in 15 min = 8 MW
    m.submit(_order("b1", "buy", 2_000_000, 0.3, 1), now_s=0)
    cl = m.clear_interval(5)
    assert cl.auction.volume_wh == 2_000_000
    assert 0 < cl.trades.volume_wh < cl.auction.volume_wh
    assert cl.report["lp"] and cl.report["binding"]
    x_mw = cl.trades.volume_wh / 1e6 * 4
    s, b = sens.bus_positions(np.array([2, 18]))
    v_after = sens.v0_pu + (sens.dv_dp[:, s] - sens.dv_dp[:, b]) * x_mw
    assert v_after.min() >= sens.v_min_pu - 1e-6
    flow = sens.p0_mw + (sens.ptdf[:, s] - sens.ptdf[:, b]) * x_mw
    assert np.all(np.abs(flow) <= sens.p_max_mw + 1e-6)


def test_sensitivities_match_the_twin() -> None:
    twin_mod = pytest.importorskip("gridpilot.twin")
    from gridpilot.market.network import GridSensitivity
    from gridpilot.model import load_grid

    g = load_grid("case33bw")
    twin = twin_mod.Twin(g)
    base = twin.powerflow()
    sens = GridSensitivity.from_grid(g, base=base)
    k = int(np.flatnonzero(g.load["bus"] == 18)[0])
    lp = g.load["p_mw"].copy()
    lp[k] -= 0.05  # 50 kW less load = 50 kW injected at bus 18
    after = twin.powerflow(twin_mod.Injections(load_p_mw=lp))
    j = int(sens.bus_positions(np.array([18]))[0])
    dv_twin = after.v_pu - base.v_pu
    dv_lin = sens.dv_dp[:, j] * 0.05
    assert np.allclose(dv_lin, dv_twin, rtol=0.2, atol=2e-4)
    assert np.allclose(sens.p0_mw[0], base.line_p_from_mw[0])


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(names), st.integers(1, 4000), st.floats(0.08, 0.3)),
        min_size=1,
        max_size=10,
    ),
    st.dictionaries(st.sampled_from(names), st.tuples(st.integers(0, 4000), st.integers(0, 4000))),
    st.sampled_from(["uniform", "pay_as_bid"]),
)
def test_market_pipeline_balances(orders, meters, pricing) -> None:
    m = _market(pricing=pricing)
    nonce = dict.fromkeys(names, 0)
    for who, qty, price in orders:
        nonce[who] += 1
        side = "sell" if who.startswith("s") else "buy"
        m.submit(_order(who, side, qty, round(price, 4), nonce[who]), now_s=0)
    cl = m.clear_interval(5)
    c = cl.contracts
    sold = {s: int(c.qty_wh[c.seller == s].sum()) for s in ("s1", "s2")}
    bought = {b: int(c.qty_wh[c.buyer == b].sum()) for b in ("b1", "b2")}
    assert sum(sold.values()) == sum(bought.values())  # energy bought equals energy sold
    for who in names:  # nobody trades beyond what it ordered or its limit
        mine = [(q, p) for w, q, p in orders if w == who]
        traded = sold.get(who, 0) + bought.get(who, 0)
        assert traded <= sum(q for q, _ in mine)
    limit_b = {
        w: max(round(p, 4) for x, _, p in orders if x == w)
        for w in ("b1", "b2")
        if any(x == w for x, _, _ in orders)
    }
    for b, p, f in zip(c.buyer, c.price_eur_per_kwh, c.fee_eur_per_kwh, strict=True):
        assert p + f <= limit_b[b] + 1e-12
    st_ = m.settle(5, _readings(5, meters))
    assert sum(m.balances_ueur.values()) == 0  # money conserved with the grid as a participant
    for s in ("s1", "s2"):
        if meters.get(s, (0, 0))[0] == 0:
            assert all(p.payee != s for p in st_.payments)  # no export, never paid


def test_curtailed_trade_holds_in_the_twin() -> None:
    twin_mod = pytest.importorskip("gridpilot.twin")
    from gridpilot.market.network import GridSensitivity
    from gridpilot.model import load_grid

    g = load_grid("case33bw")
    lp, lq = g.load["p_mw"] * 0.3, g.load["q_mvar"] * 0.3
    twin = twin_mod.Twin(g)
    base = twin.powerflow(twin_mod.Injections(load_p_mw=lp, load_q_mvar=lq))
    sens = GridSensitivity.from_grid(g, base=base)
    m = Market(MarketConfig(), Ledger(operator=KeyPair.from_name("op")), sens)
    m.register(Participant("s1", KEYS["s1"].public_key, bus=2))
    m.register(Participant("b1", KEYS["b1"].public_key, bus=18))
    m.submit(_order("s1", "sell", 2_000_000, 0.1, 1), now_s=0)
    m.submit(_order("b1", "buy", 2_000_000, 0.3, 1), now_s=0)
    cl = m.clear_interval(5)
    x_mw = cl.trades.volume_wh / 1e6 * 4
    after = lp.copy()
    after[int(np.flatnonzero(g.load["bus"] == 2)[0])] -= x_mw  # seller injects
    after[int(np.flatnonzero(g.load["bus"] == 18)[0])] += x_mw  # buyer withdraws
    res = twin.powerflow(twin_mod.Injections(load_p_mw=after, load_q_mvar=lq))
    assert res.converged
    assert res.vmin_pu >= sens.v_min_pu - 0.005  # linearisation error stays small
    full = lp.copy()
    full[int(np.flatnonzero(g.load["bus"] == 2)[0])] -= 8.0
    full[int(np.flatnonzero(g.load["bus"] == 18)[0])] += 8.0
    broken = twin.powerflow(
        twin_mod.Injections(load_p_mw=full, load_q_mvar=lq)
    )  # uncurtailed: collapse or out of band
    assert not broken.converged or broken.vmin_pu < sens.v_min_pu
