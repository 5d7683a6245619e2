"""Typed elements of the unbalanced (multi-phase) grid model.

Every element names the buses it connects and, per conductor, the bus node it lands on
(``nodes``; OpenDSS numbering: 1, 2, 3 are phases, 0 is ground, 4+ neutrals or secondaries).
Impedances are in ohm, admittances in siemens, voltages in kV (line-to-line for multi-phase
elements unless a field says ``_ln``), powers in kW/kvar/kVA.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# km per OpenDSS length unit ("none": the script gave no unit, so no conversion is known)
LENGTH_KM = {"km": 1.0, "m": 1e-3, "cm": 1e-5, "mm": 1e-6, "mi": 1.609344, "kft": 0.3048,
             "ft": 0.3048e-3, "in": 0.0254e-3}  # fmt: skip


@dataclass
class Terminal:
    """One end of an element: the bus and the node of each of its conductors (0 = ground)."""

    bus: str
    nodes: tuple[int, ...]


@dataclass
class Source:
    """A Thevenin voltage source: ``pu`` × ``kv_ll`` behind the sequence impedances."""

    name: str
    terminal: Terminal
    kv_ll: float
    pu: float
    angle_deg: float
    z1_ohm: complex
    z0_ohm: complex
    phases: int = 3


@dataclass
class Branch:
    """A series element between two terminals: a line, cable, switch, fuse or series reactor.

    ``z_ohm`` is the full series impedance matrix (phases × phases, already Kron-reduced),
    ``y_shunt_s`` the total shunt admittance (half at each end). ``length`` and
    ``length_unit`` are the line's length as the script gives it (OpenDSS units: ``km``,
    ``mi``, ``kft``, ``ft``, ``m``, …, or ``none``); :attr:`length_km` converts it.
    """

    name: str
    kind: str  # "line" | "switch" | "reactor"
    t1: Terminal
    t2: Terminal
    z_ohm: np.ndarray
    y_shunt_s: np.ndarray
    norm_amps: float = 0.0
    emerg_amps: float = 0.0
    enabled: bool = True
    closed: bool = True
    length: float = 0.0
    length_unit: str = "none"

    @property
    def length_km(self) -> float | None:
        """The length in km, or ``None`` where the script gives no unit."""
        f = LENGTH_KM.get(self.length_unit.lower())
        return None if f is None else self.length * f

    @property
    def phases(self) -> int:
        """Number of phase conductors."""
        return int(self.z_ohm.shape[0])


@dataclass
class Winding:
    """One transformer winding: connection, rated kV (LL for multi-phase), kVA, %R and tap."""

    terminal: Terminal
    conn: str  # "wye" | "delta"
    kv: float
    kva: float
    r_pct: float
    tap: float = 1.0
    min_tap: float = 0.9
    max_tap: float = 1.1
    num_taps: int = 32

    @property
    def tap_step(self) -> float:
        """Per-unit change of one tap step."""
        return (self.max_tap - self.min_tap) / max(self.num_taps, 1)


@dataclass
class Shunt:
    """A fixed shunt element (OpenDSS's shunt Reactor, wye to ground or to a neutral bus, or
    delta): its primitive admittance ``y_prim`` (siemens) over the conductors of
    ``terminals`` in order (a grounded conductor is node 0), as OpenDSS builds it."""

    name: str
    kind: str  # "reactor"
    terminals: list[Terminal]
    y_prim: np.ndarray
    enabled: bool = True


@dataclass
class Transformer:
    """A transformer of 2+ windings (3 for centre-tapped split-phase service units).

    ``xsc_pct`` lists the short-circuit reactances in OpenDSS order (X12, X13, ..., X23, ...)
    on winding 1's kVA base.
    """

    name: str
    phases: int
    windings: list[Winding]
    xsc_pct: list[float]
    imag_pct: float = 0.0
    noloadloss_pct: float = 0.0
    ppm_antifloat: float = 1.0
    norm_hkva: float = 0.0
    lead_lag: str = "lag"
    enabled: bool = True


@dataclass
class RegControl:
    """A voltage regulator control on a transformer winding (OpenDSS RegControl).

    ``vreg_v`` and ``band_v`` are on the PT secondary (120 V) base; ``r_v``/``x_v`` the
    line-drop compensator settings in volts; delays in seconds. ``pt_phase``: the phase
    measured, or ``PT_MAX`` / ``PT_MIN`` (the highest / lowest phase voltage). ``bus``: a
    remote regulated bus (``name.node...``; measured through ``remote_ptratio``, no LDC),
    empty for the winding itself. ``max_tap_change`` 0 freezes the regulator.
    ``reversible``: after ``rev_delay_s`` of power flowing back through the winding terminal
    beyond ``rev_threshold_kw`` the regulator regulates on ``rev_vreg_v``/``rev_band_v``
    with ``rev_r_v``/``rev_x_v`` LDC, taps moving the other way (OpenDSS's default reverse
    mode; time series only). ``rev_neutral``: in reverse (or cogen) mode the regulator
    goes to its neutral tap (1.0) one tap per ``tapdelay_s`` and stays there.
    ``cogen``: reverse flow switches to cogeneration mode instead, where the regulator keeps
    regulating forward (taps the usual way, no division by the tap) on the reverse
    settings ``rev_vreg_v``/``rev_band_v``/``rev_r_v``/``rev_x_v``. Reverse power is
    watched in static (snapshot) mode too, the mode toggling after ``rev_delay_s``.
    ``inverse_time``: the delay before the first tap is ``delay_s`` divided by
    ``min(10, 2·|vreg − V|/band)`` (OpenDSS InverseTime). ``ldc_z_v`` (``rev_ldc_z_v`` in
    reverse or cogen mode), when nonzero, replaces the R/X compensator with Beckwith's
    ``|V| − Z·|I|/CT`` (OpenDSS LDC_Z / rev_Z). ``vlimit_v`` (> 0): when the regulator's
    own winding voltage (PT phase, 120 V base) is above it, the regulator taps down by
    ``vlimit − V`` whatever the band says (OpenDSS VLimit).
    """

    name: str
    transformer: str
    winding: int
    vreg_v: float
    band_v: float
    ptratio: float
    ctprim_a: float
    r_v: float = 0.0
    x_v: float = 0.0
    delay_s: float = 15.0
    tapdelay_s: float = 2.0
    max_tap_change: int = 16
    pt_phase: int = 1
    tap_winding: int = 2
    bus: str = ""
    remote_ptratio: float = 60.0
    reversible: bool = False
    rev_vreg_v: float = 120.0
    rev_band_v: float = 3.0
    rev_r_v: float = 0.0
    rev_x_v: float = 0.0
    rev_threshold_kw: float = 100.0
    rev_delay_s: float = 60.0
    rev_neutral: bool = False
    cogen: bool = False
    inverse_time: bool = False
    ldc_z_v: float = 0.0
    rev_ldc_z_v: float = 0.0
    vlimit_v: float = 0.0
    enabled: bool = True


PT_MAX, PT_MIN, PT_AVG = -1, -2, -3  # pt_phase / ct_phase: highest, lowest, mean phase


@dataclass
class Capacitor:
    """A shunt capacitor bank of one or more steps (``kvar`` per step, ``states`` 1 = in)."""

    name: str
    t1: Terminal
    t2: Terminal
    conn: str
    kv: float
    kvar: list[float]
    states: list[int]
    phases: int
    enabled: bool = True


@dataclass
class CapControl:
    """A capacitor control (OpenDSS CapControl): kvar, voltage, current, pf or time type.

    Settings are in the type's units after ``ptratio``/``ctratio``; delays in seconds. For
    ``pf`` they are OpenDSS's 0..2 power factors (lagging as is, leading ``2 + pf`` for a
    negative setting, so > 1 is leading); for ``time`` hours of the day.
    ``pf_min_kvar_pct``: a pf control closes an open bank only while the kvar flowing
    exceeds this share of the bank's total kvar (OpenDSS ``pctMinkvar``). ``pt_phase`` and
    ``ct_phase``: a phase, or ``PT_MAX`` / ``PT_MIN`` / ``PT_AVG`` over the phases.
    ``vbus``: the bus whose voltage the voltage override reads instead of the monitored
    terminal (OpenDSS VBus; the bank's phases in the bus's node order), empty for none.
    """

    name: str
    capacitor: str
    element: str
    terminal: int
    type: str
    on_setting: float
    off_setting: float
    delay_s: float = 15.0
    delay_off_s: float = 15.0
    dead_time_s: float = 300.0
    ptratio: float = 60.0
    ctratio: float = 60.0
    volt_override: bool = False
    vmin_v: float = 115.0
    vmax_v: float = 126.0
    pt_phase: int = 1
    ct_phase: int = 1
    pf_min_kvar_pct: float = 50.0
    vbus: str = ""
    enabled: bool = True


@dataclass
class Load:
    """A load (also used for generators, PV, storage and EV chargers with ``kind``).

    ``kw``/``kvar`` are totals over the phases (negative for generation when ``kind`` is not
    ``"load"`` they are given as produced power and negated by the engine). ``model``: 1
    constant PQ, 2 constant Z, 4 exponential (CVR), 5 constant current magnitude, 8 ZIP
    (``zipv``).
    """

    name: str
    terminal: Terminal
    phases: int
    conn: str
    kv: float
    kw: float
    kvar: float
    model: int = 1
    vminpu: float = 0.95
    vmaxpu: float = 1.05
    zipv: tuple[float, ...] = ()
    cvr_watts: float = 1.0
    cvr_vars: float = 2.0
    daily: str | None = None
    yearly: str | None = None
    duty: str | None = None
    kind: str = "load"  # load | generator | pv | storage | ev
    status: str = "variable"  # variable | fixed (no shapes, no multiplier) | exempt (no multiplier)
    enabled: bool = True


@dataclass
class Fuse:
    """A fuse (or recloser, relay) protecting a switchable branch."""

    name: str
    branch: str
    rated_a: float = 0.0
    kind: str = "fuse"
    enabled: bool = True


@dataclass
class LoadShape:
    """A multiplier shape: ``mult`` (and ``qmult``) at ``hours`` since the start (h)."""

    name: str
    mult: np.ndarray
    hours: np.ndarray
    qmult: np.ndarray | None = None
    interval_h: float = 1.0

    def at(self, t_h: np.ndarray) -> np.ndarray:
        """Multiplier at times ``t_h`` (hours since the start), as OpenDSS reads a shape:
        fixed interval: point ``round(t/interval)`` (1-based, wrapping, 0 → the last);
        otherwise linear interpolation in ``hours``, wrapping round the last hour."""
        t = np.asarray(t_h, float)
        n = len(self.mult)
        if n == 0:
            return np.ones_like(t)
        if self.interval_h > 0:
            idx = np.rint(t / self.interval_h).astype(np.int64) % n
            return self.mult[np.where(idx == 0, n, idx) - 1]
        span = self.hours[-1] if self.hours[-1] > 0 else 24.0
        return np.interp(t % span, self.hours, self.mult)


@dataclass
class Counts:
    """Element counts of a grid (used by ``gridpilot grids`` and the importer tests)."""

    buses: int = 0
    nodes: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
