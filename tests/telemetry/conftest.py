"""Shared fixtures: a small fleet with a fixed clock, and the real services when they are up."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlparse

import numpy as np
import pytest

from gridpilot.telemetry import (
    DeviceRegistry,
    DeviceSigner,
    DuckDBStore,
    PostgresStore,
    TelemetryStore,
    keys_from_seeds,
)

NOW_S = 1_790_000_000.0  # fixed receiver clock (2026-09-21)
NOW_MS = int(NOW_S * 1000)
PG_DSN = os.environ.get("GRIDPILOT_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
MQTT_URL = os.environ.get("GRIDPILOT_MQTT_URL", "mqtt://127.0.0.1:1883")


def clock() -> float:
    """The receiver's and the devices' clock in these tests."""
    return NOW_S


@dataclass
class Fleet:
    """Registry + signers: meters m0..m{n-1} on feeders F1/F2, gateway gw0 for g0..g2, operator."""

    registry: DeviceRegistry
    signers: dict[str, DeviceSigner]
    keys: dict[str, object]


def make_fleet(n_meters: int = 4) -> Fleet:
    rng = np.random.default_rng(7)
    names = [f"m{i}" for i in range(n_meters)] + ["gw0", "g0", "g1", "g2", "operator"]
    keys = dict(zip(names, keys_from_seeds(rng.integers(0, 256, (len(names), 32))), strict=True))
    reg = DeviceRegistry()
    for i in range(n_meters):
        reg.register(f"m{i}", keys[f"m{i}"], feeder="F1" if i % 2 == 0 else "F2", bus=10 + i)
    reg.register("gw0", keys["gw0"], kind="gateway", feeder="F3")
    for g in ("g0", "g1", "g2"):
        reg.register(g, keys[g], feeder="F3", gateway="gw0")
    reg.register("operator", keys["operator"], kind="operator")
    signers = {n: DeviceSigner(n, k, clock=clock) for n, k in keys.items()}  # type: ignore[arg-type]
    return Fleet(reg, signers, keys)


@pytest.fixture
def fleet() -> Fleet:
    return make_fleet()


def _reachable(url: str, default_port: int) -> str | None:
    u = urlparse(url)
    try:
        with socket.create_connection((u.hostname or "127.0.0.1", u.port or default_port), 2):
            return None
    except OSError as exc:
        return f"{u.hostname}:{u.port or default_port} unreachable ({exc})"


@pytest.fixture
def pg_dsn() -> str:
    why = _reachable(PG_DSN, 5432)
    if why:
        pytest.skip(f"PostgreSQL service not available at GRIDPILOT_PG_DSN: {why}")
    return PG_DSN


@pytest.fixture
def mqtt_url() -> str:
    why = _reachable(MQTT_URL, 1883)
    if why:
        pytest.skip(f"Mosquitto broker not available at GRIDPILOT_MQTT_URL: {why}")
    return MQTT_URL


def unique_prefix() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Iterator[TelemetryStore]:
    """Each test using ``store`` runs against DuckDB and against the real PostgreSQL."""
    if request.param == "duckdb":
        s: TelemetryStore = DuckDBStore(":memory:")
        yield s
        s.close()
    else:
        dsn = request.getfixturevalue("pg_dsn")
        s = PostgresStore(dsn, prefix=unique_prefix())
        try:
            yield s
        finally:
            s.drop()
            s.close()
