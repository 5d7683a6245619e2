"""The loop's state estimation: bus voltages from the sensors the control side really has.

A distribution feeder is not fully measured. :func:`default_sensors` picks a realistic SCADA
subset: the substation (source) bus, the buses at the far end of each feeder-head line (with
a P/Q flow sensor on that line), both ends of every normally-open tie, and a few remote buses
(the electrically farthest feeder ends). Every load, generator, battery, EV charger and
flexible load is metered (smart meters / device telemetry). Loads' reactive power is the
metered Q when the observation carries it (``Observation.load_q_mvar``, e.g. the field's
secondary-substation meters), else a pseudo-measurement from the model's power factor with a
wider sigma.

:class:`LoopEstimator` builds :class:`gridpilot.estimation.Measurements` from what the
controller received (verified telemetry voltages at the sensor buses, flow sensors, meter
powers), runs :func:`gridpilot.estimation.estimate_robust` (WLS in power-grid-model,
chi-square detection, largest-normalised-residual identification and removal) and returns a
:class:`LoopEstimate`. One :class:`~gridpilot.estimation.StateEstimator` is compiled per switch
configuration (a small cache: reconfigurations are rare).
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridpilot.errors import ValidationError
from gridpilot.estimation import Measurements, PowerSensorKind, StateEstimator, estimate_robust
from gridpilot.model import Grid
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.model.threephase.balanced import PhaseView
from gridpilot.twin import supply_tree


@dataclass(frozen=True)
class SensorSet:
    """Where the control side measures: voltage sensors (bus ids) and flow sensors (line ids, from end).

    Sigmas: ``v_sigma_pu`` for voltage sensors (SCADA class 0.5: 0.005 pu), ``flow_rel_sigma``
    for line flows (relative, floor ``p_floor_mw``), ``meter_rel_sigma`` for metered P,
    ``meter_q_rel_sigma`` for loads' Q when it is not metered (taken from the model's power
    factor); metered Q takes ``meter_rel_sigma``.
    """

    v_bus_ids: tuple[int, ...]
    flow_line_ids: tuple[int, ...]
    v_sigma_pu: float = 0.005
    flow_rel_sigma: float = 0.01
    meter_rel_sigma: float = 0.02
    meter_q_rel_sigma: float = 0.05
    p_floor_mw: float = 1e-3
    v_model_sigma_pu: tuple[float, ...] = ()
    flow_sigma_of_s: bool = False

    def check(self, grid: Grid) -> None:
        """Raise :class:`~gridpilot.errors.ValidationError` naming an unknown bus or line id."""
        bad_b = sorted(set(self.v_bus_ids) - set(grid.bus.ids.tolist()))
        if bad_b:
            raise ValidationError(f"sensors.v_bus_ids: unknown bus {bad_b[0]}")
        bad_l = sorted(set(self.flow_line_ids) - set(grid.line.ids.tolist()))
        if bad_l:
            raise ValidationError(f"sensors.flow_line_ids: unknown line {bad_l[0]}")
        if not self.v_bus_ids:
            raise ValidationError("sensors.v_bus_ids: at least one voltage sensor is needed")
        for name in ("v_sigma_pu", "flow_rel_sigma", "meter_rel_sigma", "meter_q_rel_sigma"):
            v = getattr(self, name)
            if not v > 0:
                raise ValidationError(f"sensors.{name}: must be positive, got {v}")
        ms = self.v_model_sigma_pu
        if ms and len(ms) != len(self.v_bus_ids):
            raise ValidationError(
                f"sensors.v_model_sigma_pu: one per voltage sensor ({len(self.v_bus_ids)}), "
                f"got {len(ms)}"
            )
        bad = [x for x in ms if not x >= 0]
        if bad:
            raise ValidationError(f"sensors.v_model_sigma_pu: must be >= 0, got {bad[0]}")

    def v_sigmas(self) -> np.ndarray:
        """Each voltage sensor's sigma (pu): its class, and the view's model error where set."""
        cls = np.full(len(self.v_bus_ids), self.v_sigma_pu)
        if not self.v_model_sigma_pu:
            return cls
        return np.hypot(cls, np.asarray(self.v_model_sigma_pu, np.float64))


def default_sensors(grid: Grid, remote: int = 3) -> SensorSet:
    """A realistic SCADA sensor subset of ``grid`` (see the module docstring); returns a :class:`SensorSet`.

    Voltage at: source buses, the far bus of each line leaving a source bus (feeder heads, each
    with a flow sensor), both ends of normally-open switches' lines (tie ends), and the
    ``remote`` leaf buses farthest (in summed line impedance) from the source.
    """
    g = grid
    src = set(g.source["bus"].tolist())
    v: list[int] = sorted(src)
    flows: list[int] = []
    fb, tb = g.line["from_bus"], g.line["to_bus"]
    for k in range(len(g.line)):
        if int(fb[k]) in src or int(tb[k]) in src:
            flows.append(int(g.line.ids[k]))
            v.append(int(tb[k]) if int(fb[k]) in src else int(fb[k]))
    if len(g.switch):
        tie = g.switch["normally_open"] & (g.switch["et"] == 0)
        for lid in g.switch["element"][tie]:
            k = int(g.line.index_of(int(lid))[0])
            v += [int(fb[k]), int(tb[k])]
    tree = supply_tree(g, g.switch["closed"])
    dist = _impedance_distance(g, tree)
    deg = np.bincount(tree.parent[tree.parent >= 0], minlength=len(g.bus))
    leaves = np.flatnonzero((deg == 0) & np.isfinite(dist))
    far = leaves[np.argsort(-dist[leaves])][:remote]
    v += [int(g.bus.ids[b]) for b in far]
    return SensorSet(tuple(dict.fromkeys(v)), tuple(flows))


#: the balanced view's model error for a voltage sensor (pu): a three-phase bus reads its worst
#: phase (up to ~0.017 pu off the positive sequence on ieee123 at the evening peak), a one- or
#: two-phase bus one phase's voltage (up to ~0.04 pu off on ieee8500's laterals), see
#: docs/agent.md ("Why "P load 1187" was removed")
VIEW_V_SIGMA_PU = {3: 0.01, 1: 0.02}


def view_sensors(grid: Grid, view: PhaseView, grid3p: ThreePhaseGrid) -> SensorSet:
    """:func:`default_sensors` of ``grid``, the balanced ``view`` of the feeder ``grid3p``, with
    the view's measurement model: each voltage sensor's model error (``VIEW_V_SIGMA_PU`` by
    the phases present at its bus; none at the source, whose voltage the view holds) and
    flow sensors' sigma of their apparent power."""
    base = default_sensors(grid)
    phases = grid3p.bus_nodes()
    src = set(grid.source["bus"].tolist())
    model = []
    for bid in base.v_bus_ids:
        name = view.bus_name[int(grid.bus.index_of(bid)[0])]
        three = {1, 2, 3} <= phases.get(name, set())
        model.append(0.0 if bid in src else VIEW_V_SIGMA_PU[3 if three else 1])
    return dataclasses.replace(base, v_model_sigma_pu=tuple(model), flow_sigma_of_s=True)


def _impedance_distance(g: Grid, tree: Any) -> np.ndarray:
    """|Z| (ohm) from the source to each bus along the supply tree (inf where unsupplied)."""
    nb = len(g.bus)
    dist = np.full(nb, np.inf)
    z = np.hypot(g.line["r_ohm_per_km"], g.line["x_ohm_per_km"]) * g.line["length_km"]
    f = g.bus.position_map(g.line["from_bus"])
    t = g.bus.position_map(g.line["to_bus"])
    zmap = {(int(min(a, b)), int(max(a, b))): float(zz) for a, b, zz in zip(f, t, z, strict=True)}
    for b in tree.order:
        p = int(tree.parent[b])
        dist[b] = 0.0 if p < 0 else dist[p] + zmap.get((min(p, int(b)), max(p, int(b))), 0.0)
    return dist


@dataclass
class LoopEstimate:
    """One estimate of the loop.

    ``v_pu`` per bus (table order; NaN where not energised or not converged); ``removed`` the
    labels of measurements identified as bad and removed (e.g. ``"V bus 18"``); ``chi2`` and
    ``chi2_limit`` of the final estimate; ``n_measurements`` scalar measurements used;
    ``se_ms`` the wall time of the whole call (build, estimate, bad-data rounds); ``note``
    why there is no estimate, or why bad data may remain ("" when neither).
    """

    t: int
    converged: bool
    v_pu: np.ndarray
    chi2: float
    chi2_limit: float
    n_measurements: int
    removed: list[str] = field(default_factory=list)
    removed_rn: list[float] = field(default_factory=list)
    se_ms: float = 0.0
    note: str = ""

    @property
    def vmin_pu(self) -> float:
        """Lowest estimated voltage (pu, NaN if none)."""
        ok = np.isfinite(self.v_pu)
        return float(self.v_pu[ok].min()) if ok.any() else float("nan")

    @property
    def vmax_pu(self) -> float:
        """Highest estimated voltage (pu, NaN if none)."""
        ok = np.isfinite(self.v_pu)
        return float(self.v_pu[ok].max()) if ok.any() else float("nan")

    def error_pu(self, v_true_pu: np.ndarray) -> tuple[float, float]:
        """(max, mean) |V_est - V_true| over buses with an estimate, pu — for tests and benches:
        the controller itself never has ``v_true_pu``."""
        ok = np.isfinite(self.v_pu)
        if not ok.any():
            return float("nan"), float("nan")
        d = np.abs(self.v_pu[ok] - np.asarray(v_true_pu)[ok])
        return float(d.max()), float(d.mean())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able summary (no per-bus array)."""
        return {
            "t": self.t,
            "converged": self.converged,
            "vmin_pu": None if not np.isfinite(self.vmin_pu) else round(self.vmin_pu, 4),
            "vmax_pu": None if not np.isfinite(self.vmax_pu) else round(self.vmax_pu, 4),
            "chi2": round(self.chi2, 2) if np.isfinite(self.chi2) else None,
            "chi2_limit": round(self.chi2_limit, 2),
            "n_measurements": self.n_measurements,
            "removed": list(self.removed),
            "se_ms": round(self.se_ms, 2),
        }


class _PowerRows:
    """Power measurements collected by kind: kind, element id, P, Q and their sigmas (MW/Mvar;
    relative sigmas, at least ``floor_mw``)."""

    def __init__(self, floor_mw: float) -> None:
        self.floor_mw = floor_mw
        self.kinds: list[np.ndarray] = []
        self.elem: list[np.ndarray] = []
        self.ps: list[np.ndarray] = []
        self.qs: list[np.ndarray] = []
        self.sp: list[np.ndarray] = []
        self.sq: list[np.ndarray] = []

    def add(
        self,
        kind: PowerSensorKind,
        ids: np.ndarray,
        p: np.ndarray,
        q: np.ndarray,
        rel_p: float,
        rel_q: float,
    ) -> None:
        """Add one kind's rows: ids, P and Q (MW/Mvar) at relative sigmas ``rel_p``/``rel_q``."""
        fl = self.floor_mw
        self.kinds.append(np.full(ids.size, kind, np.int8))
        self.elem.append(ids)
        self.ps.append(p)
        self.qs.append(q)
        self.sp.append(np.maximum(rel_p * np.abs(p), fl))
        self.sq.append(np.maximum(rel_q * np.abs(q), fl))

    def add_of_s(self, kind: PowerSensorKind, ids: np.ndarray, p: np.ndarray, q: np.ndarray,
                 rel: float) -> None:  # fmt: skip
        """Add one kind's rows with P and Q sigma ``rel`` of the apparent power (a meter's
        accuracy class), at least the floor."""
        self.add(kind, ids, p, q, 0.0, 0.0)
        s = np.maximum(rel * np.hypot(p, q), self.floor_mw)
        self.sp[-1], self.sq[-1] = s, s.copy()

    def arrays(self) -> tuple[np.ndarray, ...]:
        """Kinds, element ids, P, Q, sigma P, sigma Q: each concatenated over the kinds."""
        return tuple(
            np.concatenate(x) for x in (self.kinds, self.elem, self.ps, self.qs, self.sp, self.sq)
        )


class LoopEstimator:
    """State estimation for the orchestrator (see the module docstring).

    ``LoopEstimator(grid, sensors=None)``; :meth:`measurements` builds the set from an
    observation, :meth:`estimate` runs the robust estimate.
    """

    def __init__(self, grid: Grid, sensors: SensorSet | None = None, cache: int = 8) -> None:
        self.grid = grid
        self.sensors = sensors or default_sensors(grid)
        self.sensors.check(grid)
        g = grid
        self._v_pos = g.bus.index_of(np.asarray(self.sensors.v_bus_ids, np.int64))
        self._f_pos = g.line.index_of(np.asarray(self.sensors.flow_line_ids, np.int64))
        self._v_sigma = self.sensors.v_sigmas()
        base_p = np.where(np.abs(g.load["p_mw"]) > 0, g.load["p_mw"], 1.0)
        self._load_pf = g.load["q_mvar"] / base_p  # Q/P ratio the controller assumes
        self._cache: OrderedDict[bytes, StateEstimator] = OrderedDict()
        self._cache_size = cache

    def _se(self, closed: np.ndarray) -> StateEstimator:
        key = np.asarray(closed, bool).tobytes()
        se = self._cache.get(key)
        if se is None:
            se = StateEstimator(self.grid, np.asarray(closed, bool))
            self._cache[key] = se
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return se

    def measurements(self, obs: Any) -> Measurements:
        """Measurements from an :class:`~gridpilot.agent.world.Observation` as received.

        Voltage sensors at the sensor buses that report voltage (> 0.05 pu), flow sensors
        (``obs.line_p_mw``/``obs.line_q_mvar``), a P/Q meter per energised load (Q as metered,
        ``obs.load_q_mvar``, or from the model's power factor when the observation carries
        none), generator, battery, EV charger and flexible load.
        """
        s, g = self.sensors, self.grid
        v = np.asarray(obs.v_pu, np.float64)[self._v_pos]
        on_v = v > 0.05
        vb = np.asarray(s.v_bus_ids, np.int64)[on_v]
        rows = _PowerRows(s.p_floor_mw)
        if self._f_pos.size and getattr(obs, "line_p_mw", np.zeros(0)).size:
            lp = np.asarray(obs.line_p_mw)[self._f_pos]
            lq = np.asarray(obs.line_q_mvar)[self._f_pos]
            ids, rel = g.line.ids[self._f_pos], s.flow_rel_sigma
            if s.flow_sigma_of_s:
                rows.add_of_s(PowerSensorKind.LINE_FROM, ids, lp, lq, rel)
            else:
                rows.add(PowerSensorKind.LINE_FROM, ids, lp, lq, rel, rel)
        self._load_rows(obs, rows)
        self._device_rows(obs, rows)
        return Measurements(vb, v[on_v], self._v_sigma[on_v], *rows.arrays())

    def _load_rows(self, obs: Any, rows: _PowerRows) -> None:
        """A P/Q meter per load: Q as metered, else from the model's power factor."""
        s, g = self.sensors, self.grid
        lp = np.asarray(obs.load_p_mw, np.float64)
        lq_metered = np.asarray(getattr(obs, "load_q_mvar", np.zeros(0)), np.float64)
        if lq_metered.size == lp.size and lp.size:  # metered Q (the field's substation meters)
            rows.add(
                PowerSensorKind.LOAD,
                g.load.ids,
                lp,
                np.nan_to_num(lq_metered),
                s.meter_rel_sigma,
                s.meter_rel_sigma,
            )
        else:  # Q not metered: the model's power factor, a pseudo-measurement
            rows.add(
                PowerSensorKind.LOAD,
                g.load.ids,
                lp,
                lp * self._load_pf,
                s.meter_rel_sigma,
                s.meter_q_rel_sigma,
            )

    def _device_rows(self, obs: Any, rows: _PowerRows) -> None:
        """A meter per generator, battery, EV charger and flexible load in service (Q at the
        model's value; flexible loads none)."""
        s, g = self.sensors, self.grid
        for comp, kind, vals in (
            ("generator", PowerSensorKind.GENERATOR, obs.gen_p_mw),
            ("storage", PowerSensorKind.STORAGE, obs.storage_p_mw),
            ("ev_charger", PowerSensorKind.EV, obs.ev_p_mw),
            ("flex_load", PowerSensorKind.FLEX, obs.flex_p_mw),
        ):
            tb = g[comp]
            if not len(tb):
                continue
            on = np.flatnonzero(tb["in_service"])
            p = np.asarray(vals, np.float64)[on]
            q = (
                np.asarray(tb["q_mvar"], np.float64)[on]
                if "q_mvar" in tb.fields and comp != "flex_load"
                else np.zeros(on.size)
            )
            rows.add(kind, tb.ids[on], p, q, s.meter_rel_sigma, s.meter_rel_sigma)

    def estimate(self, obs: Any) -> LoopEstimate:
        """Robust estimate (bad data identified and removed) from ``obs``; returns a :class:`LoopEstimate`."""
        t0 = time.perf_counter()
        nb = len(self.grid.bus)
        m = self.measurements(obs)
        if m.v_pu.size == 0:  # no sensor reports voltage: nothing to estimate
            return LoopEstimate(
                int(obs.t),
                False,
                np.full(nb, np.nan),
                float("nan"),
                0.0,
                0,
                se_ms=(time.perf_counter() - t0) * 1e3,
                note="no sensor reports a voltage",
            )
        se = self._se(obs.switch_closed)
        rep = estimate_robust(se, m)
        r = rep.result
        v = r.v_pu.copy() if r.converged else np.full(nb, np.nan)
        return LoopEstimate(
            int(obs.t),
            bool(r.converged),
            v,
            float(r.chi2),
            float(r.chi2_limit),
            int(rep.measurements.n_scalar),
            rep.removed_labels,
            [round(b.normalised_residual, 2) for b in rep.removed],
            (time.perf_counter() - t0) * 1e3,
            rep.note,
        )


__all__ = ["LoopEstimate", "LoopEstimator", "SensorSet", "default_sensors", "view_sensors"]
