"""Options of a hosting-capacity study, their validation, profiles and critical hours."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridpilot.errors import ValidationError

DERS = ("pv", "ev")


@dataclass(frozen=True)
class HostingOptions:
    """What counts as breaking the feeder, and the search resolution.

    Voltages in pu of each node's line-to-neutral base; ``step_kw`` is the answer's
    resolution; ``max_kw`` the largest size tried per node-phase. ``cloud_fraction``: the
    PV output after a cloud step (of its full output), checked with regulators and
    capacitors frozen; ``dv_step_pct`` the largest allowed change (for EV the charger
    switching on). ``vuf_limit_pct``: a three-phase bus may not be pushed above this voltage
    unbalance (nor above its own base value where that is higher). ``chunk``: candidate
    node-phases solved together as columns.
    """

    der: str = "pv"
    vmax_pu: float = 1.05
    vmin_pu: float = 0.95
    dv_step_pct: float = 3.0
    cloud_fraction: float = 0.2
    thermal_pu: float = 1.0
    vuf_limit_pct: float = 2.0
    reverse_flow: bool = True
    step_kw: float = 10.0
    max_kw: float = 5000.0
    chunk: int = 256

    def validate(self) -> None:
        """Raise :class:`ValidationError` naming the first bad field and its value."""
        if self.der not in DERS:
            raise ValidationError(f"der must be one of {DERS}, got {self.der!r}")
        for name in ("vmax_pu", "vmin_pu", "thermal_pu"):
            val = getattr(self, name)
            if not (0.0 < val <= 2.0) or not np.isfinite(val):
                raise ValidationError(f"{name} must be within 0-2 pu, got {val!r}")
        if self.vmin_pu >= self.vmax_pu:
            raise ValidationError(
                f"vmin_pu ({self.vmin_pu}) must be below vmax_pu ({self.vmax_pu})"
            )
        checks = {
            "dv_step_pct": (0.0, 100.0, self.dv_step_pct),
            "cloud_fraction": (0.0, 1.0, self.cloud_fraction),
            "vuf_limit_pct": (0.0, 100.0, self.vuf_limit_pct),
        }
        for name, (lo, hi, val) in checks.items():
            if not (lo <= val <= hi) or not np.isfinite(val):
                raise ValidationError(f"{name} must be within {lo}-{hi}, got {val!r}")
        if not (self.step_kw > 0 and self.max_kw >= self.step_kw):
            raise ValidationError(
                f"step_kw must be > 0 and max_kw >= step_kw, got {self.step_kw!r}, {self.max_kw!r}"
            )
        if self.chunk < 1:
            raise ValidationError(f"chunk must be >= 1, got {self.chunk!r}")


@dataclass(frozen=True)
class Scenario:
    """One critical hour: the feeder's load multiplier and the DER's output (0-1)."""

    label: str
    step: int
    load_mult: float
    der_pu: float


def clear_sky_pv(steps: int, resolution_s: float = 900.0) -> np.ndarray:
    """A year-long clear-sky PV shape (0-1 of the rating): a half sine between sunrise and
    sunset, days 9-15 h long over the seasons (northern mid-latitude)."""
    t_h = np.arange(steps) * resolution_s / 3600.0
    day = t_h / 24.0
    hour = t_h % 24.0
    length = 12.0 + 3.0 * np.sin(2 * np.pi * (day - 80) / 365.0)
    rise = 12.0 - length / 2
    x = (hour - rise) / length
    pv = np.where((x > 0) & (x < 1), np.sin(np.pi * np.clip(x, 0, 1)), 0.0)
    return pv * (0.8 + 0.2 * np.sin(2 * np.pi * (day - 80) / 365.0) ** 2)


def critical_scenarios(load_mult: np.ndarray, pv_pu: np.ndarray, der: str) -> list[Scenario]:
    """The hours that bind, taken from the profiles (same length, one value per step).

    PV: the lightest load while PV is at >= 90 % of its peak (PV at that output), and the
    lightest load while PV makes >= 10 % (at that output). EV: the heaviest load (charger
    at full power). Returns one :class:`Scenario` per distinct step.
    """
    lm = np.asarray(load_mult, float)
    pv = np.asarray(pv_pu, float)
    if lm.ndim != 1 or lm.shape != pv.shape or lm.size == 0:
        raise ValidationError(
            f"load and PV profiles must be 1-D and of equal length, got {lm.shape} and {pv.shape}"
        )
    if np.any(~np.isfinite(lm)) or np.any(lm < 0):
        raise ValidationError("load profile must be finite and >= 0")
    if np.any(~np.isfinite(pv)) or np.any((pv < 0) | (pv > 1.5)):
        raise ValidationError("PV profile must be finite and within 0-1.5 pu")
    if der == "ev":
        k = int(np.argmax(lm))
        return [Scenario("peak load", k, float(lm[k]), 1.0)]
    peak = pv.max()
    if peak <= 0:
        raise ValidationError("PV profile is zero throughout: no critical hour for PV")
    out: list[Scenario] = []
    for label, frac in (("min load at >=90% PV", 0.9), ("min load at >=10% PV", 0.1)):
        mask = pv >= frac * peak
        k = int(np.flatnonzero(mask)[np.argmin(lm[mask])])
        if all(s.step != k for s in out):
            out.append(Scenario(label, k, float(lm[k]), float(pv[k] / peak)))
    return out
