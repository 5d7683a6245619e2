"""SunSpec Modbus TCP: pysunspec2's client against our device side, our client against
pysunspec2's bundled 1547 device, and our client's read-back writes (127.0.0.1, free ports)."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import sunspec2
from pymodbus.server import ModbusTcpServer

from gridpilot.protocols import AdapterRegistry, DeviceCommand, ReadingSink
from gridpilot.protocols.sunspec import Der, DerHost, DerSpec, SunSpecAdapter, SunSpecClient
from gridpilot.protocols.sunspec.device import _free_port, serve_image

CURVE = ((92.0, 40.0), (98.0, 0.0), (102.0, 0.0), (108.0, -40.0))


class Background:
    """An asyncio loop in a thread hosting servers for blocking clients (pysunspec2)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.t = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.t.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(15)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.t.join(5)


@pytest.fixture
def devices() -> Any:
    bg = Background()
    ders = [
        Der(DerSpec("pv-1", "pv", 10_000, 4_400)),
        Der(DerSpec("bat-1", "battery", 5_000, 2_000, 10_000)),
    ]
    host = DerHost(ders)
    ports = bg.run(host.start())
    yield {d.spec.device_id: d for d in ders}, ports, bg
    bg.run(host.stop())
    bg.close()


def test_pysunspec2_client_reads_and_writes_our_device_side(devices: Any) -> None:
    from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP
    from sunspec2.modbus.modbus import ModbusClientException

    ders, ports, _ = devices
    ders["pv-1"].avail_w = 7_300.0
    ders["pv-1"].refresh()
    d = SunSpecModbusClientDeviceTCP(
        slave_id=1, ipaddr="127.0.0.1", ipport=ports["pv-1"], timeout=3
    )
    try:
        d.scan()
        assert {1, 701, 702, 703, 704, 705} <= {int(k) for k in d.models if str(k).isdigit()}
        ac = d.DERMeasureAC[0]
        assert ac.W.cvalue == 7300 and ac.LNV.cvalue == 230.0
        ctl = d.DERCtlAC[0]
        ctl.WMaxLimPct.cvalue = 50.0
        ctl.WMaxLimPctEna.value = 1
        ctl.write()
        assert ders["pv-1"].w == 5000.0  # the device follows the limit
        ac.read()
        assert ac.W.cvalue == 5000
        ctl.WMaxLimPct.cvalue = 150.0  # out of range: exception 3 (illegal data value)
        with pytest.raises(ModbusClientException, match="exception: 3"):
            ctl.write()
        assert ders["pv-1"].w == 5000.0
    finally:
        d.close()
    b = SunSpecModbusClientDeviceTCP(
        slave_id=1, ipaddr="127.0.0.1", ipport=ports["bat-1"], timeout=3
    )
    try:
        b.scan()
        assert b.DERStorageCapacity[0].SoC.cvalue == 50.0
    finally:
        b.close()


def test_our_client_reads_telemetry_and_writes_with_readback(devices: Any) -> None:
    ders, ports, bg = devices

    async def go() -> None:
        c = SunSpecClient("127.0.0.1", ports["pv-1"], "pv-1")
        await c.connect()
        r = await c.readings()
        assert r["p_kw"] == -10.0 and r["v_pu"] == 1.0 and r["f_hz"] == 50.0
        res = await c.set_power_limit(30.0)
        assert res.accepted and res.message_id.startswith("mb-")
        assert (await c.readings())["p_kw"] == -3.0
        vv = await c.set_volt_var(CURVE)
        assert vv.accepted and ders["pv-1"].vv_points == list(CURVE)
        ders["pv-1"].v_v = 230.0 * 1.08
        ders["pv-1"].refresh()
        assert (await c.readings())["q_kvar"] == pytest.approx(0.4 * 4.4)  # absorbs at 108 %
        bad = await c.set_volt_var(((100.0, 0.0), (95.0, 10.0)))  # V must increase
        assert (
            not bad.accepted
            and bad.status == "adopt_failed"
            and ders["pv-1"].vv_points == list(CURVE)
        )
        # the read-only default curve 1 cannot be written: exception 2
        a705 = c.models[705][0]
        rr = await c.client.write_registers(a705 + 15, [3], device_id=1)
        assert rr.isError() and rr.exception_code == 2
        c.close()
        cb = SunSpecClient("127.0.0.1", ports["bat-1"], "bat-1")
        await cb.connect()
        ok = await cb.set_storage_w(2_000.0)  # charge 2 kW
        assert ok.accepted and ders["bat-1"].w == -2000.0
        ders["bat-1"].advance(1800)
        r = await cb.readings()
        assert r["p_kw"] == 2.0 and r["soc_pct"] == pytest.approx(60.0) and r["e_import_kwh"] == 1.0
        no = await cb.set_storage_w(9_000.0)  # beyond the 5 kW rating
        assert not no.accepted and no.status == "exception 3" and ders["bat-1"].w == -2000.0
        cb.close()

    bg.run(go())


def test_a_refusing_device_raises_an_alarm_through_the_adapter(
    devices: Any, tmp_path: Path
) -> None:
    from gridpilot.agent import AuditLog

    _ders, ports, _ = devices
    sink = ReadingSink()
    ad = SunSpecAdapter({k: ("127.0.0.1", p) for k, p in ports.items()}, sink)
    try:
        assert ad.start() == {}
        assert ad.poll(1_000) >= 10 and sink.latest("pv-1", "p_kw") == (1_000, -10.0)
        reg = AdapterRegistry(AuditLog(str(tmp_path / "a.db")))
        reg.register(ad)
        res = reg.send(
            [
                DeviceCommand("pv-1", "volt_var", curve=CURVE),
                DeviceCommand("bat-1", "storage_w", 9e3),
            ]
        )
        assert res[0].accepted and not res[1].accepted
        assert set(reg.alarms) == {"command_rejected:bat-1"}
        assert reg.send([DeviceCommand("bat-1", "storage_w", 1e3)])[0].accepted
        assert reg.alarms == {}
    finally:
        ad.stop()


def test_our_client_against_pysunspec2_bundled_1547_device() -> None:
    path = Path(sunspec2.__file__).parent / "tests" / "test_data" / "device_1547.json"
    if not path.exists():
        pytest.skip("pysunspec2's test data is not installed")
    models = [m for m in json.loads(path.read_text())["models"] if m["ID"] != 65535]

    async def go() -> None:
        port = _free_port()
        srv = ModbusTcpServer(serve_image(models), address=("127.0.0.1", port))
        await srv.serve_forever(background=True)
        try:
            c = SunSpecClient("127.0.0.1", port, "dev-1547")
            found = await c.connect()
            assert {1, 701, 704, 705, 713} <= set(found)
            r = await c.readings()
            assert r["p_kw"] == -9.8 and r["f_hz"] == 60.01 and r["e_export_kwh"] == 150.0
            vv = await c.set_volt_var(CURVE, wait_s=0.2)
            # points land and read back; a plain register image has no device logic to adopt
            assert vv.status == "adopt_pending"
            m = await c.read_model(705)
            assert [(p.V.cvalue, p.Var.cvalue) for p in m.Crv[1].Pt] == list(CURVE)
            c.close()
        finally:
            await srv.shutdown()

    asyncio.run(asyncio.wait_for(go(), 20))
