"""OCPP CSMS against the ``ocpp`` library's charge points (127.0.0.1, free ports, bounded time)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from ocpp.messages import unpack
from websockets.exceptions import InvalidStatus

from gridpilot.agent import AuditLog
from gridpilot.protocols import AdapterRegistry, DeviceCommand, ReadingSink
from gridpilot.protocols.ocpp import (
    Csms,
    CsmsConfig,
    OcppAdapter,
    RunOptions,
    StationModel,
    StationSpec,
    run_station,
)
from gridpilot.protocols.ocpp.adapter import CsmsThread
from gridpilot.protocols.ocpp.messages import charging_profile, now_iso
from gridpilot.protocols.ocpp.session import Session21, Session201, StationRecord
from gridpilot.protocols.ocpp.station import ChargePoint21, ChargePoint201, basic_auth

PW = "correct-horse-battery"


def run(coro: Any, timeout_s: float = 20.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


async def _wait(pred: Any, timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def _server(*specs: StationSpec, **cfg: Any) -> tuple[Csms, ReadingSink, str]:
    sink = ReadingSink()
    csms = Csms(CsmsConfig(port=0, **cfg), sink)
    for s in specs:
        csms.provision(s.station_id, s.password)
    port = await csms.start()
    return csms, sink, f"ws://127.0.0.1:{port}/ocpp"


async def _stop(*tasks: asyncio.Task) -> None:
    """Cancel station tasks and wait until they have ended: a station that lost its
    cancellation (and goes on metering) fails here, in bounded time, not in the loop's shutdown."""
    for t in tasks:
        t.cancel()
    async with asyncio.timeout(10):
        await asyncio.gather(*tasks, return_exceptions=True)
    assert all(t.cancelled() for t in tasks)


def _start(spec: StationSpec, url: str, meter_s: float = 0.05) -> tuple[asyncio.Task, StationModel]:
    model = StationModel(spec)
    task = asyncio.create_task(
        run_station(spec, RunOptions(url, meter_s=meter_s, backoff_s=0.05), model)
    )
    return task, model


def test_limit_reaches_station_and_meter_values_land_as_readings() -> None:
    async def go() -> None:
        a = StationSpec("cs-a", PW, p_max_w=22_000)
        b = StationSpec("cs-b", PW, p_max_w=11_000, version="2.1")
        csms, sink, url = await _server(a, b)
        (ta, ma), (tb, mb) = _start(a, url), _start(b, url)
        await _wait(lambda: {"cs-a", "cs-b"} <= set(csms.sessions))
        ra = await csms.set_limit("cs-a", 7000.0)
        rb = await csms.set_limit("cs-b", 3500.0)
        assert (
            ra.accepted and ra.status == "Accepted" and ra.message_id and ra.protocol == "ocpp2.0.1"
        )
        assert rb.accepted and rb.protocol == "ocpp2.1"
        assert ma.limit_w == 7000.0 and mb.limit_w == 3500.0
        await _wait(lambda: (sink.latest("cs-a", "p_kw") or (0, 0))[1] == 7.0)
        await _wait(lambda: (sink.latest("cs-b", "p_kw") or (0, 0))[1] == 3.5)
        assert sink.latest("cs-a", "e_import_kwh") is not None
        assert sink.latest("cs-a", "soc_pct") is not None
        assert csms.records["cs-a"].transactions, "the transaction is known"
        await _stop(ta, tb)
        await csms.stop()

    run(go())


def test_v21_central_setpoint_discharges_only_where_allowed() -> None:
    async def go() -> None:
        v2g = StationSpec("v2g-1", PW, version="2.1", v2g=True)
        plain = StationSpec("cs-21", PW, version="2.1", v2g=False)
        old = StationSpec("cs-201", PW, version="2.0.1", v2g=True)
        csms, sink, url = await _server(v2g, plain, old)
        tasks = [_start(s, url) for s in (v2g, plain, old)]
        await _wait(lambda: len(csms.sessions) == 3)
        r = await csms.set_limit("v2g-1", -5000.0, setpoint=True)
        assert r.accepted and tasks[0][1].p_w == -5000.0
        await _wait(lambda: (sink.latest("v2g-1", "p_kw") or (0, 0))[1] == -5.0)
        assert not (await csms.set_limit("cs-21", -5000.0, setpoint=True)).accepted
        r201 = await csms.set_limit("cs-201", -5000.0, setpoint=True)
        assert not r201.accepted and r201.status == "invalid"  # never sent: 2.0.1 has no set point
        await _stop(*(t for t, _ in tasks))
        await csms.stop()

    run(go())


def test_unknown_station_wrong_password_and_wrong_path_are_refused() -> None:
    async def go() -> None:
        good = StationSpec("cs-ok", PW)
        csms, _, url = await _server(good)
        for sid, pw, path in (
            ("cs-x", PW, "cs-x"),
            ("cs-ok", "wrong-password-123", "cs-ok"),
            ("cs-x", PW, "cs-ok"),
            ("cs-ok", PW, "cs-ok/../x"),
        ):
            with pytest.raises(InvalidStatus) as err:
                async with websockets.connect(
                    f"{url}/{path}",
                    subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                    additional_headers={"Authorization": basic_auth(sid, pw)},
                ):
                    pass
            assert err.value.response.status_code in (401, 404)
        assert csms.stats.refused.get("unauthorized", 0) >= 3
        assert not csms.sessions
        await csms.stop()

    run(go())


async def _raw(url: str, sid: str) -> Any:
    return await websockets.connect(
        f"{url}/{sid}",
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
        additional_headers={"Authorization": basic_auth(sid, PW)},
    )


def test_malformed_and_schema_invalid_messages_are_refused_and_the_session_goes_on() -> None:
    async def go() -> None:
        csms, sink, url = await _server(StationSpec("cs-m", PW))
        ws = await _raw(url, "cs-m")
        await ws.send("this is not json")
        assert json.loads(await ws.recv())[:3] == [4, "-1", "RpcFrameworkError"]
        bad = [2, "m1", "MeterValues", {"evseId": "one", "meterValue": []}]
        await ws.send(json.dumps(bad))
        err = json.loads(await ws.recv())
        assert (
            err[0] == 4
            and err[1] == "m1"
            and err[2]
            in ("FormatViolation", "TypeConstraintViolation", "OccurrenceConstraintViolation")
        )
        await ws.send(json.dumps([2, "m2", "Heartbeat", {}]))
        ok = json.loads(await ws.recv())
        assert ok[0] == 3 and ok[1] == "m2" and "currentTime" in ok[2]
        # a valid message with an out-of-range value: that value is refused, nothing stored
        mv = [
            2,
            "m3",
            "MeterValues",
            {
                "evseId": 1,
                "meterValue": [
                    {
                        "timestamp": "2026-01-01T00:00:00Z",
                        "sampledValue": [{"value": 1e12, "measurand": "Power.Active.Import"}],
                    }
                ],
            },
        ]
        await ws.send(json.dumps(mv))
        assert json.loads(await ws.recv())[0] == 3
        assert sink.latest("cs-m", "p_kw") is None and sink.stats.refused.get("out_of_range") == 1
        rec = csms.records["cs-m"]
        assert rec.counters["malformed"] == 1 and rec.counters["schema_invalid"] == 1
        await ws.close()
        await csms.stop()

    run(go())


def test_a_flooding_station_does_not_stall_the_server() -> None:
    async def go() -> None:
        ok = StationSpec("cs-good", PW)
        csms, _, url = await _server(ok, StationSpec("cs-flood", PW), rate_per_s=20.0, burst=20.0)
        task, _model = _start(ok, url)
        await _wait(lambda: "cs-good" in csms.sessions)
        ws = await _raw(url, "cs-flood")

        async def flood() -> None:
            try:
                for i in range(3000):
                    await ws.send(json.dumps([2, f"f{i}", "Heartbeat", {}]))
            except websockets.ConnectionClosed:
                pass

        f = asyncio.create_task(flood())
        t0 = asyncio.get_running_loop().time()
        r = await csms.set_limit("cs-good", 4000.0)
        assert r.accepted and asyncio.get_running_loop().time() - t0 < 3.0
        await asyncio.wait_for(f, 10)
        await _wait(lambda: "cs-flood" not in csms.sessions)
        assert csms.records["cs-flood"].counters.get("flood_refused", 0) > 0
        assert csms.records["cs-flood"].counters.get("flood_closed", 0) == 1
        await _stop(task)
        await csms.stop()

    run(go())


def test_a_station_reconnects_mid_transaction_and_resumes() -> None:
    async def go() -> None:
        spec = StationSpec("cs-r", PW)
        csms, sink, url = await _server(spec)
        task, model = _start(spec, url)
        await _wait(lambda: "cs-r" in csms.sessions and csms.records["cs-r"].transactions)
        tx = set(csms.records["cs-r"].transactions)
        await csms.sessions["cs-r"]._connection.close(1011, "network drop")  # mid-transaction
        await _wait(lambda: csms.records["cs-r"].connections == 2 and "cs-r" in csms.sessions)
        # the same transaction goes on: the station resumes it (seqNo 2), nothing new is opened
        await _wait(lambda: max(csms.records["cs-r"].last_seq.values()) == 2)
        assert set(csms.records["cs-r"].transactions) == tx
        r = await csms.set_limit("cs-r", 2000.0)
        assert r.accepted and model.limit_w == 2000.0
        await _wait(lambda: (sink.latest("cs-r", "p_kw") or (0, 0))[1] == 2.0)
        await _stop(task)
        await csms.stop()

    run(go())


def test_a_rejected_profile_is_audited_with_its_message_id_and_raises_an_alarm(
    tmp_path: Any,
) -> None:
    csms = Csms(CsmsConfig(port=0), ReadingSink())
    good, bad = StationSpec("cs-1", PW), StationSpec("cs-2", PW, refuse=True)
    for s in (good, bad):
        csms.provision(s.station_id, s.password)
    srv = CsmsThread(csms)
    port = srv.start()
    url = f"ws://127.0.0.1:{port}/ocpp"
    tasks = [
        asyncio.run_coroutine_threadsafe(run_station(s, RunOptions(url, meter_s=0.1)), srv.loop)
        for s in (good, bad)
    ]
    try:
        srv.run(_wait(lambda: len(csms.sessions) == 2), 10)
        audit = AuditLog(str(tmp_path / "audit.db"))
        reg = AdapterRegistry(audit)
        reg.register(OcppAdapter(srv))
        res = reg.send(
            [
                DeviceCommand("cs-1", "ev_limit_w", 5000.0, plan_id=7),
                DeviceCommand("cs-2", "ev_limit_w", 5000.0, plan_id=7),
            ]
        )
        assert [r.accepted for r in res] == [True, False] and res[1].status == "Rejected"
        assert set(reg.alarms) == {"command_rejected:cs-2"}
        entries = audit.entries(limit=10, kind="command")
        ids = {e["result"]["message_id"] for e in entries}
        assert {r.message_id for r in res} <= ids and all(i for i in ids)
        assert {e["status"] for e in entries} == {"done", "failed"}
    finally:
        for t in tasks:
            t.cancel()
        srv.stop()


class _Link:
    """A connection stand-in: keeps what is sent, never receives."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, message: str) -> None:
        self.sent.append(message)

    async def recv(self) -> str:
        await asyncio.Event().wait()
        return ""


def _station_call(cls: Any, link: _Link) -> tuple[Any, Any, dict[str, Any]]:
    cp = cls("cs-c", link, response_timeout=5)
    return cp, cp._call.Heartbeat(), {"currentTime": now_iso()}


def _csms_call(cls: Any, link: _Link) -> tuple[Any, Any, dict[str, Any]]:
    sess = cls(StationRecord("cs-c"), link, None, 5.0)
    version = "2.1" if cls is Session21 else "2.0.1"
    req = sess._call.SetChargingProfile(
        evse_id=1, charging_profile=charging_profile(1, 1000.0, version)
    )
    return sess, req, {"status": "Accepted"}


@pytest.mark.parametrize(
    ("make", "cls"),
    [
        (_station_call, ChargePoint201),
        (_station_call, ChargePoint21),
        (_csms_call, Session201),
        (_csms_call, Session21),
    ],
)
def test_a_call_cancelled_as_its_answer_arrives_ends_cancelled(make: Any, cls: Any) -> None:
    """On Python 3.11 the ``ocpp`` library's wait (``asyncio.wait_for``) returned the answer and
    dropped the cancellation: a station stopped then went on metering for ever."""

    async def go() -> None:
        link = _Link()
        cp, req, answer = make(cls, link)
        call = asyncio.create_task(cp.call(req))
        await _wait(lambda: link.sent)  # the request is out: the call waits for its answer
        uid = json.loads(link.sent[0])[1]
        cp._response_queue.put_nowait(unpack(json.dumps([3, uid, answer])))
        call.cancel()  # in the same loop iteration as the answer
        await asyncio.gather(call, return_exceptions=True)
        assert call.cancelled()

    run(go(), 10.0)


def test_reading_sink_refuses_unknown_devices_and_bad_values() -> None:
    sink = ReadingSink()
    sink.provision(["d1"])
    assert sink.add("d1", 1000, {"p_kw": 3.0, "soc_pct": 140.0, "nope": 1.0}) == 1
    assert sink.add("ghost", 1000, {"p_kw": 3.0}) == 0
    assert sink.stats.refused == {"out_of_range": 2, "unknown_device": 1}
    assert sink.latest("d1", "p_kw") == (1000, 3.0)


def _self_signed(tmp: Any) -> tuple[Any, Any]:
    """A self-signed certificate for 127.0.0.1 made here: (server SSLContext, client SSLContext)."""
    import datetime as dt
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gridpilot-test-csms")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem, key_pem = tmp / "csms.pem", tmp / "csms.key"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_pem, key_pem)
    client = ssl.create_default_context(cafile=str(cert_pem))
    return server, client


def test_security_profile_2_tls_and_basic_auth_on_127_0_0_1(tmp_path: Any) -> None:
    import ssl

    server_ctx, client_ctx = _self_signed(tmp_path)

    async def go() -> None:
        spec = StationSpec("cs-tls", PW, version="2.1")
        csms, sink, url = await _server(spec, ssl=server_ctx)
        wss = url.replace("ws://", "wss://")
        model = StationModel(spec)
        opts = RunOptions(wss, meter_s=0.05, backoff_s=0.05, ssl=client_ctx)
        task = asyncio.create_task(run_station(spec, opts, model))
        await _wait(lambda: "cs-tls" in csms.sessions)
        r = await csms.set_limit("cs-tls", 4000.0)
        assert r.accepted and model.limit_w == 4000.0
        await _wait(lambda: (sink.latest("cs-tls", "p_kw") or (0, 0))[1] == 4.0)
        # a wrong password over TLS: still 401
        bad = StationSpec("cs-tls", "wrong-password-123456", version="2.1")
        with pytest.raises(InvalidStatus) as exc:
            await run_station(bad, RunOptions(wss, run_s=5, ssl=client_ctx))
        assert exc.value.response.status_code == 401
        # a station that does not trust the CSMS's certificate never gets to send its password
        with pytest.raises(ssl.SSLCertVerificationError):
            async with websockets.connect(
                f"{wss}/cs-tls", subprotocols=["ocpp2.1"], ssl=ssl.create_default_context()
            ):
                pass
        # plain ws:// to the TLS port is not served
        with pytest.raises(Exception):  # noqa: B017 - the handshake fails, how varies
            async with websockets.connect(
                f"{url}/cs-tls", subprotocols=["ocpp2.1"], open_timeout=3
            ):
                pass
        assert "cs-tls" in csms.records
        await _stop(task)
        await csms.stop()

    run(go(), 30.0)
