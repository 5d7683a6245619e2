"""Aggregated system frequency model and fast frequency response (FFR) of a battery/EV fleet.

One-bus swing equation in per unit of the system's rating ``s_mw``:

    2 H d(df)/dt = dPm + dP_ffr - dP_loss - D df           (df in pu of f0)
    T_g d(dPm)/dt = -df / R - dPm                           (governors, first-order lag)
    T_f d(dP_ffr)/dt = clip(-K * max(|df| - deadband, 0) sign(df), -P_dn, P_up) - dP_ffr

integrated with explicit Euler at ``dt_s``. The fleet's droop ``K`` comes from its power
headroom: full output at ``full_at_hz`` below nominal. Reports nadir, RoCoF (max |df/dt|
over the first 500 ms) and settling time (last time outside +-``settle_band_hz`` of the final
value).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from gridpilot.errors import ValidationError


@dataclass
class FrequencySystem:
    """The aggregated system. Reference: 30 GW, H = 4 s, D = 1 pu, governors R = 5 %, T_g = 6 s, 50 Hz."""

    s_mw: float = 30_000.0
    h_s: float = 4.0
    damping_pu: float = 1.0
    droop_r_pu: float = 0.05
    governor_t_s: float = 6.0
    governor_reserve_mw: float = 3_000.0
    f0_hz: float = 50.0

    def __post_init__(self) -> None:
        for name in ("s_mw", "h_s", "droop_r_pu", "governor_t_s", "f0_hz"):
            v = getattr(self, name)
            if not v > 0:
                raise ValidationError(f"frequency system: field '{name}' must be > 0, got {v!r}")


@dataclass
class FleetResponse:
    """Fast frequency response of a fleet: up/down headroom (MW), full output at ``full_at_hz``."""

    p_up_mw: float
    p_down_mw: float = 0.0
    deadband_hz: float = 0.015
    full_at_hz: float = 0.2
    t_response_s: float = 0.3

    def __post_init__(self) -> None:
        if self.p_up_mw < 0 or self.p_down_mw < 0:
            raise ValidationError(
                f"fleet response: headroom must be >= 0, got up {self.p_up_mw}, down {self.p_down_mw}"
            )
        if not self.full_at_hz > self.deadband_hz >= 0:
            raise ValidationError("fleet response: need full_at_hz > deadband_hz >= 0")
        if not self.t_response_s > 0:
            raise ValidationError("fleet response: field 't_response_s' must be > 0")


@dataclass
class FrequencyResult:
    """Trajectory and figures: ``nadir_hz`` (lowest f), ``rocof_hz_per_s``, ``settling_s``, ``ffr_peak_mw``."""

    t_s: np.ndarray
    f_hz: np.ndarray
    ffr_mw: np.ndarray
    nadir_hz: float
    nadir_t_s: float
    rocof_hz_per_s: float
    settling_s: float
    final_hz: float
    ffr_peak_mw: float

    def summary(self) -> dict[str, float]:
        """The figures without the trajectories."""
        d = asdict(self)
        return {k: float(v) for k, v in d.items() if k not in ("t_s", "f_hz", "ffr_mw")}


def simulate_loss(
    system: FrequencySystem,
    loss_mw: float,
    fleet: FleetResponse | None = None,
    duration_s: float = 60.0,
    dt_s: float = 0.01,
    settle_band_hz: float = 0.02,
) -> FrequencyResult:
    """Frequency after the sudden loss of ``loss_mw`` generation at t = 0 (with or without ``fleet``).

    Returns a :class:`FrequencyResult` (Hz, s, MW).
    """
    if not 0 < loss_mw < system.s_mw:
        raise ValidationError(f"loss_mw: must be in (0, {system.s_mw}), got {loss_mw!r}")
    if not 0 < dt_s <= 0.1 or duration_s <= dt_s:
        raise ValidationError(
            f"dt_s/duration_s: need 0 < dt_s <= 0.1 and duration_s > dt_s, got {dt_s}, {duration_s}"
        )
    n = round(duration_s / dt_s) + 1
    s = system.s_mw
    dp_loss = loss_mw / s
    gov_max = system.governor_reserve_mw / s
    f0 = system.f0_hz
    df = 0.0
    pm = 0.0
    pf = 0.0
    fs = np.empty(n)
    ff = np.empty(n)
    if fleet is not None:
        k_pu = fleet.p_up_mw / s / ((fleet.full_at_hz - fleet.deadband_hz) / f0)
        up, dn = fleet.p_up_mw / s, fleet.p_down_mw / s
        db = fleet.deadband_hz / f0
    for i in range(n):
        fs[i] = f0 * (1 + df)
        ff[i] = pf * s
        ddf = (pm + pf - dp_loss - system.damping_pu * df) / (2 * system.h_s)
        dpm = (np.clip(-df / system.droop_r_pu, -gov_max, gov_max) - pm) / system.governor_t_s
        dpf = 0.0
        if fleet is not None:
            dev = max(abs(df) - db, 0.0) * np.sign(-df)
            dpf = (float(np.clip(k_pu * dev, -dn, up)) - pf) / fleet.t_response_s
        df += ddf * dt_s
        pm += dpm * dt_s
        pf += dpf * dt_s
    t = np.arange(n) * dt_s
    k = int(np.argmin(fs))
    m = max(round(0.5 / dt_s), 1)
    rocof = float(np.max(np.abs(np.diff(fs[: m + 1]))) / dt_s)
    final = float(fs[-1])
    outside = np.flatnonzero(np.abs(fs - final) > settle_band_hz)
    settling = (
        float(t[outside[-1] + 1])
        if outside.size and outside[-1] + 1 < n
        else (0.0 if not outside.size else float("inf"))
    )
    return FrequencyResult(
        t, fs, ff, float(fs[k]), float(t[k]), rocof, settling, final, float(ff.max())
    )


def fleet_response_from(
    p_up_mw: float, p_down_mw: float = 0.0, replicas: float = 1.0, **kwargs: float
) -> FleetResponse:
    """A :class:`FleetResponse` of ``replicas`` copies of a fleet with the given headroom (MW each)."""
    return FleetResponse(p_up_mw * replicas, p_down_mw * replicas, **kwargs)


def compare(
    system: FrequencySystem, loss_mw: float, fleet: FleetResponse, **kwargs: float
) -> dict[str, object]:
    """Reference loss with and without the fleet: both summaries and the nadir improvement (%)."""
    a = simulate_loss(system, loss_mw, None, **kwargs)
    b = simulate_loss(system, loss_mw, fleet, **kwargs)
    f0 = system.f0_hz
    imp = 100.0 * (1 - (f0 - b.nadir_hz) / (f0 - a.nadir_hz)) if f0 > a.nadir_hz else 0.0
    return {
        "without": a.summary(),
        "with_fleet": b.summary(),
        "nadir_improvement_pct": imp,
        "system": asdict(system),
        "loss_mw": loss_mw,
        "fleet": asdict(fleet),
    }
