"""Participants, signed orders and signed meter readings (the market's inputs)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from gridpilot.market.crypto import KeyPair, canonical_json, verify_signature
from gridpilot.market.ledger import Transaction

SIDES = ("buy", "sell")
GRID = "grid"  # the grid (retailer and DSO) as a participant in payments
METER_DOMAIN = b"gridpilot-meter-v1|"


@dataclass(frozen=True)
class Participant:
    """A market participant: ``id``, Ed25519 ``public_key`` (32 bytes) for its orders, the
    ``bus`` id it is connected at (-1: not placed on a grid) and its meter's public key
    (``meter_key``; defaults to ``public_key``)."""

    id: str
    public_key: bytes
    bus: int = -1
    meter_key: bytes | None = None

    @property
    def meter_public_key(self) -> bytes:
        """The key meter readings of this participant must be signed with."""
        return self.public_key if self.meter_key is None else self.meter_key

    def payload(self) -> dict[str, Any]:
        """Registration payload for the ledger."""
        return {
            "participant": self.id,
            "public_key": self.public_key.hex(),
            "bus": int(self.bus),
            "meter_key": self.meter_public_key.hex(),
        }


@dataclass(frozen=True)
class Order:
    """A bid (``side="buy"``) or offer (``"sell"``) for delivery interval ``interval``.

    ``qty_wh``: energy, integer Wh (> 0); ``price_eur_per_kwh``: limit price (a buyer's
    maximum including network fees, a seller's minimum); ``nonce``: strictly increasing per
    participant (replay protection); ``signature``: Ed25519 over :meth:`signing_bytes` by the
    participant's key, the same bytes the ledger stores as the order transaction.
    """

    participant: str
    interval: int
    side: str
    qty_wh: int
    price_eur_per_kwh: float
    nonce: int
    signature: bytes = b""

    def payload(self) -> dict[str, Any]:
        """The signed fields."""
        return {
            "participant": self.participant,
            "interval": int(self.interval),
            "side": self.side,
            "qty_wh": int(self.qty_wh),
            "price_eur_per_kwh": float(self.price_eur_per_kwh),
            "nonce": int(self.nonce),
        }

    def body(self) -> bytes:
        """Canonical JSON of :meth:`payload`."""
        return canonical_json(self.payload())

    def signing_bytes(self) -> bytes:
        """The exact bytes the participant signs."""
        return Transaction.signing_bytes("order", self.body())

    def signed(self, key: KeyPair) -> Order:
        """This order signed with ``key``."""
        return replace(self, signature=key.sign(self.signing_bytes()))

    def transaction(self, public_key: bytes) -> Transaction:
        """The ledger transaction of this order (carrying the participant's own signature)."""
        return Transaction("order", self.body(), public_key, self.signature)


@dataclass(frozen=True)
class MeterReading:
    """Metered energy of one participant in one interval: ``export_wh`` fed into the grid and
    ``import_wh`` taken from it (integer Wh, two registers), signed by the participant's meter."""

    participant: str
    interval: int
    export_wh: int
    import_wh: int
    signature: bytes = b""

    def payload(self) -> dict[str, Any]:
        """The signed fields."""
        return {
            "participant": self.participant,
            "interval": int(self.interval),
            "export_wh": int(self.export_wh),
            "import_wh": int(self.import_wh),
        }

    def signing_bytes(self) -> bytes:
        """Canonical bytes a meter signs."""
        return METER_DOMAIN + canonical_json(self.payload())

    def signed(self, key: KeyPair) -> MeterReading:
        """This reading signed with the meter's ``key``."""
        return replace(self, signature=key.sign(self.signing_bytes()))


ReadingVerifier = Callable[[MeterReading, Participant], bool]


def default_reading_verifier(reading: MeterReading, participant: Participant) -> bool:
    """Ed25519 check of a reading against the participant's meter key; True when valid."""
    return verify_signature(
        participant.meter_public_key, reading.signature, reading.signing_bytes()
    )
