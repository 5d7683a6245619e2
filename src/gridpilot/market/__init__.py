"""The prosumer market: signed orders, a vectorised double auction with grid-aware
curtailment and network fees, contracts settled against signed meter readings, and a
hash-chained, Merkle-rooted, Ed25519-signed ledger.

>>> from gridpilot.market import Market, MarketConfig, Participant, Order, KeyPair
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridpilot._lazy import lazy_exports

# public names by submodule; imported on first use (see gridpilot/_lazy.py)
_EXPORTS: dict[str, tuple[str, ...]] = {
    "clearing": ("ClearingResult", "clear"),
    "crypto": ("KeyPair", "verify_signature"),
    "ledger": ("Ledger", "LedgerBackend", "Transaction"),
    "market": ("Market", "MarketConfig"),
    "metering": ("readings_from_registers", "verified_at_ingest"),
    "network": ("GridSensitivity",),
    "orders": ("MeterReading", "Order", "Participant"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from gridpilot.market.clearing import ClearingResult, clear
    from gridpilot.market.crypto import KeyPair, verify_signature
    from gridpilot.market.ledger import Ledger, LedgerBackend, Transaction
    from gridpilot.market.market import Market, MarketConfig
    from gridpilot.market.metering import readings_from_registers, verified_at_ingest
    from gridpilot.market.network import GridSensitivity
    from gridpilot.market.orders import MeterReading, Order, Participant
