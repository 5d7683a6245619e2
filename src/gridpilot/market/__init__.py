"""The prosumer market: signed orders, a vectorised double auction with grid-aware
curtailment and network fees, contracts settled against signed meter readings, and a
hash-chained, Merkle-rooted, Ed25519-signed ledger.

>>> from gridpilot.market import Market, MarketConfig, Participant, Order, KeyPair
"""

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

__all__ = [
    "GRID",
    "BlockHeader",
    "ClearingResult",
    "Contracts",
    "DuckDBBackend",
    "GridSensitivity",
    "InclusionProof",
    "IntervalClearing",
    "KeyPair",
    "Ledger",
    "LedgerBackend",
    "Market",
    "MarketConfig",
    "MemoryBackend",
    "MeterReading",
    "Order",
    "Participant",
    "Payment",
    "ReadingVerifier",
    "SQLiteBackend",
    "Settlement",
    "Transaction",
    "VerifyReport",
    "canonical_json",
    "clear",
    "default_reading_verifier",
    "grid_only_cost_ueur",
    "merkle_root",
    "readings_from_registers",
    "settle_interval",
    "verified_at_ingest",
    "verify_many",
    "verify_signature",
]
