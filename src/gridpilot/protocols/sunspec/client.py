"""gridpilot's SunSpec Modbus TCP client: AC measurements (701, 713) as telemetry, controls
(704 active-power limit and storage set point, 705 volt-var curve) written and read back.

Every write goes in three steps: the model is read and decoded (pysunspec2 definitions), the
points are set on the decoded model and only the registers that changed are written
(contiguous runs, function 0x10), then the model is read again and each written point must
read back equal. The :class:`~gridpilot.protocols.adapter.CommandResult` says ``Accepted``,
``exception <code>`` (a Modbus exception: the device refused), ``readback_mismatch``,
``adopt_failed`` / ``adopt_pending`` (volt-var) or ``timeout``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from gridpilot.protocols.adapter import CommandResult
from gridpilot.protocols.sunspec.image import BASE_ADDR, SUNS, decode, to_bytes, to_regs

log = logging.getLogger(__name__)
MAX_READ = 125
_tx = itertools.count(1)


class SunSpecError(Exception):
    """A device that is not SunSpec, or refused or failed a request (``code``: Modbus exception)."""

    def __init__(self, text: str, code: int | None = None) -> None:
        super().__init__(text)
        self.code = code


def _val(point: Any) -> float | None:
    """A point's computed value (scale factor applied); None when not implemented."""
    if point is None or point.value is None:
        return None
    try:
        return float(point.cvalue)
    except (TypeError, ValueError):
        return float(point.value)


class SunSpecClient:
    """One SunSpec device over Modbus TCP (``SunSpecClient(host, port, device_id)``)."""

    def __init__(
        self, host: str, port: int, device_id: str = "", unit: int = 1, timeout_s: float = 3.0
    ) -> None:
        self.host, self.port, self.unit = host, int(port), int(unit)
        self.device_id = device_id or f"{host}:{port}"
        self.client = AsyncModbusTcpClient(host, port=self.port, timeout=timeout_s, retries=1)
        self.models: dict[int, tuple[int, int]] = {}  # id -> (address of ID, length incl. ID and L)
        self._decoded: dict[int, Any] = {}  # one decoded object per model, refreshed on each read

    async def connect(self) -> dict[int, tuple[int, int]]:
        """Connect and scan the model list; returns model id -> (address, registers)."""
        if not await self.client.connect():
            raise SunSpecError(f"{self.device_id}: cannot connect to {self.host}:{self.port}")
        if tuple(await self._read(BASE_ADDR, 2)) != SUNS:
            raise SunSpecError(f"{self.device_id}: no SunSpec marker at {BASE_ADDR}")
        addr = BASE_ADDR + 2
        for _ in range(64):
            mid, mlen = await self._read(addr, 2)
            if mid == 0xFFFF:
                break
            self.models[mid] = (addr, mlen + 2)
            addr += mlen + 2
        return dict(self.models)

    def close(self) -> None:
        """Close the connection."""
        self.client.close()

    async def _read(self, addr: int, count: int) -> list[int]:
        out: list[int] = []
        while count > 0:
            n = min(count, MAX_READ)
            rr = await self.client.read_holding_registers(addr, count=n, device_id=self.unit)
            if rr.isError():
                raise SunSpecError(
                    f"{self.device_id}: read {addr} refused", getattr(rr, "exception_code", None)
                )
            out += list(rr.registers)
            addr, count = addr + n, count - n
        return out

    async def read_model(self, model_id: int) -> Any:
        """One model, decoded (pysunspec2 model object)."""
        if model_id not in self.models:
            raise SunSpecError(f"{self.device_id}: has no model {model_id}")
        a, n = self.models[model_id]
        regs = await self._read(a, n)
        m = self._decoded.get(model_id)
        if m is None:
            m = self._decoded[model_id] = decode(model_id, regs)
        else:
            m.set_mb(to_bytes(regs))
        return m

    async def readings(self) -> dict[str, float]:
        """The device's AC measurements as telemetry quantities: ``p_kw`` (+ consumption, so an
        inverter injecting is negative), ``q_kvar``, ``v_pu`` (to VNom of 702), ``f_hz``,
        ``e_export_kwh`` / ``e_import_kwh`` (injected / absorbed), ``soc_pct`` (713)."""
        m = await self.read_model(701)
        out: dict[str, float] = {}
        w, var, v, hz = _val(m.W), _val(m.Var), _val(m.LNV), _val(m.Hz)
        if w is not None:
            out["p_kw"] = -w / 1e3
        if var is not None:
            out["q_kvar"] = -var / 1e3
        if hz is not None:
            out["f_hz"] = hz
        inj, ab = _val(m.TotWhInj), _val(m.TotWhAbs)
        if inj is not None:
            out["e_export_kwh"] = inj / 1e3
        if ab is not None:
            out["e_import_kwh"] = ab / 1e3
        if v is not None and 702 in self.models:
            vnom = _val((await self.read_model(702)).VNomRtg)
            if vnom:
                out["v_pu"] = v / vnom
        if 713 in self.models:
            soc = _val((await self.read_model(713)).SoC)
            if soc is not None:
                out["soc_pct"] = soc
        return out

    # --- writes --------------------------------------------------------------------------------
    async def _write(
        self, model_id: int, kind: str, setter: Any, force: tuple[str, ...] = ()
    ) -> CommandResult:
        """Set points on the decoded model (``setter(model)``), write the changed registers
        (and the ``force``-d points even if unchanged: a repeated request), read back; the
        result names the Modbus transaction as its message id."""
        msg = f"mb-{self.device_id}-{next(_tx)}"
        t0 = time.perf_counter()

        def res(ok: bool, status: str, reason: str = "") -> CommandResult:
            ms = (time.perf_counter() - t0) * 1e3
            return CommandResult(self.device_id, "sunspec", kind, ok, status, msg, reason, ms)

        try:
            m = await self.read_model(model_id)
            before = to_regs(m.get_mb())
            why = setter(m)
            if why:
                return res(False, "invalid", why)
            after = to_regs(m.get_mb())
            a0 = self.models[model_id][0]
            runs = _runs(before, after)
            for name in force:
                pt = getattr(m, name)
                if not any(o <= pt.offset < o + len(v) for o, v in runs):
                    runs.append((pt.offset, after[pt.offset : pt.offset + pt.len]))
            for start, vals in runs:
                rr = await self.client.write_registers(a0 + start, vals, device_id=self.unit)
                if rr.isError():
                    code = getattr(rr, "exception_code", 0)
                    return res(False, f"exception {code}", f"register {a0 + start}")
            back = await self._read(a0, len(after))
        except SunSpecError as exc:
            return res(False, f"exception {exc.code}" if exc.code else "error", str(exc)[:120])
        except (ModbusException, TimeoutError, OSError) as exc:
            return res(False, "timeout", str(exc)[:120])
        for start, vals in runs:
            if back[start : start + len(vals)] != vals:
                return res(False, "readback_mismatch", f"register {a0 + start}")
        return res(True, "Accepted")

    async def set_power_limit(self, pct: float) -> CommandResult:
        """Active-power limit, % of WMax (704 ``WMaxLimPct``, enabled), read back."""

        def setter(m: Any) -> str:
            if not 0.0 <= pct <= 100.0:
                return f"pct: must be within 0..100, got {pct}"
            m.WMaxLimPct.cvalue = float(pct)
            m.WMaxLimPctEna.value = 1
            return ""

        return await self._write(704, "p_limit_pct", setter)

    async def set_storage_w(self, w: float) -> CommandResult:
        """Storage set point, W (gridpilot's sign: + charging), as 704 ``WSet`` (+ = injection)."""

        def setter(m: Any) -> str:
            m.WSet.cvalue = -float(w)
            m.WSetEna.value = 1
            return ""

        return await self._write(704, "storage_w", setter)

    async def set_volt_var(  # noqa: C901
        self, curve: tuple[tuple[float, float], ...], wait_s: float = 1.0
    ) -> CommandResult:
        """Write a volt-var curve ((V % of nominal, var % of rating), ...) into the first
        writable curve of 705, request its adoption (``AdptCrvReq``), read the model back
        (points equal, ``AdptCrvRslt`` completed) and enable volt-var (``Ena``, read back)."""
        msg = f"mb-{self.device_id}-{next(_tx)}"
        t0 = time.perf_counter()

        def res(ok: bool, status: str, reason: str = "") -> CommandResult:
            ms = (time.perf_counter() - t0) * 1e3
            return CommandResult(self.device_id, "sunspec", "volt_var", ok, status, msg, reason, ms)

        try:
            m = await self.read_model(705)
            k = next((i + 1 for i, c in enumerate(m.Crv) if c.ReadOnly.value == 0), 0)
            if not k or not 2 <= len(curve) <= len(m.Crv[k - 1].Pt):
                return res(
                    False, "invalid", f"no writable curve or not 2..NPt points: {len(curve)}"
                )
            before = to_regs(m.get_mb())
            crv = m.Crv[k - 1]
            crv.ActPt.value = len(curve)
            for p, (v, q) in zip(crv.Pt, curve, strict=False):
                p.V.cvalue, p.Var.cvalue = float(v), float(q)
            after = to_regs(m.get_mb())
            runs = [*_runs(before, after), (m.AdptCrvReq.offset, [k])]
            a0, n = self.models[705]
            rslt_at, ena_at = m.AdptCrvRslt.offset, m.Ena.offset
            for off, vals in runs:  # the points first, then the adoption request
                rr = await self.client.write_registers(a0 + off, vals, device_id=self.unit)
                if rr.isError():
                    return res(
                        False,
                        f"exception {getattr(rr, 'exception_code', 0)}",
                        f"register {a0 + off}",
                    )
            for _ in range(max(int(wait_s / 0.05), 1)):
                back = await self._read(a0, n)
                if back[rslt_at]:
                    break
                await asyncio.sleep(0.05)
            if any(back[o : o + len(v)] != v for o, v in runs[:-1]):
                return res(False, "readback_mismatch", "volt-var points")
            if back[rslt_at] != 1:
                why = f"AdptCrvRslt {back[rslt_at]}"
                return res(False, "adopt_failed" if back[rslt_at] == 2 else "adopt_pending", why)
            if back[ena_at] != 1:
                rr = await self.client.write_registers(a0 + ena_at, [1], device_id=self.unit)
                if rr.isError():
                    return res(False, f"exception {getattr(rr, 'exception_code', 0)}", "Ena")
                if (await self._read(a0 + ena_at, 1))[0] != 1:
                    return res(False, "readback_mismatch", "Ena")
        except SunSpecError as exc:
            return res(False, f"exception {exc.code}" if exc.code else "error", str(exc)[:120])
        except (ModbusException, TimeoutError, OSError) as exc:
            return res(False, "timeout", str(exc)[:120])
        return res(True, "Accepted")


def _runs(before: list[int], after: list[int]) -> list[tuple[int, list[int]]]:
    """Contiguous runs of changed registers: (offset, values)."""
    out: list[tuple[int, list[int]]] = []
    for i, (a, b) in enumerate(zip(before, after, strict=True)):
        if a != b:
            if out and out[-1][0] + len(out[-1][1]) == i and len(out[-1][1]) < 120:
                out[-1][1].append(b)
            else:
                out.append((i, [b]))
    return out
