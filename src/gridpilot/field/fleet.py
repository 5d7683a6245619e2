"""The device fleet: households (one smart meter each) and their devices, as numpy arrays.

No Python object per device: every kind is a set of parallel arrays (structure of arrays),
indexed by the device's position within its kind. Each household has a smart meter attached
to one grid load; its PV inverter, home battery, EV (with charger) and electric water heater,
when it has them, point to that meter (``meter`` column). A device's global index is
``offset[kind] + position`` (see :meth:`DeviceFleet.device_kind`).

Sizing (documented default): a household stands for ``household_kw`` (0.8 kW) of the grid
load's ``p_mw``; its base demand (everything but its PV, battery, EV and water heater) has the
mean ``base_share * household_kw`` (65 %, individual sizes lognormal) and follows the load's
profile; the devices add the rest on average. Shares of households with PV (20 %), a battery
(5 %), an EV (10 %, 7.4 kW chargers) and a water heater (30 %). With ``n_devices`` not given,
each grid load gets ``round(p_mw * 1000 / household_kw)`` households (at least one): the fleet
is the grid's load at its natural size (``meter_scale`` about 1). With ``n_devices`` given,
the households are spread over the loads in proportion to their ``p_mw`` and each meter's
power is multiplied by ``meter_scale`` (the load's power over its households' nominal power)
before it enters the power flow; readings always stay in household kW.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gridpilot.errors import Issue, ValidationError
from gridpilot.model import Grid

KINDS = ("meter", "pv", "battery", "ev", "water_heater")


@dataclass
class FleetConfig:
    """How the fleet is built (see the module docstring). Units in the names."""

    n_devices: int | None = None
    household_kw: float = 0.8
    base_share: float = 0.65
    share_pv: float = 0.2
    share_battery: float = 0.05
    share_ev: float = 0.1
    share_water_heater: float = 0.3
    pv_kwp: float = 5.0
    battery_kwh: float = 10.0
    battery_kw: float = 5.0
    ev_kwh: float = 50.0
    ev_charger_kw: float = 7.4
    ev_v2g_share: float = 0.1
    wh_kw: float = 3.0
    wh_litres: float = 200.0
    seed: int = 0

    def validate(self) -> None:
        """Raise :class:`~gridpilot.errors.ValidationError` naming any bad field."""
        issues = []
        if self.n_devices is not None and self.n_devices < 1:
            issues.append(Issue("fleet", "n_devices", "must be at least 1", value=self.n_devices))
        for name in (
            "base_share",
            "share_pv",
            "share_battery",
            "share_ev",
            "share_water_heater",
            "ev_v2g_share",
        ):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                issues.append(Issue("fleet", name, "must be in [0, 1]", value=v))
        for name in (
            "household_kw",
            "pv_kwp",
            "battery_kwh",
            "battery_kw",
            "ev_kwh",
            "ev_charger_kw",
            "wh_kw",
            "wh_litres",
        ):
            v = getattr(self, name)
            if not v > 0:
                issues.append(Issue("fleet", name, "must be positive", value=v))
        if issues:
            raise ValidationError(issues=issues)

    @property
    def devices_per_household(self) -> float:
        """Mean number of devices per household (the meter included)."""
        return 1.0 + self.share_pv + self.share_battery + self.share_ev + self.share_water_heater


@dataclass
class DeviceFleet:
    """Every device's state, as arrays (see the module docstring for the layout and units)."""

    # meters (one per household)
    meter_load: np.ndarray  # position of the grid load it belongs to
    meter_bus: np.ndarray  # bus position
    meter_scale: np.ndarray  # power-flow multiplier (1 at natural size)
    meter_base_kw: np.ndarray  # household's mean base demand, kW
    meter_ar: np.ndarray  # AR(1) state of the demand noise
    meter_online: np.ndarray
    e_import_kwh: np.ndarray
    e_export_kwh: np.ndarray
    tamper_factor: np.ndarray  # reported/true import power (1 honest, < 1 theft)
    fdi_v_bias_pu: np.ndarray  # false data added to reported voltage
    fdi_p_factor: np.ndarray  # false multiplier on reported power (1 none)
    fdi_replay: np.ndarray  # bool: report the readings of one day earlier
    # PV inverters
    pv_meter: np.ndarray
    pv_kwp: np.ndarray
    pv_limit_frac: np.ndarray  # curtailment setpoint 0..1
    pv_online: np.ndarray
    # home batteries
    bat_meter: np.ndarray
    bat_kwh: np.ndarray
    bat_kw: np.ndarray
    bat_soc: np.ndarray  # 0..1
    bat_setpoint_kw: np.ndarray  # + charge
    bat_auto: np.ndarray  # bool: self-consumption mode (else follows the setpoint)
    bat_online: np.ndarray
    # EVs and their chargers
    ev_meter: np.ndarray
    ev_kwh: np.ndarray
    ev_charger_kw: np.ndarray
    ev_limit_kw: np.ndarray  # setpoint (negative allowed for V2G chargers)
    ev_v2g: np.ndarray
    ev_soc: np.ndarray
    ev_target_soc: np.ndarray
    ev_arrive_h: np.ndarray
    ev_depart_h: np.ndarray
    ev_plugged: np.ndarray
    ev_online: np.ndarray
    # water heaters
    wh_meter: np.ndarray
    wh_kw: np.ndarray
    wh_cap_kwh_per_k: np.ndarray
    wh_ua_kw_per_k: np.ndarray
    wh_temp_c: np.ndarray
    wh_low_c: np.ndarray  # thermostat switches on below
    wh_high_c: np.ndarray  # thermostat switches off above
    wh_comfort_min_c: np.ndarray  # a pause is overridden below this
    wh_heating: np.ndarray
    wh_paused: np.ndarray
    wh_online: np.ndarray
    config: FleetConfig = field(default_factory=FleetConfig)

    @property
    def counts(self) -> dict[str, int]:
        """Number of devices of each kind."""
        return {
            "meter": self.meter_load.size,
            "pv": self.pv_meter.size,
            "battery": self.bat_meter.size,
            "ev": self.ev_meter.size,
            "water_heater": self.wh_meter.size,
        }

    @property
    def n_devices(self) -> int:
        """Total number of devices, meters included."""
        return sum(self.counts.values())

    @property
    def offsets(self) -> dict[str, int]:
        """Global index of each kind's first device (kinds in :data:`KINDS` order)."""
        out, k = {}, 0
        for kind, n in self.counts.items():
            out[kind] = k
            k += n
        return out

    def device_kind(self, index: int) -> tuple[str, int]:
        """(kind, position within the kind) of global device ``index``."""
        for kind, off in reversed(list(self.offsets.items())):
            if index >= off:
                if index - off >= self.counts[kind]:
                    break
                return kind, index - off
        raise ValidationError(
            issues=[Issue("device", "index", f"not in 0..{self.n_devices - 1}", value=index)]
        )

    def nbytes(self) -> int:
        """Memory held by the state arrays, in bytes."""
        return sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))


def _pick(rng: np.random.Generator, n_households: int, share: float) -> np.ndarray:
    k = round(share * n_households)
    return np.sort(rng.choice(n_households, size=k, replace=False)).astype(np.int64)


def _households_per_load(cfg: FleetConfig, p_kw: np.ndarray) -> np.ndarray:
    """Households per grid load: one per ``household_kw`` of its demand, or ``n_devices``
    spread in proportion to the demand (largest remainders first)."""
    if cfg.n_devices is None:
        per_load: np.ndarray = np.maximum(1, np.round(p_kw / cfg.household_kw)).astype(np.int64)
        return per_load
    n = p_kw.size
    h = max(1, round(cfg.n_devices / cfg.devices_per_household))
    w = p_kw / p_kw.sum() if p_kw.sum() > 0 else np.full(n, 1.0 / n)
    per_load = np.floor(w * h).astype(np.int64)
    rest = h - int(per_load.sum())
    if rest > 0:
        per_load[np.argsort(-(w * h - per_load))[:rest]] += 1
    return per_load


def build_fleet(grid: Grid, config: FleetConfig | None = None) -> DeviceFleet:
    """Build the device fleet for ``grid`` (see the module docstring); returns a :class:`DeviceFleet`."""
    cfg = config or FleetConfig()
    cfg.validate()
    ld = grid.load
    if len(ld) == 0:
        raise ValidationError(
            issues=[Issue("grid", "load", "the field simulator needs at least one load")]
        )
    rng = np.random.default_rng(cfg.seed)
    p_kw = np.maximum(ld["p_mw"] * 1e3, 0.0) * ld["in_service"]
    per_load = _households_per_load(cfg, p_kw)
    n_h = int(per_load.sum())
    meter_load = np.repeat(np.arange(len(ld), dtype=np.int32), per_load)
    meter_bus = grid.bus.position_map(ld["bus"])[meter_load].astype(np.int32)
    factor = rng.lognormal(0.0, 0.35, n_h)
    mean_f = np.bincount(meter_load, weights=factor, minlength=len(ld)) / np.maximum(per_load, 1)
    base_kw = factor / mean_f[meter_load] * cfg.household_kw * cfg.base_share
    scale = (p_kw / (np.maximum(per_load, 1) * cfg.household_kw))[meter_load]
    pv = _pick(rng, n_h, cfg.share_pv)
    bat = _pick(rng, n_h, cfg.share_battery)
    ev = _pick(rng, n_h, cfg.share_ev)
    wh = _pick(rng, n_h, cfg.share_water_heater)
    n_ev, n_wh = ev.size, wh.size
    cap = cfg.wh_litres * 4.186 / 3600.0  # kWh per kelvin
    f32 = np.float32
    return DeviceFleet(
        meter_load=meter_load,
        meter_bus=meter_bus,
        meter_scale=scale.astype(f32),
        meter_base_kw=base_kw.astype(f32),
        meter_ar=np.zeros(n_h, f32),
        meter_online=np.ones(n_h, bool),
        e_import_kwh=np.zeros(n_h),
        e_export_kwh=np.zeros(n_h),
        tamper_factor=np.ones(n_h, f32),
        fdi_v_bias_pu=np.zeros(n_h, f32),
        fdi_p_factor=np.ones(n_h, f32),
        fdi_replay=np.zeros(n_h, bool),
        pv_meter=pv,
        pv_kwp=(cfg.pv_kwp * rng.uniform(0.6, 1.4, pv.size)).astype(f32),
        pv_limit_frac=np.ones(pv.size, f32),
        pv_online=np.ones(pv.size, bool),
        bat_meter=bat,
        bat_kwh=np.full(bat.size, cfg.battery_kwh, f32),
        bat_kw=np.full(bat.size, cfg.battery_kw, f32),
        bat_soc=rng.uniform(0.3, 0.7, bat.size).astype(f32),
        bat_setpoint_kw=np.zeros(bat.size, f32),
        bat_auto=np.ones(bat.size, bool),
        bat_online=np.ones(bat.size, bool),
        ev_meter=ev,
        ev_kwh=(cfg.ev_kwh * rng.uniform(0.7, 1.3, n_ev)).astype(f32),
        ev_charger_kw=np.full(n_ev, cfg.ev_charger_kw, f32),
        ev_limit_kw=np.full(n_ev, cfg.ev_charger_kw, f32),
        ev_v2g=rng.random(n_ev) < cfg.ev_v2g_share,
        ev_soc=rng.uniform(0.5, 0.9, n_ev).astype(f32),
        ev_target_soc=rng.uniform(0.8, 1.0, n_ev).astype(f32),
        ev_arrive_h=np.clip(rng.normal(18.0, 1.5, n_ev), 14.0, 23.5).astype(f32),
        ev_depart_h=np.clip(rng.normal(7.5, 1.0, n_ev), 5.0, 10.0).astype(f32),
        ev_plugged=np.zeros(n_ev, bool),
        ev_online=np.ones(n_ev, bool),
        wh_meter=wh,
        wh_kw=np.full(n_wh, cfg.wh_kw, f32),
        wh_cap_kwh_per_k=np.full(n_wh, cap, f32),
        wh_ua_kw_per_k=np.full(n_wh, 0.0025, f32),
        wh_temp_c=rng.uniform(52.0, 60.0, n_wh).astype(f32),
        wh_low_c=np.full(n_wh, 50.0, f32),
        wh_high_c=np.full(n_wh, 60.0, f32),
        wh_comfort_min_c=np.full(n_wh, 42.0, f32),
        wh_heating=np.zeros(n_wh, bool),
        wh_paused=np.zeros(n_wh, bool),
        wh_online=np.ones(n_wh, bool),
        config=cfg,
    )
