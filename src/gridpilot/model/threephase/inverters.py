"""Smart-inverter functions of IEEE 1547-2018 on the unbalanced model: volt-var and volt-watt.

An :class:`InverterControl` (OpenDSS's ``InvControl``) governs inverter-based DER of the grid
(``Load`` elements of kind ``pv`` or ``storage``), each with its :class:`InverterRating`
(apparent-power rating, largest reactive power, rated active power). Curves are piecewise
linear in the DER's terminal voltage (pu of its rated voltage; the mean over its phases):

* **volt-var**: reactive power in pu of ``kvar_max`` (positive = injected, raising the
  voltage), IEEE 1547-2018 Table 8 defaults for normal-performance Category A and B;
* **volt-watt**: the active-power ceiling in pu of the rated active power (``pmpp_kw``),
  Table 10 defaults (0.2 pu at 1.10 pu for DER that only generate, 0 for storage).

The twin applies them as OpenDSS does: control iterations around the power flow
(:mod:`gridpilot.twin.unbalanced.inverters`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gridpilot.errors import ValidationError


@dataclass(frozen=True)
class Curve:
    """A piecewise-linear curve ``y(v)``; flat beyond its first and last points."""

    v: tuple[float, ...]
    y: tuple[float, ...]

    def at(self, v: np.ndarray) -> np.ndarray:
        """The curve's value at voltages ``v`` (pu)."""
        return np.interp(v, self.v, self.y)

    def validate(self, what: str) -> None:
        """Raise :class:`ValidationError` naming ``what`` unless the points are usable."""
        v, y = np.asarray(self.v, float), np.asarray(self.y, float)
        if v.size < 2 or v.size != y.size:
            raise ValidationError(f"{what}: needs >= 2 points with as many v as y, got {self}")
        if not (np.all(np.isfinite(v)) and np.all(np.isfinite(y))):
            raise ValidationError(f"{what}: points must be finite, got {self}")
        if np.any(np.diff(v) < 0) or v[0] <= 0.0 or v[-1] > 2.0:
            raise ValidationError(f"{what}: voltages must rise within 0-2 pu, got {self.v}")
        if np.any(np.abs(y) > 1.0 + 1e-12):
            raise ValidationError(f"{what}: values must be within -1..1 pu, got {self.y}")


def voltvar_curve(category: str = "B", **points: float) -> Curve:
    """IEEE 1547-2018 default volt-var curve of ``category`` ("A" or "B"), with any of its
    points overridden by keyword (``v1..v4``, ``q1..q4``; q in pu of ``kvar_max``).

    A: (0.90, 0.25) (1.00, 0) (1.00, 0) (1.10, -0.25); B: (0.92, 0.44) (0.98, 0) (1.02, 0)
    (1.08, -0.44)."""
    base = {
        "A": {"v1": 0.90, "v2": 1.00, "v3": 1.00, "v4": 1.10,
              "q1": 0.25, "q2": 0.0, "q3": 0.0, "q4": -0.25},
        "B": {"v1": 0.92, "v2": 0.98, "v3": 1.02, "v4": 1.08,
              "q1": 0.44, "q2": 0.0, "q3": 0.0, "q4": -0.44},
    }  # fmt: skip
    cat = category.upper()
    if cat not in base:
        raise ValidationError(f"category must be 'A' or 'B', got {category!r}")
    unknown = set(points) - set(base[cat])
    if unknown:
        raise ValidationError(f"unknown volt-var point(s) {sorted(unknown)}")
    p = {**base[cat], **points}
    c = Curve(tuple(p[f"v{i}"] for i in range(1, 5)), tuple(p[f"q{i}"] for i in range(1, 5)))
    c.validate(f"volt-var curve (category {cat})")
    return c


def voltwatt_curve(v1: float = 1.06, v2: float = 1.10, p2: float = 0.2) -> Curve:
    """IEEE 1547-2018 default volt-watt curve: full power to ``v1``, ``p2`` (pu of rated)
    at ``v2`` and above (0.2 for DER that only generate; 0 for storage)."""
    c = Curve((v1, v2), (1.0, p2))
    c.validate("volt-watt curve")
    if v2 <= v1:
        raise ValidationError(f"volt-watt v2 ({v2}) must be above v1 ({v1})")
    return c


@dataclass(frozen=True)
class InverterRating:
    """One controlled DER (a ``pv`` or ``storage`` load element) and its inverter's ratings:
    ``kva`` apparent power, ``kvar_max`` largest reactive power (0: ``kva``), ``pmpp_kw``
    rated active power for volt-watt (0: the element's own kW)."""

    der: str
    kva: float
    kvar_max: float = 0.0
    pmpp_kw: float = 0.0


@dataclass
class InverterControl:
    """Volt-var and/or volt-watt on a set of inverters (OpenDSS ``InvControl``).

    ``mode``: ``voltvar``, ``voltwatt`` or ``vv_vw`` (both; reactive power has priority
    within ``kva``, the active power is curtailed to fit). ``delta_q``/``delta_p``: the
    share of the step towards the curve taken per control iteration (OpenDSS's
    ``deltaQ_factor``/``deltaP_factor``); ``var_tol`` (pu of ``kvar_max``) and ``v_tol``
    (pu) end the iterations (``VarChangeTolerance``/``VoltageChangeTolerance``)."""

    name: str
    inverters: list[InverterRating]
    mode: str = "voltvar"
    voltvar: Curve = field(default_factory=voltvar_curve)
    voltwatt: Curve = field(default_factory=voltwatt_curve)
    delta_q: float = 0.7
    delta_p: float = 0.7
    var_tol: float = 1e-3
    v_tol: float = 1e-5
    max_iter: int = 200
    enabled: bool = True

    def validate(self) -> None:
        """Raise :class:`ValidationError` naming the field and value that is wrong."""
        what = f"invcontrol.{self.name}"
        if self.mode not in ("voltvar", "voltwatt", "vv_vw"):
            raise ValidationError(
                f"{what}: mode must be voltvar, voltwatt or vv_vw, got {self.mode!r}"
            )
        self.voltvar.validate(f"{what} voltvar")
        self.voltwatt.validate(f"{what} voltwatt")
        for name in ("delta_q", "delta_p"):
            val = getattr(self, name)
            if not (0.0 < val <= 1.0):
                raise ValidationError(f"{what}: {name} must be within (0, 1], got {val!r}")
        if not (self.var_tol > 0 and self.v_tol > 0 and self.max_iter >= 1):
            raise ValidationError(
                f"{what}: var_tol, v_tol must be > 0 and max_iter >= 1, got "
                f"{self.var_tol!r}, {self.v_tol!r}, {self.max_iter!r}"
            )
        if not self.inverters:
            raise ValidationError(f"{what}: controls no inverter")
        for r in self.inverters:
            if not (r.kva > 0 and r.kvar_max >= 0 and r.pmpp_kw >= 0):
                raise ValidationError(
                    f"{what}: inverter {r.der!r} needs kva > 0, kvar_max >= 0, pmpp_kw >= 0, "
                    f"got {r.kva!r}, {r.kvar_max!r}, {r.pmpp_kw!r}"
                )
