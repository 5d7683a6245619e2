"""Double auction: volume, limits, quantities and energy balance, against a plain reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridpilot.errors import ValidationError
from gridpilot.market.clearing import clear


def reference_volume(
    bp: np.ndarray, bq: np.ndarray, op: np.ndarray, oq: np.ndarray, fee: float
) -> int:
    """Greedy matching in price-time priority, one order at a time (the textbook way)."""
    b = sorted(range(len(bp)), key=lambda i: (-bp[i], i))
    o = sorted(range(len(op)), key=lambda i: (op[i], i))
    bl, ol = [int(x) for x in bq], [int(x) for x in oq]
    i = j = vol = 0
    while i < len(b) and j < len(o):
        if bl[b[i]] == 0:
            i += 1
            continue
        if ol[o[j]] == 0:
            j += 1
            continue
        if bp[b[i]] - fee < op[o[j]] - 1e-12:  # equal prices trade (float noise aside)
            break
        q = min(bl[b[i]], ol[o[j]])
        vol += q
        bl[b[i]] -= q
        ol[o[j]] -= q
    return vol


prices = st.sampled_from([0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3])
side = st.lists(st.tuples(prices, st.integers(1, 5000)), max_size=25)


def _arrays(orders: list[tuple[float, int]]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([p for p, _ in orders], float), np.array([q for _, q in orders], np.int64)


@settings(max_examples=150, deadline=None)
@given(side, side, st.sampled_from(["uniform", "pay_as_bid"]), st.sampled_from([0.0, 0.01, 0.05]))
def test_single_zone_matches_reference_and_respects_limits(bids, offers, pricing, fee) -> None:
    bp, bq = _arrays(bids)
    op, oq = _arrays(offers)
    r = clear(bp, bq, op, oq, fee_intra_eur_per_kwh=fee, pricing=pricing)
    assert r.volume_wh == reference_volume(bp, bq, op, oq, fee)
    fb, fo = r.filled_bid_wh(bp.size), r.filled_offer_wh(op.size)
    assert fb.sum() == fo.sum() == r.qty_wh.sum()  # energy bought equals energy sold
    assert np.all(fb <= bq) and np.all(fo <= oq)  # never beyond the quantity
    assert np.all(r.qty_wh > 0)
    assert np.all(
        r.price_eur_per_kwh + r.fee_eur_per_kwh <= bp[r.bid_index] + 1e-12
    )  # buyer's limit
    assert np.all(r.price_eur_per_kwh >= op[r.offer_index] - 1e-12)  # seller's limit
    if pricing == "uniform" and len(r):
        assert np.ptp(r.price_eur_per_kwh) < 1e-12


@settings(max_examples=100, deadline=None)
@given(side, side, st.data())
def test_zones_two_stage(bids, offers, data) -> None:
    bp, bq = _arrays(bids)
    op, oq = _arrays(offers)
    bz = np.array(
        data.draw(st.lists(st.integers(0, 2), min_size=bp.size, max_size=bp.size)), np.int64
    )
    oz = np.array(
        data.draw(st.lists(st.integers(0, 2), min_size=op.size, max_size=op.size)), np.int64
    )
    r = clear(
        bp,
        bq,
        op,
        oq,
        bid_zone=bz,
        offer_zone=oz,
        fee_intra_eur_per_kwh=0.01,
        fee_inter_eur_per_kwh=0.04,
    )
    fb, fo = r.filled_bid_wh(bp.size), r.filled_offer_wh(op.size)
    assert fb.sum() == fo.sum()
    assert np.all(fb <= bq) and np.all(fo <= oq)
    assert np.all(r.price_eur_per_kwh + r.fee_eur_per_kwh <= bp[r.bid_index] + 1e-12)
    assert np.all(r.price_eur_per_kwh >= op[r.offer_index] - 1e-12)
    local = r.stage == 0
    assert np.all(bz[r.bid_index[local]] == oz[r.offer_index[local]])
    assert np.all(r.fee_eur_per_kwh[local] == 0.01) and np.all(r.fee_eur_per_kwh[~local] == 0.04)
    # after both stages no profitable cross-zone pair is left
    lb, lo = bq - fb, oq - fo
    if (lb > 0).any() and (lo > 0).any():
        assert bp[lb > 0].max() - 0.04 < op[lo > 0].min()


def test_known_uniform_price() -> None:
    r = clear(
        np.array([0.30, 0.20]),
        np.array([1000, 1000]),
        np.array([0.10, 0.25]),
        np.array([1500, 1000]),
    )
    assert (
        r.volume_wh == 1500
    )  # 1000 Wh to the 0.30 bid, 500 Wh to the 0.20 bid, all from the 0.10 offer
    assert np.allclose(r.price_eur_per_kwh, 0.15)  # midpoint of the marginal pair (0.20, 0.10)


def test_pay_as_bid_buyer_pays_its_bid() -> None:
    r = clear(
        np.array([0.30, 0.20]),
        np.array([1000, 1000]),
        np.array([0.10]),
        np.array([2000]),
        pricing="pay_as_bid",
    )
    assert sorted(r.price_eur_per_kwh.tolist()) == [0.20, 0.30]


def test_bad_input_is_named() -> None:
    with pytest.raises(ValidationError, match="bid_qty_wh"):
        clear(np.array([0.1]), np.array([-5]), np.array([0.1]), np.array([5]))
    with pytest.raises(ValidationError, match="pricing"):
        clear(np.array([0.1]), np.array([5]), np.array([0.1]), np.array([5]), pricing="vickrey")
    with pytest.raises(ValidationError, match="integer"):
        clear(np.array([0.1]), np.array([5.5]), np.array([0.1]), np.array([5]))


def test_large_book_clears() -> None:
    rng = np.random.default_rng(1)
    n = 20000
    bp, bq = rng.uniform(0.08, 0.3, n), rng.integers(1, 5000, n)
    op, oq = rng.uniform(0.08, 0.3, n), rng.integers(1, 5000, n)
    r = clear(bp, bq, op, oq)
    # the bound is the book itself (not a fresh random draw), and the volume is exact
    assert 0 < r.volume_wh < min(bq.sum(), oq.sum())
    assert r.volume_wh == reference_volume(bp, bq, op, oq, 0.0)
    assert r.filled_bid_wh(n).sum() == r.filled_offer_wh(n).sum() == r.volume_wh
    assert np.all(r.filled_bid_wh(n) <= bq) and np.all(r.filled_offer_wh(n) <= oq)


# bids 0.30 and 0.20 (1000 Wh each), offers 0.10 (1500 Wh) and 0.25 (1000 Wh), fee 0.01:
# 1000 Wh (0.30 bid, 0.10 offer) and 500 Wh (0.20 bid, 0.10 offer) trade; the marginal pair
# is (0.20, 0.10), whose surplus after the fee is 0.20 - 0.01 - 0.10 = 0.09 EUR/kWh.
K_CASES = {  # k -> (uniform price, pay-as-bid prices of the two pairs), worked by hand
    0.0: (0.10, (0.10, 0.10)),
    0.25: (0.1225, (0.1475, 0.1225)),  # 0.10 + 0.25 * 0.19, 0.10 + 0.25 * 0.09
    0.5: (0.145, (0.195, 0.145)),
    1.0: (0.19, (0.29, 0.19)),  # pay-as-bid at k = 1: the buyer pays its bid less the fee
}


@pytest.mark.parametrize("k", sorted(K_CASES))
def test_k_splits_the_surplus_from_the_offer_side(k: float) -> None:
    uniform, pab = K_CASES[k]
    args = (np.array([0.30, 0.20]), np.array([1000, 1000]))
    args += (np.array([0.10, 0.25]), np.array([1500, 1000]))
    r = clear(*args, fee_intra_eur_per_kwh=0.01, k=k)
    assert r.qty_wh.tolist() == [1000, 500]
    assert r.price_eur_per_kwh == pytest.approx([uniform, uniform], abs=1e-12)
    assert r.clearing_price[(0, 0)] == pytest.approx(uniform, abs=1e-12)
    r = clear(*args, fee_intra_eur_per_kwh=0.01, k=k, pricing="pay_as_bid")
    assert r.price_eur_per_kwh == pytest.approx(list(pab), abs=1e-12)


def test_k_outside_0_1_is_refused() -> None:
    for k in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValidationError, match="'k'"):
            clear(np.array([0.3]), np.array([5]), np.array([0.1]), np.array([5]), k=k)
