"""Measurements the control side has for one instant: voltage sensors and power sensors.

Columnar, one row per sensor. Power sensors measure a *load* (its total consumption, load
convention, e.g. the sum of the smart meters behind it), a *bus* (net consumption of
everything at the bus, load convention), a *line end* (flow into the line at its from or to
bus), a *source* or a *generator* (power fed in, generator convention), or a *storage* unit,
*EV charger* or *flexible load* (load convention). Every appliance needs a sensor (or a bus
sensor covering it) for the grid to be observable. Units: pu for
voltages, MW/Mvar for powers; sigmas are standard deviations in the same units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from gridpilot.errors import Issue, ValidationError
from gridpilot.model import Grid


class PowerSensorKind(IntEnum):
    """What a power sensor measures."""

    LOAD = 0  # a load's consumption (load convention)
    LINE_FROM = 1  # flow into a line at its from bus
    LINE_TO = 2  # flow into a line at its to bus
    SOURCE = 3  # power fed by a source (generator convention)
    BUS = 4  # net consumption at a bus (load convention)
    GENERATOR = 5  # a generator's output (generator convention)
    STORAGE = 6  # a storage unit's power (load convention, + charging)
    EV = 7  # an EV charger's power (load convention)
    FLEX = 8  # a flexible load's power (load convention)


_COMPONENT = {
    PowerSensorKind.LOAD: "load",
    PowerSensorKind.LINE_FROM: "line",
    PowerSensorKind.LINE_TO: "line",
    PowerSensorKind.SOURCE: "source",
    PowerSensorKind.BUS: "bus",
    PowerSensorKind.GENERATOR: "generator",
    PowerSensorKind.STORAGE: "storage",
    PowerSensorKind.EV: "ev_charger",
    PowerSensorKind.FLEX: "flex_load",
}


@dataclass
class Measurements:
    """Voltage and power measurements (one row per sensor, see the module docstring)."""

    v_bus_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    v_pu: np.ndarray = field(default_factory=lambda: np.zeros(0))
    v_sigma_pu: np.ndarray = field(default_factory=lambda: np.zeros(0))
    p_kind: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    p_element_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    p_mw: np.ndarray = field(default_factory=lambda: np.zeros(0))
    q_mvar: np.ndarray = field(default_factory=lambda: np.zeros(0))
    p_sigma_mw: np.ndarray = field(default_factory=lambda: np.zeros(0))
    q_sigma_mvar: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        self.v_bus_id = np.asarray(self.v_bus_id, np.int64).ravel()
        self.v_pu = np.asarray(self.v_pu, np.float64).ravel()
        self.v_sigma_pu = np.broadcast_to(
            np.asarray(self.v_sigma_pu, np.float64), self.v_pu.shape
        ).copy()
        self.p_kind = np.asarray(self.p_kind, np.int8).ravel()
        self.p_element_id = np.asarray(self.p_element_id, np.int64).ravel()
        n = self.p_kind.size
        self.p_mw = np.asarray(self.p_mw, np.float64).ravel()
        self.q_mvar = np.asarray(self.q_mvar, np.float64).ravel()
        self.p_sigma_mw = np.broadcast_to(np.asarray(self.p_sigma_mw, np.float64), (n,)).copy()
        self.q_sigma_mvar = np.broadcast_to(np.asarray(self.q_sigma_mvar, np.float64), (n,)).copy()
        issues: list[Issue] = []
        if self.v_bus_id.size != self.v_pu.size:
            issues.append(
                Issue(
                    "measurements",
                    "v_pu",
                    f"{self.v_pu.size} values for {self.v_bus_id.size} buses",
                )
            )
        for name in ("p_element_id", "p_mw", "q_mvar"):
            if getattr(self, name).size != n:
                issues.append(
                    Issue(
                        "measurements", name, f"{getattr(self, name).size} values for {n} sensors"
                    )
                )
        for name in ("v_pu", "p_mw", "q_mvar"):
            a = getattr(self, name)
            if a.size and not np.all(np.isfinite(a)):
                issues.append(Issue("measurements", name, "contains NaN or infinite values"))
        for name in ("v_sigma_pu", "p_sigma_mw", "q_sigma_mvar"):
            a = getattr(self, name)
            if a.size and not np.all(a > 0):
                issues.append(
                    Issue(
                        "measurements", name, "sigmas must be positive", value=float(a[~(a > 0)][0])
                    )
                )
        bad = set(np.unique(self.p_kind).tolist()) - {int(k) for k in PowerSensorKind}
        if bad:
            issues.append(
                Issue("measurements", "p_kind", "unknown sensor kind", value=sorted(bad)[0])
            )
        if issues:
            raise ValidationError(issues=issues)

    @property
    def n_scalar(self) -> int:
        """Number of scalar measurements (a voltage counts one, a power sensor two: P and Q)."""
        return int(self.v_pu.size + 2 * self.p_kind.size)

    def check_against(self, grid: Grid) -> None:
        """Raise :class:`~gridpilot.errors.ValidationError` naming any unknown element id."""
        issues: list[Issue] = []
        unknown = np.setdiff1d(self.v_bus_id, grid.bus.ids)
        if unknown.size:
            issues.append(
                Issue(
                    "voltage sensor",
                    "bus",
                    "unknown bus",
                    tuple(unknown[:5].tolist()),
                    int(unknown[0]),
                )
            )
        for kind, comp in _COMPONENT.items():
            ids = self.p_element_id[self.p_kind == kind]
            unknown = np.setdiff1d(ids, grid[comp].ids)
            if unknown.size:
                issues.append(
                    Issue(
                        f"power sensor ({kind.name.lower()})",
                        "element",
                        f"unknown {comp}",
                        tuple(unknown[:5].tolist()),
                        int(unknown[0]),
                    )
                )
        if issues:
            raise ValidationError(issues=issues)

    def without(
        self,
        v_rows: np.ndarray | list[int] | tuple[int, ...] = (),
        p_rows: np.ndarray | list[int] | tuple[int, ...] = (),
    ) -> Measurements:
        """A copy without the given voltage rows and power-sensor rows."""
        kv = np.setdiff1d(np.arange(self.v_pu.size), np.asarray(v_rows, np.int64))
        kp = np.setdiff1d(np.arange(self.p_kind.size), np.asarray(p_rows, np.int64))
        return Measurements(
            self.v_bus_id[kv],
            self.v_pu[kv],
            self.v_sigma_pu[kv],
            self.p_kind[kp],
            self.p_element_id[kp],
            self.p_mw[kp],
            self.q_mvar[kp],
            self.p_sigma_mw[kp],
            self.q_sigma_mvar[kp],
        )

    def copy(self) -> Measurements:
        """A deep copy."""
        return self.without()

    def labels(self) -> list[str]:
        """Human-readable names of the scalar measurements, in residual order (V, then P, then Q)."""
        out = [f"V bus {b}" for b in self.v_bus_id]
        names = [
            f"{PowerSensorKind(k).name.lower()} {e}"
            for k, e in zip(self.p_kind, self.p_element_id, strict=True)
        ]
        out += [f"P {n}" for n in names] + [f"Q {n}" for n in names]
        return out


@dataclass
class _PowerRows:
    """Power-sensor rows collected block by block: kinds, element ids, P, Q (MW, Mvar) and sigmas."""

    kinds: list[np.ndarray] = field(default_factory=list)
    elem: list[np.ndarray] = field(default_factory=list)
    p: list[np.ndarray] = field(default_factory=list)
    q: list[np.ndarray] = field(default_factory=list)
    p_sigma: list[np.ndarray] = field(default_factory=list)
    q_sigma: list[np.ndarray] = field(default_factory=list)

    def add(
        self, kind: PowerSensorKind, ids: np.ndarray, p: np.ndarray, q: np.ndarray, n: int = -1
    ) -> None:
        """A block of ``n`` sensors of one kind (default one per id; sigmas added separately)."""
        self.kinds.append(np.full(np.size(ids) if n < 0 else n, kind))
        self.elem.append(ids)
        self.p.append(p)
        self.q.append(q)

    def add_relative(
        self,
        kind: PowerSensorKind,
        ids: np.ndarray,
        pq: tuple[np.ndarray, np.ndarray],
        sigma: tuple[float, float],
        n: int = -1,
    ) -> None:
        """A block with sigmas ``rel * |value|`` at least ``floor`` MW; ``sigma``: (rel, floor)."""
        p, q = pq
        rel, floor = sigma
        self.add(kind, ids, p, q, n)
        self.p_sigma.append(np.maximum(rel * np.abs(p), floor))
        self.q_sigma.append(np.maximum(rel * np.abs(q), floor))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Kinds (int8), element ids, P and Q of all rows."""
        return (
            np.concatenate(self.kinds).astype(np.int8),
            np.concatenate(self.elem),
            np.concatenate(self.p),
            np.concatenate(self.q),
        )


def _appliance_rows(rows: _PowerRows, g: Grid, gen_p_mw: np.ndarray | None) -> None:
    """Sensors at every in-service generator (output ``gen_p_mw`` or the grid's), storage unit,
    EV charger and flexible load (the grid's values; flexible loads 0, as the twin uses them)."""
    for comp, kind, given in (
        ("generator", PowerSensorKind.GENERATOR, gen_p_mw),
        ("storage", PowerSensorKind.STORAGE, None),
        ("ev_charger", PowerSensorKind.EV, None),
        ("flex_load", PowerSensorKind.FLEX, None),
    ):
        tb = g[comp]
        if not len(tb):
            continue
        on = np.flatnonzero(tb["in_service"])
        pv = (
            np.asarray(given, np.float64)
            if given is not None
            else (np.zeros(len(tb)) if comp == "flex_load" else tb["p_mw"])
        )
        qv = tb["q_mvar"] if "q_mvar" in tb.fields and comp != "flex_load" else np.zeros(len(tb))
        rows.add(kind, tb.ids[on], pv[on], qv[on])


def _with_noise(true: Measurements, rng: np.random.Generator) -> Measurements:
    """``true`` with Gaussian noise of its own sigmas added to V, then P, then Q."""
    return Measurements(
        true.v_bus_id,
        true.v_pu + rng.normal(0, true.v_sigma_pu),
        true.v_sigma_pu,
        true.p_kind,
        true.p_element_id,
        true.p_mw + rng.normal(0, true.p_sigma_mw),
        true.q_mvar + rng.normal(0, true.q_sigma_mvar),
        true.p_sigma_mw,
        true.q_sigma_mvar,
    )


def measurements_from_powerflow(  # noqa: PLR0913
    grid: Grid,
    pf: object,
    *,
    v_bus_ids: np.ndarray | None = None,
    load_ids: np.ndarray | None = None,
    line_from_ids: np.ndarray | None = None,
    load_p_mw: np.ndarray | None = None,
    load_q_mvar: np.ndarray | None = None,
    gen_p_mw: np.ndarray | None = None,
    appliances: bool = True,
    source: bool = True,
    v_sigma_pu: float = 0.01,
    p_rel_sigma: float = 0.01,
    p_floor_mw: float = 1e-4,
    rng: np.random.Generator | None = None,
) -> tuple[Measurements, Measurements]:
    """Synthesize measurements from a power-flow result (the truth), for tests and benchmarks.

    Returns ``(noisy, true)``. Voltage sensors at ``v_bus_ids`` (default: every bus with a
    source), load power sensors for ``load_ids`` (default all loads; the loads' true values are
    ``load_p_mw``/``load_q_mvar`` or the grid's, at the solved voltage for loads with
    constant-current or constant-impedance shares), line flow sensors at the from end of
    ``line_from_ids``, the source and (``appliances``) every in-service generator (output
    ``gen_p_mw`` or the grid's), storage unit, EV charger and flexible load (the grid's values;
    flexible loads 0, as the twin uses them). Noise is Gaussian: ``v_sigma_pu`` times the value for
    voltages (relative, 1 % means 0.01) and ``p_rel_sigma`` times |value| (at least
    ``p_floor_mw``) for powers; the sigmas stored are those used.
    """
    rng = rng or np.random.default_rng(0)
    g = grid
    res = pf  # PowerFlowResult
    vb = (
        g.bus.ids[g.bus.position_map(g.source["bus"])]
        if v_bus_ids is None
        else np.asarray(v_bus_ids, np.int64)
    )
    v_true = np.asarray(res.v_pu)[g.bus.index_of(vb)]  # type: ignore[attr-defined]
    lids = g.load.ids if load_ids is None else np.asarray(load_ids, np.int64)
    lpos = g.load.index_of(lids)
    # what the loads draw at the solved voltages (constant-current and -impedance shares)
    vl = np.asarray(res.v_pu)[g.bus.position_map(g.load["bus"])]  # type: ignore[attr-defined]
    i_sh, z_sh = g.load["i_share"], g.load["z_share"]
    drawn = 1.0 - i_sh - z_sh + i_sh * vl + z_sh * vl**2
    rows = _PowerRows()
    rows.add(
        PowerSensorKind.LOAD,
        lids,
        ((g.load["p_mw"] if load_p_mw is None else np.asarray(load_p_mw)) * drawn)[lpos],
        ((g.load["q_mvar"] if load_q_mvar is None else np.asarray(load_q_mvar)) * drawn)[lpos],
    )
    if line_from_ids is not None and len(line_from_ids):
        fl = np.asarray(line_from_ids, np.int64)
        pos = g.line.index_of(fl)
        p_from = np.asarray(res.line_p_from_mw)[pos]  # type: ignore[attr-defined]
        q_from = np.asarray(res.line_q_from_mvar)[pos]  # type: ignore[attr-defined]
        rows.add(PowerSensorKind.LINE_FROM, fl, p_from, q_from)
    if appliances:
        _appliance_rows(rows, g, gen_p_mw)
    if source:
        p_src = np.asarray(res.source_p_mw)  # type: ignore[attr-defined]
        q_src = np.asarray(res.source_q_mvar)  # type: ignore[attr-defined]
        rows.add(PowerSensorKind.SOURCE, g.source.ids, p_src, q_src, len(g.source))
    pk, pe, pt, qt = rows.arrays()
    vs = np.full(vb.size, v_sigma_pu) * v_true
    ps = np.maximum(p_rel_sigma * np.abs(pt), p_floor_mw)
    qs = np.maximum(p_rel_sigma * np.abs(qt), p_floor_mw)
    true = Measurements(vb, v_true, vs, pk, pe, pt, qt, ps, qs)
    return _with_noise(true, rng), true


@dataclass
class _VoltageRows:
    """Voltage-sensor rows collected block by block: bus ids, values pu, sigmas pu."""

    ids: list[np.ndarray] = field(default_factory=list)
    v: list[np.ndarray] = field(default_factory=list)
    sigma: list[np.ndarray] = field(default_factory=list)

    def one_per_bus(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One sensor per bus: a bus measured twice keeps the more precise value."""
        vid = np.concatenate(self.ids)
        vval = np.concatenate(self.v)
        vsig = np.concatenate(self.sigma)
        order = np.lexsort((vsig, vid))
        first = np.unique(vid[order], return_index=True)[1]
        keep = order[first]
        return vid[keep], vval[keep], vsig[keep]


def _meter_rows(
    g: Grid,
    meters: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    meter_scale: np.ndarray | float,
    sigma: tuple[float, float, float],
) -> tuple[_VoltageRows, _PowerRows]:
    """Per-load power sensors and per-bus voltage sensors from meter rows.

    ``meters``: (load id, P kW, Q kvar, V pu) per meter; ``sigma``: (relative P/Q sigma,
    voltage sigma pu, P/Q floor MW).
    """
    meter_load_id, p_kw, q_kvar, v_pu = meters
    p_rel_sigma, v_sigma_pu, p_floor_mw = sigma
    lid = np.asarray(meter_load_id, np.int64)
    pos = g.load.index_of(np.unique(lid))
    lpos = g.load.position_map(lid, "load")
    nl = len(g.load)
    sc = np.broadcast_to(np.asarray(meter_scale, np.float64), lid.shape)
    p = np.asarray(p_kw, np.float64) * sc / 1000.0
    q = np.asarray(q_kvar, np.float64) * sc / 1000.0
    lp = np.bincount(lpos, weights=p, minlength=nl)
    lq = np.bincount(lpos, weights=q, minlength=nl)
    sp = np.sqrt(np.bincount(lpos, weights=(p_rel_sigma * p) ** 2, minlength=nl))
    sq = np.sqrt(np.bincount(lpos, weights=(p_rel_sigma * q) ** 2, minlength=nl))
    bpos = g.bus.position_map(g.load["bus"][lpos], "bus")
    v = np.asarray(v_pu, np.float64)
    ok = v > 0.5
    nb = len(g.bus)
    cnt = np.bincount(bpos[ok], minlength=nb)
    vsum = np.bincount(bpos[ok], weights=v[ok], minlength=nb)
    vb = np.flatnonzero(cnt > 0)
    volts = _VoltageRows([g.bus.ids[vb]], [vsum[vb] / cnt[vb]], [v_sigma_pu / np.sqrt(cnt[vb])])
    rows = _PowerRows()
    rows.add(PowerSensorKind.LOAD, g.load.ids[pos], lp[pos], lq[pos])
    rows.p_sigma.append(np.maximum(sp[pos], p_floor_mw))
    rows.q_sigma.append(np.maximum(sq[pos], p_floor_mw))
    return volts, rows


def _pq(p: np.ndarray, q: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``p`` and ``q`` as float arrays (``q`` zeros when None)."""
    p_ = np.asarray(p, np.float64)
    return p_, np.zeros_like(p_) if q is None else np.asarray(q, np.float64)


def measurements_from_meters(  # noqa: PLR0913
    grid: Grid,
    meter_load_id: np.ndarray,
    p_kw: np.ndarray,
    q_kvar: np.ndarray,
    v_pu: np.ndarray,
    *,
    meter_scale: np.ndarray | float = 1.0,
    p_rel_sigma: float = 0.01,
    v_sigma_pu: float = 0.005,
    p_floor_mw: float = 1e-5,
    source_p_mw: np.ndarray | None = None,
    source_q_mvar: np.ndarray | None = None,
    source_v_pu: np.ndarray | None = None,
    line_ids: np.ndarray | None = None,
    line_p_mw: np.ndarray | None = None,
    line_q_mvar: np.ndarray | None = None,
    sensor_rel_sigma: float = 0.005,
) -> Measurements:
    """Measurements for the estimator from smart-meter rows plus SCADA sensors (the control side).

    Meter rows (``meter_load_id``: the load each meter belongs to; ``p_kw``/``q_kvar`` household
    powers, ``v_pu`` voltages, 0 = no voltage) are summed per load into ``LOAD`` power sensors
    (times ``meter_scale``, kW -> MW) with sigma ``sqrt(sum((p_rel_sigma * |p_i|)^2))``; the
    voltages are averaged per bus into voltage sensors with sigma ``v_sigma_pu / sqrt(n)``.
    Source and line-flow sensors are added with ``sensor_rel_sigma`` (relative, with a floor).
    Returns :class:`Measurements`.
    """
    volts, rows = _meter_rows(
        grid,
        (meter_load_id, p_kw, q_kvar, v_pu),
        meter_scale,
        (p_rel_sigma, v_sigma_pu, p_floor_mw),
    )
    sigma = (sensor_rel_sigma, p_floor_mw)
    if source_p_mw is not None:
        pq = _pq(source_p_mw, source_q_mvar)
        rows.add_relative(PowerSensorKind.SOURCE, grid.source.ids, pq, sigma, pq[0].size)
    if source_v_pu is not None:
        sv = np.asarray(source_v_pu, np.float64)
        volts.ids.append(grid.source["bus"])
        volts.v.append(sv)
        volts.sigma.append(np.full(sv.size, sensor_rel_sigma))
    if line_ids is not None and line_p_mw is not None:
        li = np.asarray(line_ids, np.int64)
        rows.add_relative(PowerSensorKind.LINE_FROM, li, _pq(line_p_mw, line_q_mvar), sigma)
    vid, vval, vsig = volts.one_per_bus()
    pk, pe, pt, qt = rows.arrays()
    return Measurements(
        vid, vval, vsig, pk, pe, pt, qt, np.concatenate(rows.p_sigma), np.concatenate(rows.q_sigma)
    )
