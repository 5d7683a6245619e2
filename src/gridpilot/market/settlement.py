"""Contracts and their settlement against signed meter readings.

Rules for one interval (all energy integer Wh, all money integer micro-EUR, µEUR):

* A seller's delivered energy is ``min(metered export, energy it sold)``, shared over its
  contracts in proportion (rounded down to Wh). Delivered energy is paid by the buyer to the
  seller at the contract price, and the network fee on it goes to the grid.
* A shortfall still reaches the buyer, from the grid: the buyer pays the grid the contract
  price for it and the seller pays the grid the difference up to the retail price (the
  seller's cost). A seller whose meter shows no export (or whose reading is missing or
  forged) is therefore never paid, and pays the difference.
* A seller's export beyond what it sold is bought by the grid at the feed-in price.
* A buyer's import beyond what it bought is paid to the grid at the retail price; contracted
  energy it did not take is credited at the feed-in price.
* Everyone else pays retail for imports and is paid feed-in for exports.

Every payment is a (payer, payee, amount) triple, so money is conserved with the grid as a
participant by construction; the tests check it anyway.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridpilot.market.orders import (
    GRID,
    MeterReading,
    Participant,
    ReadingVerifier,
    default_reading_verifier,
)

log = logging.getLogger(__name__)


def money_ueur(energy_wh: int | np.ndarray, price_eur_per_kwh: float | np.ndarray) -> Any:
    """Money for ``energy_wh`` at ``price_eur_per_kwh``, rounded to integer µEUR."""
    return np.rint(
        np.asarray(energy_wh, np.float64) * np.asarray(price_eur_per_kwh) * 1000.0
    ).astype(np.int64)


@dataclass(frozen=True)
class Contracts:
    """The contracts of one interval, one row per matched trade (columns as numpy arrays):
    ``id`` (int, unique in the market), ``seller``/``buyer`` (participant ids), ``qty_wh``,
    ``price_eur_per_kwh`` (what the seller gets), ``fee_eur_per_kwh`` (network fee the buyer
    pays on top)."""

    interval: int
    id: np.ndarray
    seller: np.ndarray
    buyer: np.ndarray
    qty_wh: np.ndarray
    price_eur_per_kwh: np.ndarray
    fee_eur_per_kwh: np.ndarray

    def __len__(self) -> int:
        return int(self.qty_wh.size)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per contract (for the ledger and reports)."""
        return [
            {
                "contract": int(i),
                "interval": self.interval,
                "seller": str(s),
                "buyer": str(b),
                "qty_wh": int(q),
                "price_eur_per_kwh": float(p),
                "fee_eur_per_kwh": float(f),
            }
            for i, s, b, q, p, f in zip(
                self.id,
                self.seller,
                self.buyer,
                self.qty_wh,
                self.price_eur_per_kwh,
                self.fee_eur_per_kwh,
                strict=True,
            )
        ]


@dataclass(frozen=True)
class Payment:
    """``payer`` pays ``payee`` ``amount_ueur`` (> 0) for ``reason`` (``contract``,
    ``network_fee``, ``replacement``, ``shortfall``, ``feed_in``, ``retail``, ``unused``),
    about ``contract`` (-1 none) in ``interval``."""

    interval: int
    payer: str
    payee: str
    amount_ueur: int
    reason: str
    contract: int = -1
    energy_wh: int = 0

    def payload(self) -> dict[str, Any]:
        """Ledger payload."""
        return dict(self.__dict__)


@dataclass
class Settlement:
    """Result of :func:`settle_interval`: the payments, per-contract ``delivered_wh`` and
    ``shortfall_wh``, the readings refused (participant ids), the metered energy used and
    the readings ``accepted``."""

    interval: int
    payments: list[Payment]
    delivered_wh: np.ndarray
    shortfall_wh: np.ndarray
    refused_readings: list[str]
    export_wh: dict[str, int] = field(default_factory=dict)
    import_wh: dict[str, int] = field(default_factory=dict)
    accepted: list[MeterReading] = field(default_factory=list)

    def balances(self) -> dict[str, int]:
        """Net money per participant (µEUR, + received), the grid included; sums to zero."""
        out: dict[str, int] = defaultdict(int)
        for p in self.payments:
            out[p.payer] -= p.amount_ueur
            out[p.payee] += p.amount_ueur
        return dict(out)


@dataclass
class _Readings:
    """The accepted readings' export and import per participant (Wh), and who was refused."""

    export_wh: dict[str, int] = field(default_factory=dict)
    import_wh: dict[str, int] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    accepted: list[MeterReading] = field(default_factory=list)


def _accept_readings(
    readings: list[MeterReading],
    participants: dict[str, Participant],
    interval: int,
    check: ReadingVerifier,
) -> _Readings:
    """Keep one valid reading per known participant for ``interval``; refuse the rest."""
    out = _Readings()
    for r in readings:
        p = participants.get(r.participant)
        if (
            p is None
            or r.interval != interval
            or r.export_wh < 0
            or r.import_wh < 0
            or r.participant in out.export_wh
            or not check(r, p)
        ):
            out.refused.append(r.participant)
            continue
        out.accepted.append(r)
        out.export_wh[r.participant] = int(r.export_wh)
        out.import_wh[r.participant] = int(r.import_wh)
    return out


@dataclass
class _Book:
    """The interval's payments as they are made (a negative amount is paid the other way)."""

    interval: int
    payments: list[Payment] = field(default_factory=list)

    def pay(
        self, payer: str, payee: str, amount: int, reason: str, contract: int = -1, wh: int = 0
    ) -> None:
        """Record ``payer`` paying ``payee`` ``amount`` µEUR (nothing for 0)."""
        t = self.interval
        if amount > 0:
            self.payments.append(Payment(t, payer, payee, int(amount), reason, contract, int(wh)))
        elif amount < 0:
            self.payments.append(Payment(t, payee, payer, int(-amount), reason, contract, int(wh)))


@dataclass
class _Deliveries:
    """Per participant sold and bought Wh and each seller's delivered Wh; per contract delivered and short Wh."""

    sold: dict[str, int]
    bought: dict[str, int]
    seller_wh: dict[str, int]
    delivered: np.ndarray
    short: np.ndarray


def _deliveries(contracts: Contracts, exp: dict[str, int]) -> _Deliveries:
    """A seller delivers min(export, sold), shared over its contracts in proportion (rounded down to Wh)."""
    n = len(contracts)
    sold: dict[str, int] = defaultdict(int)
    bought: dict[str, int] = defaultdict(int)
    for s, b, q in zip(
        contracts.seller.tolist(), contracts.buyer.tolist(), contracts.qty_wh.tolist(), strict=True
    ):
        sold[s] += q
        bought[b] += q
    deliv_seller = {s: min(exp.get(s, 0), q) for s, q in sold.items()}
    q_arr = contracts.qty_wh.astype(np.int64)
    sellers = contracts.seller.tolist()
    s_tot = np.array([sold[s] for s in sellers], np.int64) if n else np.zeros(0, np.int64)
    s_del = np.array([deliv_seller[s] for s in sellers], np.int64) if n else np.zeros(0, np.int64)
    delivered = np.where(s_tot > 0, (q_arr * s_del) // np.maximum(s_tot, 1), 0)
    return _Deliveries(sold, bought, deliv_seller, delivered, q_arr - delivered)


def _pay_contracts(
    book: _Book, contracts: Contracts, d: _Deliveries, retail_eur_per_kwh: float
) -> None:
    """Contract price and network fee on delivered energy; replacement and shortfall on the rest."""
    price = contracts.price_eur_per_kwh
    delivered, short = d.delivered, d.short
    m_contract = money_ueur(delivered, price)
    m_fee = money_ueur(delivered, contracts.fee_eur_per_kwh)
    m_repl = money_ueur(short, price)
    m_short = money_ueur(short, retail_eur_per_kwh) - m_repl
    for k in range(len(contracts)):
        cid = int(contracts.id[k])
        s, b = str(contracts.seller[k]), str(contracts.buyer[k])
        book.pay(b, s, int(m_contract[k]), "contract", cid, int(delivered[k]))
        book.pay(b, GRID, int(m_fee[k]), "network_fee", cid, int(delivered[k]))
        if short[k]:
            book.pay(b, GRID, int(m_repl[k]), "replacement", cid, int(short[k]))
            book.pay(s, GRID, int(m_short[k]), "shortfall", cid, int(short[k]))


def _pay_grid(book: _Book, rd: _Readings, d: _Deliveries, tariff: tuple[float, float]) -> None:
    """Surplus export at feed-in, import beyond what was bought at retail, unused energy credited.

    ``tariff``: (retail, feed-in) EUR/kWh.
    """
    retail, feed_in = tariff
    for pid in sorted(set(rd.export_wh) | set(d.sold) | set(d.bought)):
        e = rd.export_wh.get(pid, 0)
        surplus = e - d.seller_wh.get(pid, 0)
        if surplus > 0:
            book.pay(GRID, pid, int(money_ueur(surplus, feed_in)), "feed_in", -1, surplus)
        bq = d.bought.get(pid, 0)
        i = rd.import_wh.get(pid, bq)
        if i > bq:
            book.pay(pid, GRID, int(money_ueur(i - bq, retail)), "retail", -1, i - bq)
        elif bq > i:
            book.pay(GRID, pid, int(money_ueur(bq - i, feed_in)), "unused", -1, bq - i)


def settle_interval(
    contracts: Contracts,
    readings: list[MeterReading],
    participants: dict[str, Participant],
    retail_eur_per_kwh: float,
    feed_in_eur_per_kwh: float,
    verifier: ReadingVerifier | None = None,
) -> Settlement:
    """Settle one interval's ``contracts`` against signed meter ``readings``.

    ``verifier(reading, participant) -> bool`` checks each reading (default: Ed25519 against
    the participant's meter key); a refused or missing reading counts as zero export (a
    buyer with no valid reading is assumed to have taken exactly what it bought). Readings
    for another interval or an unknown participant are refused. Returns a
    :class:`Settlement` (µEUR, Wh).
    """
    check = default_reading_verifier if verifier is None else verifier
    t = contracts.interval
    rd = _accept_readings(readings, participants, t, check)
    if rd.refused:
        log.info("interval %d: %d meter readings refused", t, len(rd.refused))
    d = _deliveries(contracts, rd.export_wh)
    book = _Book(t)
    _pay_contracts(book, contracts, d, retail_eur_per_kwh)
    _pay_grid(book, rd, d, (retail_eur_per_kwh, feed_in_eur_per_kwh))
    return Settlement(
        t, book.payments, d.delivered, d.short, rd.refused, rd.export_wh, rd.import_wh, rd.accepted
    )


def grid_only_cost_ueur(
    export_wh: dict[str, int],
    import_wh: dict[str, int],
    retail_eur_per_kwh: float,
    feed_in_eur_per_kwh: float,
) -> dict[str, int]:
    """What each participant would pay (µEUR, + = pays) trading only with the grid."""
    out: dict[str, int] = {}
    for pid in set(export_wh) | set(import_wh):
        out[pid] = int(money_ueur(import_wh.get(pid, 0), retail_eur_per_kwh)) - int(
            money_ueur(export_wh.get(pid, 0), feed_in_eur_per_kwh)
        )
    return out
