"""Readings from telemetry energy registers, settled with the ingest-verified verifier."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridpilot.errors import ValidationError
from gridpilot.market import KeyPair, Participant
from gridpilot.market.metering import readings_from_registers, verified_at_ingest
from gridpilot.market.settlement import Contracts, settle_interval


def _frame() -> pd.DataFrame:
    ts = np.array([0, 300, 900, 1500, 1800, 2700]) * 1000  # ms
    rows = []
    for t, v in zip(ts, [10.0, 10.2, 10.5, 10.9, 11.0, 11.0], strict=True):
        rows.append(("m-seller", "e_export_kwh", t, v))
        rows.append(("m-seller", "e_import_kwh", t, 3.0))
        rows.append(("m-seller", "v_pu", t, 1.01))
    for t, v in zip(ts, [5.0, 5.1, 5.3, 5.6, 5.8, 6.3], strict=True):
        rows.append(("m-buyer", "e_import_kwh", t, v))
    return pd.DataFrame(rows, columns=["device_id", "quantity", "ts", "value"])


def test_register_differences_per_interval() -> None:
    rs = readings_from_registers(_frame(), {"m-seller": "s", "m-buyer": "b"})
    got = {(r.participant, r.interval): (r.export_wh, r.import_wh) for r in rs}
    assert got[("s", 0)] == (500, 0)  # 10.0 -> 10.5 kWh
    assert got[("s", 1)] == (500, 0)  # 10.5 -> 11.0
    assert got[("s", 2)] == (0, 0)
    assert got[("b", 0)] == (0, 300) and got[("b", 1)] == (0, 500)
    # the same with datetimes
    f = _frame().assign(ts=lambda d: pd.to_datetime(d["ts"], unit="ms"))
    assert [
        (r.participant, r.interval, r.export_wh, r.import_wh)
        for r in readings_from_registers(f, {"m-seller": "s", "m-buyer": "b"})
    ] == [(r.participant, r.interval, r.export_wh, r.import_wh) for r in rs]


def test_settles_with_ingest_verifier() -> None:
    rs = readings_from_registers(_frame(), {"m-seller": "s", "m-buyer": "b"})
    k = KeyPair.from_name("x")
    parts = {"s": Participant("s", k.public_key), "b": Participant("b", k.public_key)}
    c = Contracts(
        0,
        np.array([0]),
        np.array(["s"], dtype=object),
        np.array(["b"], dtype=object),
        np.array([400], np.int64),
        np.array([0.2]),
        np.array([0.0]),
    )
    st = settle_interval(
        c, [r for r in rs if r.interval == 0], parts, 0.3, 0.08, verifier=verified_at_ingest
    )
    assert st.refused_readings == []
    assert int(st.delivered_wh[0]) == 400
    assert sum(st.balances().values()) == 0
    # with the default (signature) verifier the unsigned readings are refused: nothing paid
    st2 = settle_interval(c, [r for r in rs if r.interval == 0], parts, 0.3, 0.08)
    assert sorted(st2.refused_readings) == ["b", "s"] and int(st2.delivered_wh[0]) == 0


def test_bad_registers() -> None:
    f = _frame()
    f.loc[(f["device_id"] == "m-buyer") & (f["ts"] == 1500_000), "value"] = 1.0
    with pytest.raises(ValidationError, match="backwards"):
        readings_from_registers(f, {"m-buyer": "b"})
    with pytest.raises(ValidationError, match="columns"):
        readings_from_registers(f.rename(columns={"ts": "time"}), {"m-buyer": "b"})
