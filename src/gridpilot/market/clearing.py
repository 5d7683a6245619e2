"""Vectorised periodic double auction: uniform clearing price or pay-as-bid.

Quantities are integer watt-hours (``int64``) so that energy balances exactly; prices are
EUR/kWh (``float64``). The auction works on whole columns: bids are sorted by price
(descending, time priority on ties) and offers by price (ascending), both sides are laid on
one quantity axis (cumulative sums), and every segment between two consecutive breakpoints
of either side is one trade between exactly one bid and one offer. A segment trades when the
bid price, less the network fee, is at least the offer price; demand falls and supply rises
along the axis, so the traded segments form a prefix. No Python loop runs per order.

Zones: with ``bid_zone``/``offer_zone`` the auction first clears each zone on its own with
the intra-zone fee (every zone occupies its own stretch of the quantity axis, so one pass
clears all zones), then clears what is left across zones with the inter-zone fee.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridpilot.errors import Issue, ValidationError

PRICINGS = ("uniform", "pay_as_bid")


@dataclass(frozen=True)
class ClearingResult:
    """Trades of one auction, one row per matched (bid, offer) segment.

    ``bid_index``/``offer_index``: positions into the bid and offer arrays given to
    :func:`clear`; ``qty_wh``: energy traded (Wh, > 0); ``price_eur_per_kwh``: what the seller
    receives; ``fee_eur_per_kwh``: network fee the buyer pays on top (the buyer pays
    ``price + fee``); ``stage``: 0 cleared inside a zone, 1 across zones; ``zone``: the zone of
    a stage-0 trade (-1 for stage 1). ``clearing_price`` maps ``(stage, zone)`` to the uniform
    price of that sub-auction (empty for pay-as-bid).
    """

    bid_index: np.ndarray
    offer_index: np.ndarray
    qty_wh: np.ndarray
    price_eur_per_kwh: np.ndarray
    fee_eur_per_kwh: np.ndarray
    stage: np.ndarray
    zone: np.ndarray
    clearing_price: dict[tuple[int, int], float]

    def __len__(self) -> int:
        return int(self.qty_wh.size)

    @property
    def volume_wh(self) -> int:
        """Total traded energy, Wh."""
        return int(self.qty_wh.sum())

    def buyer_cost_ueur(self) -> np.ndarray:
        """What each trade costs its buyer including the network fee, micro-EUR (int64)."""
        return np.rint(
            self.qty_wh * (self.price_eur_per_kwh + self.fee_eur_per_kwh) * 1000.0
        ).astype(np.int64)

    def filled_bid_wh(self, n_bids: int) -> np.ndarray:
        """Energy bought per bid (Wh), length ``n_bids``."""
        return np.bincount(self.bid_index, weights=self.qty_wh, minlength=n_bids).astype(np.int64)

    def filled_offer_wh(self, n_offers: int) -> np.ndarray:
        """Energy sold per offer (Wh), length ``n_offers``."""
        return np.bincount(self.offer_index, weights=self.qty_wh, minlength=n_offers).astype(
            np.int64
        )

    def scaled(self, factor: np.ndarray) -> ClearingResult:
        """The same trades with quantities multiplied by ``factor`` (0..1, rounded down to Wh);
        trades that fall to 0 Wh are dropped. Used for grid curtailment."""
        q = np.floor(self.qty_wh * np.clip(factor, 0.0, 1.0) + 1e-9).astype(np.int64)
        keep = q > 0
        return ClearingResult(
            self.bid_index[keep],
            self.offer_index[keep],
            q[keep],
            self.price_eur_per_kwh[keep],
            self.fee_eur_per_kwh[keep],
            self.stage[keep],
            self.zone[keep],
            dict(self.clearing_price),
        )


def _empty() -> ClearingResult:
    z = np.zeros(0, np.int64)
    return ClearingResult(
        z, z.copy(), z.copy(), np.zeros(0), np.zeros(0), np.zeros(0, np.int8), z.copy(), {}
    )


@dataclass(frozen=True)
class _Side:
    """One side of the book: limit prices EUR/kWh, quantities Wh (int64), zone numbers."""

    price: np.ndarray
    qty: np.ndarray
    zone: np.ndarray


@dataclass(frozen=True)
class _Pass:
    """One clearing pass: network fee EUR/kWh, pricing rule, split ``k`` and stage number."""

    fee: float
    pricing: str
    k: float
    stage: int


def _axis_ends(qs: np.ndarray, zi: np.ndarray, tot: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Global axis end of each sorted order: its zone's base + cumulative quantity inside its zone."""
    end = np.cumsum(qs)
    return end - np.concatenate([[0], np.cumsum(tot)[:-1]])[zi] + base[zi]


def _prices(
    b_px: np.ndarray, o_px: np.ndarray, zone_of: np.ndarray, n_zones: int, ps: _Pass
) -> tuple[np.ndarray, np.ndarray]:
    """Each matched segment's price EUR/kWh, and per zone the uniform price (NaN where none; pay-as-bid: empty)."""
    if ps.pricing != "uniform":
        return o_px + ps.k * (b_px - ps.fee - o_px), np.zeros(0)
    # marginal (last traded) pair per zone sets the zone's price: every matched bid is at
    # least the marginal bid, every matched offer at most the marginal offer
    last = np.zeros(n_zones, np.int64) - 1
    np.maximum.at(last, zone_of, np.arange(zone_of.size))
    has = last >= 0
    zp = np.full(n_zones, np.nan)
    mb, mo = b_px[last[has]], o_px[last[has]]
    zp[has] = mo + ps.k * (mb - ps.fee - mo)
    return zp[zone_of], zp


def _match(bids: _Side, offers: _Side, ps: _Pass) -> ClearingResult:
    """One pass: clear every zone (group) separately with network fee ``ps.fee``."""
    bp, op = bids.price, offers.price
    b_live = np.flatnonzero(bids.qty > 0)
    o_live = np.flatnonzero(offers.qty > 0)
    if b_live.size == 0 or o_live.size == 0:
        return _empty()
    # sort: zone, then price (bids high first, offers low first); lexsort is stable -> time priority
    b_ord = b_live[np.lexsort((-bp[b_live], bids.zone[b_live]))]
    o_ord = o_live[np.lexsort((op[o_live], offers.zone[o_live]))]
    bqs, oqs = bids.qty[b_ord], offers.qty[o_ord]
    zones, inv = np.unique(
        np.concatenate([bids.zone[b_ord], offers.zone[o_ord]]), return_inverse=True
    )
    bzi, ozi = inv[: b_ord.size], inv[b_ord.size :]
    tb = np.bincount(bzi, weights=bqs, minlength=zones.size).astype(np.int64)
    to = np.bincount(ozi, weights=oqs, minlength=zones.size).astype(np.int64)
    base = np.concatenate([[0], np.cumsum(np.maximum(tb, to))[:-1]]).astype(np.int64)
    b_end, o_end = _axis_ends(bqs, bzi, tb, base), _axis_ends(oqs, ozi, to, base)
    b_start, o_start = b_end - bqs, o_end - oqs
    pts = np.unique(np.concatenate([b_start, b_end, o_start, o_end]))
    lo, hi = pts[:-1], pts[1:]
    bi = np.searchsorted(b_end, hi, side="left")
    oi = np.searchsorted(o_end, hi, side="left")
    ok = (bi < b_ord.size) & (oi < o_ord.size)
    bi_c = np.minimum(bi, b_ord.size - 1)
    oi_c = np.minimum(oi, o_ord.size - 1)
    ok &= (b_start[bi_c] <= lo) & (o_start[oi_c] <= lo)
    bprice = bp[b_ord[bi_c]]
    oprice = op[o_ord[oi_c]]
    ok &= bprice - ps.fee >= oprice - 1e-12
    if not ok.any():
        return _empty()
    seg = np.flatnonzero(ok)
    bsel, osel = bi_c[seg], oi_c[seg]
    zone_of = bzi[bsel]
    price, zp = _prices(bprice[seg], oprice[seg], zone_of, zones.size, ps)
    cp: dict[tuple[int, int], float] = {}
    if zp.size:
        has = ~np.isnan(zp)
        for z, p in zip(zones[has], zp[has], strict=True):
            cp[(ps.stage, int(z))] = float(p)
    n = seg.size
    return ClearingResult(
        b_ord[bsel].astype(np.int64),
        o_ord[osel].astype(np.int64),
        (hi[seg] - lo[seg]).astype(np.int64),
        price.astype(np.float64),
        np.full(n, float(ps.fee)),
        np.full(n, ps.stage, np.int8),
        zones[zone_of].astype(np.int64) if ps.stage == 0 else np.full(n, -1, np.int64),
        cp,
    )


def _concat(a: ClearingResult, b: ClearingResult) -> ClearingResult:
    """The trades of ``a`` then ``b`` (clearing prices merged)."""

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(a, name), getattr(b, name)])

    return ClearingResult(
        cat("bid_index"),
        cat("offer_index"),
        cat("qty_wh"),
        cat("price_eur_per_kwh"),
        cat("fee_eur_per_kwh"),
        cat("stage"),
        cat("zone"),
        {**a.clearing_price, **b.clearing_price},
    )


def _book_issues(bp: np.ndarray, bq: np.ndarray, op: np.ndarray, oq: np.ndarray) -> list[Issue]:
    """Every malformed bid or offer column (shapes, integer non-negative Wh, finite prices)."""
    issues: list[Issue] = []
    if bp.shape != bq.shape or bp.ndim != 1:
        issues.append(
            Issue("auction", "bid_qty_wh", f"shape {bq.shape} does not match bid_price {bp.shape}")
        )
    if op.shape != oq.shape or op.ndim != 1:
        issues.append(
            Issue(
                "auction", "offer_qty_wh", f"shape {oq.shape} does not match offer_price {op.shape}"
            )
        )
    for name, arr in (("bid_qty_wh", bq), ("offer_qty_wh", oq)):
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            issues.append(Issue("auction", name, "must be integer Wh", value=str(arr.dtype)))
        elif arr.size and arr.min() < 0:
            issues.append(Issue("auction", name, "must not be negative", value=int(arr.min())))
    for name, arr in (("bid_price", bp), ("offer_price", op)):
        if arr.size and not np.all(np.isfinite(arr)):
            issues.append(Issue("auction", name, "must be finite"))
    return issues


def _terms_issues(k: float, fee_intra: float, fee_inter: float) -> list[Issue]:
    """``k`` outside 0..1 or a negative network fee."""
    issues: list[Issue] = []
    if not 0.0 <= k <= 1.0:
        issues.append(Issue("auction", "k", "must be within 0..1", value=k))
    if fee_intra < 0 or fee_inter < 0:
        issues.append(Issue("auction", "fee", "network fees must not be negative"))
    return issues


def clear(  # noqa: PLR0913
    bid_price: np.ndarray,
    bid_qty_wh: np.ndarray,
    offer_price: np.ndarray,
    offer_qty_wh: np.ndarray,
    *,
    bid_zone: np.ndarray | None = None,
    offer_zone: np.ndarray | None = None,
    fee_intra_eur_per_kwh: float = 0.0,
    fee_inter_eur_per_kwh: float = 0.0,
    pricing: str = "uniform",
    k: float | None = None,
) -> ClearingResult:
    """Clear one delivery interval's bids and offers.

    ``bid_price``/``offer_price``: limit prices, EUR/kWh (a buyer pays at most its bid
    including the network fee; a seller receives at least its offer); ``*_qty_wh``: integer
    Wh (> 0; zero rows are ignored); arrays are in submission order, which breaks price ties.
    ``bid_zone``/``offer_zone``: zone numbers for two-stage local-first clearing (``None``:
    one zone, only the intra-zone fee applies). ``pricing``: ``"uniform"`` (one price per
    sub-auction, set by the marginal pair at ``offer + k (bid - fee - offer)``, default
    ``k = 0.5``) or ``"pay_as_bid"`` (each pair at ``offer + k (bid - fee - offer)``, default
    ``k = 1``: the buyer pays exactly its bid). Returns a :class:`ClearingResult`.
    """
    bp = np.asarray(bid_price, np.float64)
    op = np.asarray(offer_price, np.float64)
    bq = np.asarray(bid_qty_wh)
    oq = np.asarray(offer_qty_wh)
    issues: list[Issue] = []
    if pricing not in PRICINGS:
        issues.append(Issue("auction", "pricing", f"must be one of {PRICINGS}", value=pricing))
    issues += _book_issues(bp, bq, op, oq)
    kk = (0.5 if pricing == "uniform" else 1.0) if k is None else float(k)
    issues += _terms_issues(kk, fee_intra_eur_per_kwh, fee_inter_eur_per_kwh)
    if issues:
        raise ValidationError(issues=issues)
    bq = bq.astype(np.int64)
    oq = oq.astype(np.int64)
    one_zone = bid_zone is None and offer_zone is None
    bz = np.zeros(bp.size, np.int64) if bid_zone is None else np.asarray(bid_zone, np.int64)
    oz = np.zeros(op.size, np.int64) if offer_zone is None else np.asarray(offer_zone, np.int64)
    if bz.shape != bp.shape or oz.shape != op.shape:
        raise ValidationError(
            issues=[Issue("auction", "zone", "zone arrays must match the order arrays")]
        )
    first = _match(
        _Side(bp, bq, bz), _Side(op, oq, oz), _Pass(float(fee_intra_eur_per_kwh), pricing, kk, 0)
    )
    if one_zone:
        return first
    bq_left = bq - first.filled_bid_wh(bp.size)
    oq_left = oq - first.filled_offer_wh(op.size)
    second = _match(
        _Side(bp, bq_left, np.zeros_like(bz)),
        _Side(op, oq_left, np.zeros_like(oz)),
        _Pass(float(fee_inter_eur_per_kwh), pricing, kk, 1),
    )
    return _concat(first, second)
