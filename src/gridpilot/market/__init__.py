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
    "crypto": ("KeyPair", "canonical_json", "verify_many", "verify_signature"),
    "ledger": (
        "BlockHeader",
        "DuckDBBackend",
        "InclusionProof",
        "Ledger",
        "LedgerBackend",
        "MemoryBackend",
        "SQLiteBackend",
        "Transaction",
        "VerifyReport",
        "merkle_root",
    ),
    "market": ("IntervalClearing", "Market", "MarketConfig"),
    "metering": ("readings_from_registers", "verified_at_ingest"),
    "network": ("GridSensitivity",),
    "orders": (
        "GRID",
        "MeterReading",
        "Order",
        "Participant",
        "ReadingVerifier",
        "default_reading_verifier",
    ),
    "settlement": ("Contracts", "Payment", "Settlement", "grid_only_cost_ueur", "settle_interval"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from gridpilot.market.clearing import ClearingResult, clear
    from gridpilot.market.crypto import KeyPair, canonical_json, verify_many, verify_signature
    from gridpilot.market.ledger import (
        BlockHeader,
        DuckDBBackend,
        InclusionProof,
        Ledger,
        LedgerBackend,
        MemoryBackend,
        SQLiteBackend,
        Transaction,
        VerifyReport,
        merkle_root,
    )
    from gridpilot.market.market import IntervalClearing, Market, MarketConfig
    from gridpilot.market.metering import readings_from_registers, verified_at_ingest
    from gridpilot.market.network import GridSensitivity
    from gridpilot.market.orders import (
        GRID,
        MeterReading,
        Order,
        Participant,
        ReadingVerifier,
        default_reading_verifier,
    )
    from gridpilot.market.settlement import (
        Contracts,
        Payment,
        Settlement,
        grid_only_cost_ueur,
        settle_interval,
    )
