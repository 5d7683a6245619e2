"""The device side: a field PV inverter or battery as a SunSpec Modbus TCP device (pymodbus).

:class:`Der` holds one device's IEEE 1547 models (1, 701, 702, 703, 704, 705 and, for a
battery, 713) in a register image and behaves like one: reads see the present AC measurements
(701) and state of charge (713); writes are checked before they land: a register outside an RW
point, or in the read-only volt-var curve 1, gets Modbus exception 2 (illegal data address); a
value out of range (``WMaxLimPct`` > 100 %, ``WSet`` beyond the rating, an enable not 0/1)
gets exception 3 (illegal data value). Writing ``AdptCrvReq`` = k adopts volt-var curve k
(``AdptCrvRslt`` 1 completed, 2 failed when the curve is not increasing in V or out of ±100 %).
:class:`DerHost` serves many on 127.0.0.1, one port each (as separate inverters are).
"""

from __future__ import annotations

import itertools
import logging
import socket
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from gridpilot.protocols.sunspec.image import BASE_ADDR, Image, build_image, decode, walk_points

log = logging.getLogger(__name__)
CURVE_POINTS = 4
DEFAULT_CURVE = ((92.0, 30.0), (96.7, 0.0), (103.0, 0.0), (107.0, -30.0))  # (V %, var % of rating)


@dataclass
class DerSpec:
    """One device: id, ``pv`` or ``battery``, rating (W), reactive rating (var), energy (Wh), V
    nominal. W, VA and var registers carry the scale factor :attr:`w_sf` (10^w_sf W per count:
    0 up to 32 kW, 1 up to 320 kW, ...)."""

    device_id: str
    kind: str = "pv"
    w_rtg: float = 10_000.0
    var_rtg: float = 4_400.0
    wh_rtg: float = 0.0
    v_nom: float = 230.0

    @property
    def w_sf(self) -> int:
        """Scale factor of W, VA and var (and 704 ``WSet``): the smallest keeping the ratings
        within a 16-bit signed register (+-32,767 counts)."""
        big = max(abs(self.w_rtg), abs(self.var_rtg), 1.0)
        return max(int(np.ceil(np.log10(big / 32_767.0))), 0)

    @property
    def wh_sf(self) -> int:
        """Scale factor of 713's Wh points: 1 (10 Wh per count) up to 655 kWh, then larger."""
        return max(int(np.ceil(np.log10(max(self.wh_rtg, 1.0) / 65_535.0))), 1)


def _curve(ro: int, pts: tuple[tuple[float, float], ...]) -> dict[str, Any]:
    return {
        "ActPt": len(pts),
        "DeptRef": 1,
        "Pri": 1,
        "VRef": 100,
        "VRefAutoEna": 0,
        "ReadOnly": ro,
        "Pt": [{"V": round(v * 100), "Var": round(q * 100)} for v, q in pts],
    }


def _ac_models(spec: DerSpec) -> list[dict[str, Any]]:
    """Models 1 (common), 701 (AC measurements, zero until refreshed) and 702 (capacity)."""
    v10, sf = round(spec.v_nom * 10), spec.w_sf
    common = {"ID": 1, "Mn": "gridpilot", "Md": f"field-{spec.kind}", "Vr": "1",
              "SN": spec.device_id[:32], "DA": 1}  # fmt: skip
    ac = {"ID": 701, "ACType": 1, "St": 1, "InvSt": 1, "ConnSt": 1, "Alrm": 0, "W": 0, "VA": 0,
          "Var": 0, "PF": 1000, "A": 0, "LLV": 0, "LNV": v10, "Hz": 5000, "TotWhInj": 0,
          "TotWhAbs": 0, "W_SF": sf, "VA_SF": sf, "Var_SF": sf, "PF_SF": -3, "A_SF": -1,
          "V_SF": -1, "Hz_SF": -2, "TotWh_SF": 0, "TotVarh_SF": 0, "Tmp_SF": 0}  # fmt: skip
    w, var = round(spec.w_rtg / 10**sf), round(spec.var_rtg / 10**sf)
    cap = {"ID": 702, "WMaxRtg": w, "VAMaxRtg": w, "VarMaxInjRtg": var, "VarMaxAbsRtg": var,
           "VNomRtg": v10, "WMax": w, "VNom": v10, "W_SF": sf, "PF_SF": -3, "VA_SF": sf,
           "Var_SF": sf, "V_SF": -1, "A_SF": 0, "S_SF": 0}  # fmt: skip
    return [common, ac, cap]


def _control_models(spec: DerSpec) -> list[dict[str, Any]]:
    """Models 703 (enter service), 704 (AC controls) and 705 (volt-var, 2 curves)."""
    enter = {"ID": 703, "ES": 1, "ESVHi": round(spec.v_nom * 11), "ESVLo": round(spec.v_nom * 9.2),
             "ESHzHi": 5010, "ESHzLo": 4990, "ESDlyTms": 300, "ESRndTms": 0, "ESRmpTms": 300,
             "V_SF": -1, "Hz_SF": -2}  # fmt: skip
    ctl = {"ID": 704, "WMaxLimPctEna": 0, "WMaxLimPct": 10000, "WSetEna": 0, "WSetMod": 1,
           "WSet": 0, "WSetPct": 0, "PF_SF": -3, "WMaxLimPct_SF": -2, "WSet_SF": spec.w_sf,
           "WSetPct_SF": -2, "VarSet_SF": 0, "VarSetPct_SF": -2}  # fmt: skip
    vv = {"ID": 705, "Ena": 0, "AdptCrvReq": 0, "AdptCrvRslt": 1, "NPt": CURVE_POINTS, "NCrv": 2,
          "RvrtTms": 0, "RvrtCrv": 0, "V_SF": -2, "DeptRef_SF": -2, "RspTms_SF": 0,
          "Crv": [_curve(1, DEFAULT_CURVE), _curve(0, DEFAULT_CURVE)]}  # fmt: skip
    return [enter, ctl, vv]


def der_models(spec: DerSpec) -> list[dict[str, Any]]:
    """The pysunspec2 data dicts of a device's models (scale factors: V 0.1, Hz 0.01, % 0.01);
    a battery adds 713 (storage capacity: WH in 10^wh_sf Wh, SoC in 0.01 %)."""
    models = _ac_models(spec) + _control_models(spec)
    if spec.kind == "battery":
        models.append({"ID": 713, "WHRtg": round(spec.wh_rtg / 10**spec.wh_sf), "WHAvail": 0,
                       "SoC": 5000, "SoH": 10000, "Sta": 1, "WH_SF": spec.wh_sf,
                       "Pct_SF": -2})  # fmt: skip
    return models


class Der:
    """A PV inverter or battery behind a SunSpec register image (see the module docstring).

    The field sets :attr:`avail_w` (PV: what the sun gives) and :attr:`v_v` (terminal voltage);
    :meth:`advance` integrates energy and SoC; :attr:`w` is the present active power, W
    (+ injection, the SunSpec sign), :attr:`var` the reactive power, var.
    """

    def __init__(self, spec: DerSpec) -> None:
        self.spec = spec
        self.image: Image = build_image(der_models(spec))
        self.avail_w = spec.w_rtg if spec.kind == "pv" else 0.0
        self.v_v = spec.v_nom
        self.soc = 0.5
        self.e_inj_wh = self.e_abs_wh = 0.0
        self.active_curve = 1  # index (1-based) of the curve adopted last
        self.vv_points: list[tuple[float, float]] = list(DEFAULT_CURVE)  # adopted (V %, var %)
        self.writes = {"accepted": 0, "refused": 0}
        self._c = self.image.model(704), self.image.model(705)
        c1 = walk_points(self._c[1].Crv[0])  # curve 1 is the read-only default
        self._curve1 = {self.image.addr[705] + p.offset + i for p in c1 for i in range(p.len)}
        self.refresh()

    # --- physics --------------------------------------------------------------------------------
    def _controls(self) -> tuple[Any, Any]:
        return self._c

    @property
    def w(self) -> float:
        """Active power now, W (+ injection)."""
        c704, _ = self._controls()
        s = self.spec
        if s.kind == "battery":
            want = float(c704.WSet.cvalue or 0.0) if c704.WSetEna.value == 1 else 0.0
            if (want > 0 and self.soc <= 0.0) or (want < 0 and self.soc >= 1.0):
                want = 0.0
            return float(np.clip(want, -s.w_rtg, s.w_rtg))
        lim = s.w_rtg
        if c704.WMaxLimPctEna.value == 1:
            lim = s.w_rtg * float(c704.WMaxLimPct.cvalue or 0.0) / 100.0
        return float(min(self.avail_w, lim, s.w_rtg))

    @property
    def var(self) -> float:
        """Reactive power now from the active volt-var curve (if enabled), var (+ injection)."""
        _, c705 = self._controls()
        if c705.Ena.value != 1:
            return 0.0
        v, q = zip(*self.vv_points, strict=True)
        return (
            float(np.interp(100.0 * self.v_v / self.spec.v_nom, v, q)) * self.spec.var_rtg / 100.0
        )

    def advance(self, dt_s: float) -> None:
        """Integrate energy (Wh) and SoC over ``dt_s`` seconds; refresh the registers."""
        e = self.w * dt_s / 3600.0
        if e >= 0:
            self.e_inj_wh += e
        else:
            self.e_abs_wh -= e
        if self.spec.kind == "battery" and self.spec.wh_rtg > 0:
            self.soc = float(np.clip(self.soc - e / self.spec.wh_rtg, 0.0, 1.0))
        self.refresh()

    def refresh(self) -> None:
        """Write the present measurements into 701 (and 713)."""
        img = self.image
        m = img.model(701)
        w, q = self.w, self.var
        u = 10.0**self.spec.w_sf  # W per count
        m.W.value, m.Var.value = round(w / u), round(q / u)
        m.VA.value = round(float(np.hypot(w, q)) / u)
        m.PF.value = round(1000 * (w / max(np.hypot(w, q), 1e-9))) if w or q else 1000
        m.A.value = round(10 * np.hypot(w, q) / max(self.v_v, 1.0))
        m.LNV.value = round(self.v_v * 10)
        m.TotWhInj.value, m.TotWhAbs.value = round(self.e_inj_wh), round(self.e_abs_wh)
        img.put(701, m)
        if 713 in img.addr:
            b = img.model(713)
            b.SoC.value = round(self.soc * 10000)
            b.WHAvail.value = round(self.soc * self.spec.wh_rtg / 10**self.spec.wh_sf)
            img.put(713, b)

    # --- the register behaviour -------------------------------------------------------------------
    def check_write(self, address: int, values: list[int]) -> ExcCodes | None:
        """Validate a write of ``values`` at ``address``; apply it to the image when valid."""
        img = self.image
        span = range(address, address + len(values))
        if any(a not in img.writable or a in self._curve1 for a in span):
            return ExcCodes.ILLEGAL_ADDRESS
        old = list(img.regs)
        img.regs[address - BASE_ADDR : address - BASE_ADDR + len(values)] = values
        mid = max(m for m, a in img.addr.items() if a <= address)
        m = img.model(mid)
        bad = self._bad_value(mid, m)
        if bad:
            img.regs[:] = old
            img.model(mid)  # the shared decoded object back to the registers in force
            log.info("device %s refused a write to model %d: %s", self.spec.device_id, mid, bad)
            return ExcCodes.ILLEGAL_VALUE
        if mid == 705 and img.addr[705] + 3 in span:  # AdptCrvReq
            self._adopt(m)
        if mid in (704, 705):
            # ``m`` is the image's shared object of this model, already in step with the registers
            self._c = (m if mid == 704 else self._c[0], m if mid == 705 else self._c[1])
            self.refresh()  # the measurements follow the new control at once (no ramp modelled)
        return None

    def _bad_value(self, mid: int, m: Any) -> str:
        if mid == 704:
            if m.WMaxLimPctEna.value not in (0, 1) or m.WSetEna.value not in (0, 1):
                return "an enable must be 0 or 1"
            if not 0.0 <= float(m.WMaxLimPct.cvalue) <= 100.0:
                return f"WMaxLimPct {m.WMaxLimPct.cvalue} outside 0..100 %"
            if abs(float(m.WSet.cvalue or 0)) > self.spec.w_rtg:
                return f"WSet {m.WSet.cvalue} W beyond the rating {self.spec.w_rtg} W"
            if self.spec.kind == "pv" and float(m.WSet.cvalue or 0) < 0:
                return "a PV inverter cannot absorb"
        if mid == 705:
            if m.Ena.value not in (0, 1):
                return "Ena must be 0 or 1"
            if not 0 <= int(m.AdptCrvReq.value or 0) <= int(m.NCrv.value):
                return f"AdptCrvReq {m.AdptCrvReq.value} is no curve"
        return ""

    def _adopt(self, m: Any) -> None:
        k = int(m.AdptCrvReq.value or 0)
        ok = k >= 1
        if ok:
            crv = m.Crv[k - 1]
            n = int(crv.ActPt.value or 0)
            v = [float(p.V.cvalue) for p in crv.Pt[: max(n, 0)]]
            q = [float(p.Var.cvalue) for p in crv.Pt[: max(n, 0)]]
            ok = 2 <= n <= CURVE_POINTS and all(b > a for a, b in itertools.pairwise(v))
            ok = ok and all(-100.0 <= x <= 100.0 for x in q) and all(50.0 <= x <= 150.0 for x in v)
        if ok:
            self.active_curve = k
            self.vv_points = list(zip(v, q, strict=True))
        m.AdptCrvRslt.value = 1 if ok else 2
        self.image.put(705, m)

    async def action(
        self,
        fc: int,
        start: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus hook: refresh reads from the image; check writes (and mirror them)."""
        if values is None:
            a0 = address - start
            registers[a0 : a0 + count] = self.image.regs[
                address - BASE_ADDR : address - BASE_ADDR + count
            ]
            return None
        rc = self.check_write(address, [int(v) for v in values])  # reads are served from the image
        self.writes["refused" if rc else "accepted"] += 1
        return rc

    def sim_device(self, unit: int = 1) -> SimDevice:
        """The pymodbus device serving this image."""
        data = SimData(BASE_ADDR, values=list(self.image.regs), datatype=DataType.REGISTERS)
        return SimDevice(id=unit, simdata=[data], action=self.action)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DerHost:
    """Serve devices on 127.0.0.1, one Modbus TCP port each (on the running event loop)."""

    def __init__(self, ders: list[Der]) -> None:
        self.ders = ders
        self.ports: dict[str, int] = {}
        self.servers: list[ModbusTcpServer] = []

    async def start(self) -> dict[str, int]:
        """Listen; returns device id -> port."""
        for d in self.ders:
            for _ in range(5):
                port = _free_port()
                srv = ModbusTcpServer(d.sim_device(), address=("127.0.0.1", port))
                try:
                    await srv.serve_forever(background=True)
                except RuntimeError:
                    continue
                self.servers.append(srv)
                self.ports[d.spec.device_id] = port
                break
        return dict(self.ports)

    async def stop(self) -> None:
        """Stop every server."""
        for s in self.servers:
            await s.shutdown()


def serve_image(models: list[dict[str, Any]]) -> SimDevice:
    """A plain pymodbus device (no behaviour) serving ``models`` (e.g. pysunspec2's test devices)."""
    img = build_image(models)
    return SimDevice(
        id=1, simdata=[SimData(BASE_ADDR, values=img.regs, datatype=DataType.REGISTERS)]
    )


__all__ = ["Der", "DerHost", "DerSpec", "decode", "der_models", "serve_image"]
