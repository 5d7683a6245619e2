"""The local energy market: order intake, periodic clearing, contracts, settlement, ledger."""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridpilot.errors import (
    AuthError,
    GridpilotError,
    Issue,
    UnknownComponentError,
    ValidationError,
)
from gridpilot.market.clearing import PRICINGS, ClearingResult, clear
from gridpilot.market.crypto import KeyPair, verify_many, verify_signature
from gridpilot.market.ledger import BlockHeader, Ledger, Transaction
from gridpilot.market.network import GridSensitivity
from gridpilot.market.orders import SIDES, MeterReading, Order, Participant, ReadingVerifier
from gridpilot.market.settlement import Contracts, Settlement, settle_interval

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MarketConfig:
    """Market rules. Prices in EUR/kWh: every order's limit must lie in
    ``[feed_in, retail]`` (the local market sits between the grid's feed-in and retail
    prices). ``interval_s``: delivery interval length; orders for interval ``t`` (starting
    at ``t * interval_s`` seconds) are accepted until ``gate_closure_s`` before its start.
    Network fees: ``fee_intra`` inside a zone, ``fee_inter`` across zones. ``k`` in [0, 1]
    splits a pair's surplus: price = offer + k (bid - fee - offer), so 0 pays the seller its
    offer and 1 charges the buyer its bid; None: 0.5 for uniform, 1 for pay-as-bid."""

    interval_s: int = 900
    gate_closure_s: int = 0
    retail_eur_per_kwh: float = 0.30
    feed_in_eur_per_kwh: float = 0.08
    fee_intra_eur_per_kwh: float = 0.01
    fee_inter_eur_per_kwh: float = 0.03
    pricing: str = "uniform"
    k: float | None = None

    def __post_init__(self) -> None:
        issues = []
        if self.interval_s <= 0:
            issues.append(Issue("market", "interval_s", "must be positive", value=self.interval_s))
        if not 0 <= self.feed_in_eur_per_kwh < self.retail_eur_per_kwh:
            issues.append(
                Issue(
                    "market",
                    "feed_in_eur_per_kwh",
                    "must be >= 0 and below the retail price",
                    value=self.feed_in_eur_per_kwh,
                )
            )
        if self.pricing not in PRICINGS:
            issues.append(
                Issue("market", "pricing", f"must be one of {PRICINGS}", value=self.pricing)
            )
        if self.fee_intra_eur_per_kwh < 0 or self.fee_inter_eur_per_kwh < 0:
            issues.append(Issue("market", "fee", "network fees must not be negative"))
        if self.k is not None and not 0.0 <= self.k <= 1.0:
            issues.append(Issue("market", "k", "must be within 0..1 (or None)", value=self.k))
        if issues:
            raise ValidationError(issues=issues)


@dataclass
class IntervalClearing:
    """What clearing one interval produced: the raw auction (``auction``, before grid
    curtailment), the ``trades`` kept, the ``contracts``, the network ``report`` and the
    clearing time ``clear_ms``."""

    interval: int
    n_bids: int
    n_offers: int
    auction: ClearingResult
    trades: ClearingResult
    contracts: Contracts
    report: dict[str, Any]
    clear_ms: float


def _encoded(o: Order) -> bytes:
    """The order's signed bytes, or a :class:`ValidationError` when a field cannot be encoded."""
    try:
        return o.signing_bytes()
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValidationError(
            issues=[Issue("order", "fields", f"cannot be encoded ({exc})", ids=(o.participant,))]
        ) from None


@dataclass
class _Book:
    orders: list[Order] = field(default_factory=list)
    sides: dict[str, str] = field(default_factory=dict)


class Market:
    """A local energy market for prosumers and consumers.

    ``ledger``: where orders, contracts, meter readings and payments are recorded (default:
    an in-memory ledger signed by a fresh operator key); ``sensitivity``: grid sensitivities
    for grid-aware clearing and fee zones (None: no grid check, one zone).
    """

    def __init__(
        self,
        config: MarketConfig | None = None,
        ledger: Ledger | None = None,
        sensitivity: GridSensitivity | None = None,
    ) -> None:
        self.config = config or MarketConfig()
        self.ledger = ledger if ledger is not None else Ledger(operator=KeyPair.generate())
        if self.ledger.operator is None:
            raise AuthError("the market needs a ledger opened with the operator key")
        self.operator = self.ledger.operator
        self.sensitivity = sensitivity
        self.participants: dict[str, Participant] = {}
        self._bus_pos: dict[str, int] = {}
        self._nonce: dict[str, int] = {}
        self._books: dict[int, _Book] = defaultdict(_Book)
        self._cleared: dict[int, IntervalClearing] = {}
        self._settled: set[int] = set()
        self._pending: list[Transaction] = []
        self._next_contract = 0
        self.balances_ueur: dict[str, int] = defaultdict(int)
        self.audit: dict[str, list[dict[str, Any]]] = defaultdict(list)

    # --- participants --------------------------------------------------------------------
    def register(self, participant: Participant) -> None:
        """Admit a participant (recorded in the ledger by the operator). A duplicate id or a
        bus the grid does not have is a :class:`ValidationError`."""
        if participant.id in self.participants or participant.id == "grid":
            raise ValidationError(
                issues=[Issue("participant", "id", "already registered", value=participant.id)]
            )
        if len(participant.public_key) != 32:
            raise ValidationError(
                issues=[
                    Issue(
                        "participant",
                        "public_key",
                        "must be 32 bytes",
                        ids=(participant.id,),
                        value=len(participant.public_key),
                    )
                ]
            )
        pos = -1
        if self.sensitivity is not None and participant.bus >= 0:
            pos = int(self.sensitivity.bus_positions(np.array([participant.bus]))[0])
            if pos < 0:
                raise UnknownComponentError(
                    "bus",
                    participant.bus,
                    f"participant {participant.id!r} sits at a bus the grid lacks",
                )
        self.participants[participant.id] = participant
        self._bus_pos[participant.id] = pos
        self._pending.append(
            Transaction.create("register", participant.payload(), self.operator, sign=False)
        )

    # --- orders ----------------------------------------------------------------------------
    def gate_closure_s(self, interval: int) -> float:
        """Time (s) after which orders for ``interval`` are refused."""
        return interval * self.config.interval_s - self.config.gate_closure_s

    def _check_fields(self, o: Order, now_s: float | None) -> None:
        c = self.config
        if o.interval in self._cleared or (
            now_s is not None and now_s >= self.gate_closure_s(o.interval)
        ):
            raise ValidationError(
                issues=[
                    Issue(
                        "order",
                        "interval",
                        "interval closed for orders",
                        ids=(o.participant,),
                        value=o.interval,
                    )
                ]
            )
        if o.side not in SIDES:
            raise ValidationError(
                issues=[
                    Issue(
                        "order",
                        "side",
                        f"must be one of {SIDES}",
                        ids=(o.participant,),
                        value=o.side,
                    )
                ]
            )
        if (
            isinstance(o.qty_wh, bool)
            or not isinstance(o.qty_wh, (int, np.integer))
            or o.qty_wh <= 0
        ):
            raise ValidationError(
                issues=[
                    Issue(
                        "order",
                        "qty_wh",
                        "must be a positive integer (Wh)",
                        ids=(o.participant,),
                        value=o.qty_wh,
                    )
                ]
            )
        p = float(o.price_eur_per_kwh)
        if not math.isfinite(p) or not c.feed_in_eur_per_kwh <= p <= c.retail_eur_per_kwh:
            raise ValidationError(
                issues=[
                    Issue(
                        "order",
                        "price_eur_per_kwh",
                        f"outside the allowed band [{c.feed_in_eur_per_kwh}, {c.retail_eur_per_kwh}]",
                        ids=(o.participant,),
                        value=o.price_eur_per_kwh,
                    )
                ]
            )
        other = (
            self._books[o.interval].sides.get(o.participant) if o.interval in self._books else None
        )
        if other is not None and other != o.side:
            raise ValidationError(
                issues=[
                    Issue(
                        "order",
                        "side",
                        f"participant already has a {other} order in this interval",
                        ids=(o.participant,),
                        value=o.side,
                    )
                ]
            )

    def _check_auth(self, o: Order) -> Participant:
        p = self.participants.get(o.participant)
        if p is None:
            raise UnknownComponentError("participant", o.participant, "register it first")
        return p

    def _check_nonce(self, o: Order) -> None:
        last = self._nonce.get(o.participant, -1)
        if o.nonce <= last:
            raise AuthError(
                f"order of {o.participant!r} refused: nonce {o.nonce} replayed or out of order "
                f"(last accepted {last})"
            )

    def _accept(self, o: Order, p: Participant) -> None:
        self._nonce[o.participant] = int(o.nonce)
        book = self._books[o.interval]
        book.orders.append(o)
        book.sides[o.participant] = o.side
        self._pending.append(o.transaction(p.public_key))

    def submit(self, order: Order, now_s: float | None = None) -> None:
        """Accept one signed order or raise: :class:`UnknownComponentError` (unknown
        participant), :class:`AuthError` (bad signature, replayed nonce),
        :class:`ValidationError` (interval closed, quantity not positive, price outside the
        band, wrong side). ``now_s``: the market clock (s) for gate closure. Nothing is
        stored when an order is refused."""
        p = self._check_auth(order)
        if not verify_signature(p.public_key, order.signature, _encoded(order)):
            raise AuthError(f"order of {order.participant!r} refused: bad signature")
        self._check_nonce(order)
        self._check_fields(order, now_s)
        self._accept(order, p)

    def submit_many(
        self, orders: Sequence[Order], now_s: float | None = None, workers: int | None = None
    ) -> list[GridpilotError | None]:
        """Submit many orders, signatures verified in one batch (parallel with ``workers``).
        Returns, per order, None when accepted or the error that refused it."""
        out: list[GridpilotError | None] = [None] * len(orders)
        keys: list[bytes] = []
        msgs: list[bytes] = []
        for i, o in enumerate(orders):
            try:
                keys.append(self._check_auth(o).public_key)
                msgs.append(_encoded(o))
            except GridpilotError as exc:
                out[i] = exc
                keys.append(b"")
                msgs.append(b"")
        good = verify_many(keys, [o.signature for o in orders], msgs, workers)
        for i, o in enumerate(orders):
            if out[i] is not None:
                continue
            if not good[i]:
                out[i] = AuthError(f"order of {o.participant!r} refused: bad signature")
                continue
            try:
                self._check_nonce(o)
                self._check_fields(o, now_s)
                self._accept(o, self.participants[o.participant])
            except GridpilotError as exc:
                out[i] = exc
        refused = sum(e is not None for e in out)
        if refused:
            log.debug("%d of %d orders refused", refused, len(orders))
        return out

    # --- clearing --------------------------------------------------------------------------
    def clear_interval(
        self, interval: int, sensitivity: GridSensitivity | None = None
    ) -> IntervalClearing:
        """Close and clear ``interval``: double auction (zones and fees from the grid when
        known), grid curtailment, contracts. ``sensitivity`` overrides the market's one for
        this interval (e.g. rebased on the interval's forecast). Returns an
        :class:`IntervalClearing`; clearing an interval twice is a :class:`ValidationError`."""
        if interval in self._cleared:
            raise ValidationError(
                issues=[Issue("market", "interval", "already cleared", value=interval)]
            )
        sens = sensitivity if sensitivity is not None else self.sensitivity
        t0 = time.perf_counter()
        book = self._books.pop(interval, _Book())
        bids = [o for o in book.orders if o.side == "buy"]
        offers = [o for o in book.orders if o.side == "sell"]
        bp = np.array([o.price_eur_per_kwh for o in bids], float)
        bq = np.array([o.qty_wh for o in bids], np.int64)
        op = np.array([o.price_eur_per_kwh for o in offers], float)
        oq = np.array([o.qty_wh for o in offers], np.int64)
        b_pos = np.array([self._bus_pos.get(o.participant, -1) for o in bids], np.int64)
        o_pos = np.array([self._bus_pos.get(o.participant, -1) for o in offers], np.int64)
        zones: dict[str, Any] = {}
        if sens is not None:
            zones = {
                "bid_zone": np.where(b_pos >= 0, sens.zone[np.maximum(b_pos, 0)], -1),
                "offer_zone": np.where(o_pos >= 0, sens.zone[np.maximum(o_pos, 0)], -1),
            }
        c = self.config
        auction = clear(
            bp,
            bq,
            op,
            oq,
            fee_intra_eur_per_kwh=c.fee_intra_eur_per_kwh,
            fee_inter_eur_per_kwh=c.fee_inter_eur_per_kwh,
            pricing=c.pricing,
            k=c.k,
            **zones,
        )
        report: dict[str, Any] = {"curtailed_wh": 0, "binding": [], "lp": False}
        trades = auction
        if sens is not None and len(auction):
            trades, report = sens.curtail(
                auction, o_pos[auction.offer_index], b_pos[auction.bid_index], c.interval_s
            )
        n = len(trades)
        ids = np.arange(self._next_contract, self._next_contract + n, dtype=np.int64)
        self._next_contract += n
        contracts = Contracts(
            interval,
            ids,
            np.array([offers[i].participant for i in trades.offer_index], dtype=object),
            np.array([bids[i].participant for i in trades.bid_index], dtype=object),
            trades.qty_wh.copy(),
            trades.price_eur_per_kwh.copy(),
            trades.fee_eur_per_kwh.copy(),
        )
        ms = (time.perf_counter() - t0) * 1e3
        res = IntervalClearing(
            interval, len(bids), len(offers), auction, trades, contracts, report, ms
        )
        self._cleared[interval] = res
        for row in contracts.rows():
            self._pending.append(Transaction.create("contract", row, self.operator, sign=False))
            for who, role in ((row["seller"], "seller"), (row["buyer"], "buyer")):
                self.audit[who].append(
                    {"interval": interval, "event": "contract", "role": role, **row}
                )
        return res

    # --- settlement ------------------------------------------------------------------------
    def settle(
        self,
        interval: int,
        readings: Sequence[MeterReading],
        verifier: ReadingVerifier | None = None,
    ) -> Settlement:
        """Settle a cleared interval against signed meter readings (see
        :func:`gridpilot.market.settlement.settle_interval`); payments update
        :attr:`balances_ueur` and the per-participant :attr:`audit` trail and go to the
        ledger. Settling twice, or an interval not cleared, is a :class:`ValidationError`."""
        if interval not in self._cleared:
            raise ValidationError(
                issues=[Issue("market", "interval", "not cleared yet", value=interval)]
            )
        if interval in self._settled:
            raise ValidationError(
                issues=[Issue("market", "interval", "already settled", value=interval)]
            )
        c = self.config
        st = settle_interval(
            self._cleared[interval].contracts,
            list(readings),
            self.participants,
            c.retail_eur_per_kwh,
            c.feed_in_eur_per_kwh,
            verifier,
        )
        self._settled.add(interval)
        for r in st.accepted:
            self._pending.append(
                Transaction.create(
                    "meter",
                    {**r.payload(), "meter_signature": r.signature.hex()},
                    self.operator,
                    sign=False,
                )
            )
        for pay in st.payments:
            self.balances_ueur[pay.payer] -= pay.amount_ueur
            self.balances_ueur[pay.payee] += pay.amount_ueur
            tx = Transaction.create("payment", pay.payload(), self.operator, sign=False)
            self._pending.append(tx)
            entry = {
                "interval": interval,
                "event": "payment",
                "reason": pay.reason,
                "contract": pay.contract,
                "energy_wh": pay.energy_wh,
                "tx": tx.hash.hex(),
            }
            self.audit[pay.payer].append(
                {**entry, "amount_ueur": -pay.amount_ueur, "counterparty": pay.payee}
            )
            self.audit[pay.payee].append(
                {**entry, "amount_ueur": pay.amount_ueur, "counterparty": pay.payer}
            )
        summary = {
            "interval": interval,
            "contracts": len(st.delivered_wh),
            "delivered_wh": int(st.delivered_wh.sum()),
            "shortfall_wh": int(st.shortfall_wh.sum()),
            "refused_readings": sorted(st.refused_readings),
            "payments": len(st.payments),
        }
        self._pending.append(Transaction.create("settlement", summary, self.operator, sign=False))
        return st

    # --- ledger ----------------------------------------------------------------------------
    def seal(self, time_ns: int | None = None) -> BlockHeader | None:
        """Write everything recorded since the last seal as one ledger block; returns its
        header (None when there was nothing). Order signatures were verified at intake, so
        the ledger does not verify them a second time here (``ledger verify`` does)."""
        if not self._pending:
            return None
        header = self.ledger.append_block(self._pending, time_ns=time_ns, check_signatures=False)
        self._pending = []
        return header
