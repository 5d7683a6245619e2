"""VPP aggregation: per-bus flexibility of a fleet, its envelope, and disaggregation to devices.

The fleet is reduced to one *virtual battery per device class per bus* for a window of steps:
batteries (power and energy bounds, efficiency), EVs (power bounds from who is plugged in and
cumulative-energy bounds from each session's earliest and latest possible charging), water
heaters (a thermal store with draws) and PV (curtailable output). A schedule for those
aggregates is split back to devices step by step: every device gets the same fraction of its
own feasible range at that step (fair), the range coming from its state (state of charge, EV
departure energy still needed, water heater comfort band), so no device is ever pushed
beyond its limits; what the devices cannot follow is reported as a tracking error.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_matrix

from gridpilot.errors import UnknownComponentError, ValidationError
from gridpilot.flex.fleet import Batteries, EVSessions, Fleet, PVInverters, WaterHeaters

log = logging.getLogger(__name__)

CLASSES = ("battery", "ev", "water_heater", "pv_curtail")


def bus_matrix(device_bus: np.ndarray, buses: np.ndarray) -> csr_matrix:
    """Sparse (n_bus, n_device) 0/1 matrix summing device values per bus (``buses`` sorted ids)."""
    pos = np.searchsorted(buses, device_bus)
    pos = np.clip(pos, 0, max(buses.size - 1, 0))
    if device_bus.size and (buses.size == 0 or np.any(buses[pos] != device_bus)):
        bad = (
            device_bus[(buses.size == 0) | (buses[pos] != device_bus)] if buses.size else device_bus
        )
        raise UnknownComponentError(
            "bus", int(bad[0]), "a device sits at a bus outside the aggregation"
        )
    n = device_bus.size
    return csr_matrix((np.ones(n), (pos, np.arange(n))), shape=(buses.size, n))


@dataclass
class BusAggregate:
    """The fleet's flexibility per bus for steps ``t0 .. t0 + steps`` (arrays (steps, n_bus) or (n_bus,)).

    Powers MW (load convention), energies MWh. EV energies are cumulative from the window start.
    ``pv_avail_mw`` is the curtailable output; ``pv_out_mw`` (steps, n_bus) the available output
    of every inverter (curtailable or not, at most its rating) and ``pv_s_mva`` (n_bus,) their
    summed ratings, for the reactive-power capability.
    """

    bus_id: np.ndarray
    t0: int
    steps: int
    step_h: float
    bat_p_max_mw: np.ndarray
    bat_e0_mwh: np.ndarray
    bat_e_min_mwh: np.ndarray
    bat_e_max_mwh: np.ndarray
    bat_eta: np.ndarray
    ev_p_lo_mw: np.ndarray
    ev_p_hi_mw: np.ndarray
    ev_c_lo_mwh: np.ndarray
    ev_c_hi_mwh: np.ndarray
    wh_p_max_mw: np.ndarray
    wh_e0_mwh: np.ndarray
    wh_e_max_mwh: np.ndarray
    wh_draw_mw: np.ndarray
    pv_avail_mw: np.ndarray
    pv_out_mw: np.ndarray | None = None
    pv_s_mva: np.ndarray | None = None
    counts: dict[str, int] = field(default_factory=dict)


def _ev_bounds(fleet: Fleet, t0: int, steps: int) -> tuple[np.ndarray, ...]:
    """Per present session: plugged mask (T, n), lo/hi cumulative delivered (T+1, n), index."""
    ev = fleet.ev
    dt = fleet.step_h
    idx = np.flatnonzero((ev.departure > t0) & (ev.arrival < t0 + steps))
    a, d = ev.arrival[idx], ev.departure[idx]
    k = np.arange(steps + 1)[:, None] + t0
    done = np.clip(np.minimum(d, k) - np.maximum(a, t0), 0, None).astype(
        np.float64
    )  # plugged steps in [t0, k)
    rem = np.clip(d - np.maximum(a, k), 0, None).astype(np.float64)  # plugged steps in [k, d)
    pmax = ev.p_max_mw[idx]
    x0 = ev.delivered_mwh[idx]
    room = ev.e_cap_mwh[idx] - ev.e_arr_mwh[idx]
    floor = np.where(
        ev.v2g[idx], np.minimum(ev.soc_floor[idx] * ev.e_cap_mwh[idx] - ev.e_arr_mwh[idx], x0), x0
    )
    dis = np.where(ev.v2g[idx], pmax, 0.0)
    # never beyond the request: charging past it is never needed (V2G discharges below it), and
    # a looser bound lets the aggregate plan energy that only over-full cars could take
    cap = np.maximum(np.minimum(room, ev.e_need_mwh[idx]), x0)
    hi = np.minimum(cap, x0 + pmax * dt * done)
    lo = np.maximum.reduce(
        [
            np.broadcast_to(floor, hi.shape),
            x0 - dis * dt * done,
            ev.e_need_mwh[idx] - pmax * dt * rem,
        ]
    )
    lo = np.minimum(lo, hi)  # an infeasible session is caught by validation/shortfall, not here
    plugged = (k[:-1] >= a) & (k[:-1] < d)
    return idx, plugged, lo - x0, hi - x0


def group_matrix(device_bus: np.ndarray, buses: np.ndarray, group: np.ndarray | None) -> csr_matrix:
    """(n_group, n_device) 0/1 matrix: :func:`bus_matrix` summed further into bus groups (None: per bus)."""
    m = bus_matrix(device_bus, buses)
    if group is None:
        return m
    g = np.asarray(group, np.int64)
    gm = csr_matrix(
        (np.ones(g.size), (g, np.arange(g.size))), shape=(int(g.max()) + 1 if g.size else 0, g.size)
    )
    return (gm @ m).tocsr()


def aggregate(
    fleet: Fleet,
    t0: int,
    steps: int,
    buses: np.ndarray | None = None,
    pv_avail_mw: np.ndarray | None = None,
    group: np.ndarray | None = None,
) -> BusAggregate:
    """Aggregate ``fleet`` per bus (or per bus group) for steps ``t0 .. t0 + steps``.

    ``pv_avail_mw``: (steps, n_pv) available PV power (zeros if not given); ``group``: a group
    number per bus of ``buses`` to aggregate further (then ``bus_id`` holds the group numbers).
    Returns a :class:`BusAggregate` over ``buses`` (default: the fleet's buses).
    """
    buses = fleet.buses() if buses is None else np.asarray(buses, np.int64)
    b, e, w, pv = fleet.batteries, fleet.ev, fleet.water_heaters, fleet.pv
    mb = group_matrix(b.bus, buses, group)
    idx, plugged, lo, hi = _ev_bounds(fleet, t0, steps)
    me = group_matrix(e.bus[idx], buses, group)
    pmax = e.p_max_mw[idx]
    ev_hi = (me @ (plugged * pmax).T).T
    ev_lo = -(me @ (plugged * np.where(e.v2g[idx], pmax, 0.0)).T).T
    mw = group_matrix(w.bus, buses, group)
    draw = w.draw_mw(np.arange(t0, t0 + steps))
    mp = group_matrix(pv.bus, buses, group)
    out = np.zeros((steps, len(pv))) if pv_avail_mw is None else np.asarray(pv_avail_mw, np.float64)
    avail = out * pv.can_curtail
    out = np.minimum(out, pv.s_rated_mva)
    bat_p = mb @ b.p_max_mw
    return BusAggregate(
        bus_id=buses if group is None else np.arange(mb.shape[0]),
        t0=t0,
        steps=steps,
        step_h=fleet.step_h,
        bat_p_max_mw=bat_p,
        bat_e0_mwh=mb @ b.energy_mwh,
        bat_e_min_mwh=mb @ (b.soc_min * b.e_mwh),
        bat_e_max_mwh=mb @ (b.soc_max * b.e_mwh),
        bat_eta=np.where(bat_p > 0, (mb @ (b.eta * b.p_max_mw)) / np.maximum(bat_p, 1e-12), 1.0),
        ev_p_lo_mw=np.asarray(ev_lo),
        ev_p_hi_mw=np.asarray(ev_hi),
        ev_c_lo_mwh=np.asarray((me @ lo.T).T),
        ev_c_hi_mwh=np.asarray((me @ hi.T).T),
        wh_p_max_mw=mw @ w.p_rated_mw,
        wh_e0_mwh=mw @ w.energy_mwh,
        wh_e_max_mwh=mw @ w.e_max_mwh,
        wh_draw_mw=np.asarray((mw @ draw.T).T),
        pv_avail_mw=np.asarray((mp @ avail.T).T),
        pv_out_mw=np.asarray((mp @ out.T).T),
        pv_s_mva=mp @ pv.s_rated_mva,
        counts={
            "batteries": len(b),
            "ev_sessions": int(idx.size),
            "water_heaters": len(w),
            "pv": len(pv),
        },
    )


@dataclass
class Envelope:
    """Aggregate flexibility around the uncontrolled baseline, per step and bus.

    ``inc_mw``: how much consumption can rise, ``dec_mw``: how much it can fall (MW, >= 0), and
    for how long each could be held from that step (``inc_h``, ``dec_h``, hours, capped at the
    window) given the stored/storable energy (MWh ``inc_mwh``/``dec_mwh``).
    """

    bus_id: np.ndarray
    inc_mw: np.ndarray
    dec_mw: np.ndarray
    inc_mwh: np.ndarray
    dec_mwh: np.ndarray
    inc_h: np.ndarray
    dec_h: np.ndarray

    def total(self) -> dict[str, list[float]]:
        """Fleet totals per step: ``inc_mw``, ``dec_mw``."""
        return {
            "inc_mw": self.inc_mw.sum(axis=1).tolist(),
            "dec_mw": self.dec_mw.sum(axis=1).tolist(),
        }


def envelope(agg: BusAggregate, baseline_mw: np.ndarray | None = None) -> Envelope:
    """The flexibility envelope of an aggregate around ``baseline_mw`` ((steps, n_bus), default 0).

    Power: battery +-p_max, EVs between the plugged-in bounds, water heaters 0..rated, PV
    curtailment up to the available output (raises consumption). Energy: battery headroom and
    stored energy, EV energy between the earliest and latest charging paths, water heater
    band headroom. Durations are energy / power, capped at the window length.
    """
    base = (
        np.zeros((agg.steps, agg.bus_id.size)) if baseline_mw is None else np.asarray(baseline_mw)
    )
    hi = agg.bat_p_max_mw + agg.ev_p_hi_mw + agg.wh_p_max_mw + agg.pv_avail_mw
    lo = -agg.bat_p_max_mw + agg.ev_p_lo_mw
    inc = np.clip(hi - base, 0, None)
    dec = np.clip(base - lo, 0, None)
    e_inc = (agg.bat_e_max_mwh - agg.bat_e0_mwh) / np.maximum(agg.bat_eta, 1e-9) + (
        agg.wh_e_max_mwh - agg.wh_e0_mwh
    )
    e_dec = (agg.bat_e0_mwh - agg.bat_e_min_mwh) * agg.bat_eta + agg.wh_e0_mwh
    e_inc = np.broadcast_to(e_inc, inc.shape) + (agg.ev_c_hi_mwh[1:] - agg.ev_c_lo_mwh[1:])
    e_dec = np.broadcast_to(e_dec, dec.shape) + np.clip(
        agg.ev_c_hi_mwh[:-1] - agg.ev_c_lo_mwh[:-1], 0, None
    )
    horizon = agg.steps * agg.step_h
    with np.errstate(divide="ignore", invalid="ignore"):
        inc_h = np.where(inc > 1e-9, np.minimum(e_inc / inc, horizon), 0.0)
        dec_h = np.where(dec > 1e-9, np.minimum(e_dec / dec, horizon), 0.0)
    return Envelope(agg.bus_id, inc, dec, np.asarray(e_inc), np.asarray(e_dec), inc_h, dec_h)


@dataclass
class Dispatch:
    """What the devices did: per-class per-bus power (steps, n_bus) MW, and checks.

    ``tracking_error_mw`` (steps, n_bus): requested minus realised total. ``limit_violations``
    counts device-steps outside a hard limit (should be 0); ``comfort_violation_steps`` water
    heater steps below the band that draws made unavoidable; ``ev_shortfall_mwh`` per session
    that departed in the window short of its request (> 0 only if it was infeasible);
    ``v2g_mwh`` per session energy discharged. ``device_p_mw`` holds per-device powers when kept.
    """

    bus_id: np.ndarray
    p_mw: dict[str, np.ndarray]
    tracking_error_mw: np.ndarray
    limit_violations: int
    comfort_violation_steps: int
    ev_departed: np.ndarray
    ev_shortfall_mwh: np.ndarray
    v2g_mwh: np.ndarray
    fleet_after: Fleet
    device_p_mw: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def total_mw(self) -> np.ndarray:
        """Total device power per step and bus, MW (PV curtailment counted as + consumption)."""
        return sum(self.p_mw.values())  # type: ignore[return-value]


def _share(
    target: np.ndarray, lo: np.ndarray, hi: np.ndarray, m: csr_matrix, pos: np.ndarray
) -> np.ndarray:
    """Fair split: each device at lo + f_bus * (hi - lo), f_bus chosen to meet the bus target."""
    slo = m @ lo
    shi = m @ hi
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(shi - slo > 1e-12, (target - slo) / (shi - slo), 0.0)
    f = np.clip(f, 0.0, 1.0)
    return lo + f[pos] * (hi - lo)


def _check_targets(targets: dict[str, np.ndarray], steps: int | None, n_target: int) -> int:
    """Check the targets' classes and shapes ((steps, n_target) each); returns the steps."""
    bad = sorted(set(targets) - set(CLASSES))
    if bad:
        raise ValidationError(
            f"disaggregate: unknown device class(es) {bad}; known: {list(CLASSES)}"
        )
    if steps is None:
        if not targets:
            raise ValidationError("disaggregate: give targets or steps")
        steps = next(iter(targets.values())).shape[0]
    for c, v in targets.items():
        if np.shape(v) != (steps, n_target):
            raise ValidationError(
                f"disaggregate: target '{c}' has shape {np.shape(v)}, expected ({steps}, {n_target})"
            )
    return int(steps)


@dataclass
class _Walk:
    """The state of :func:`disaggregate`'s walk over the steps (the fleet copy ``f`` changes too).

    Per class: ``bus_m`` (n_bus, n_dev) and ``grp_m`` (n_target, n_dev) summing matrices, ``pos``
    each device's target column; ``out`` per-class per-bus powers MW, ``err`` tracking error MW.
    """

    f: Fleet
    t0: int
    steps: int
    targets: dict[str, np.ndarray]
    bus_m: dict[str, csr_matrix]
    grp_m: dict[str, csr_matrix]
    pos: dict[str, np.ndarray]
    out: dict[str, np.ndarray]
    err: np.ndarray
    keep: dict[str, list[np.ndarray]] | None
    energy: np.ndarray
    wh_e: np.ndarray
    heating: np.ndarray
    draw_all: np.ndarray
    pv_avail: np.ndarray
    v2g: np.ndarray
    viol: int = 0
    comfort: int = 0

    def record(self, c: str, k: int, p: np.ndarray) -> None:
        """Store class ``c``'s device powers ``p`` (MW) at step ``k``."""
        self.out[c][k] = self.bus_m[c] @ p
        if self.keep is not None:
            self.keep[c].append(p.copy())


def _start_walk(
    fleet: Fleet,
    t0: int,
    targets: dict[str, np.ndarray],
    buses: np.ndarray,
    group: np.ndarray | None,
    shape: tuple[int, int],
) -> _Walk:
    """The walk's start: a copy of the fleet, its summing matrices and the per-device inputs.

    ``shape``: (steps, n_target). No PV available and no per-device powers kept (set
    ``pv_avail`` and ``keep`` to change that).
    """
    f = copy.deepcopy(fleet)
    steps, n_target = shape
    nb = buses.size
    devs: dict[str, Batteries | EVSessions | WaterHeaters | PVInverters] = {
        "battery": f.batteries,
        "ev": f.ev,
        "water_heater": f.water_heaters,
        "pv_curtail": f.pv,
    }
    bus_m = {c: bus_matrix(x.bus, buses) for c, x in devs.items()}
    grp_m = {c: group_matrix(x.bus, buses, group) for c, x in devs.items()}
    pos = {
        c: np.asarray(np.clip(np.searchsorted(buses, x.bus), 0, max(nb - 1, 0)))
        for c, x in devs.items()
    }
    if group is not None:
        gr = np.asarray(group, np.int64)
        pos = {c: gr[p] for c, p in pos.items()}
    w = f.water_heaters
    return _Walk(
        f=f,
        t0=t0,
        steps=steps,
        targets=targets,
        bus_m=bus_m,
        grp_m=grp_m,
        pos=pos,
        out={c: np.zeros((steps, nb)) for c in CLASSES},
        err=np.zeros((steps, n_target)),
        keep=None,
        energy=f.batteries.energy_mwh.copy(),
        wh_e=w.energy_mwh.copy(),
        heating=w.heating.copy(),  # thermostat state for the baseline
        draw_all=w.draw_mw(np.arange(t0, t0 + steps)) if len(w) else np.zeros((steps, 0)),
        pv_avail=np.zeros((steps, len(f.pv))),
        v2g=np.zeros(len(f.ev)),
    )


def _step_batteries(s: _Walk, k: int) -> np.ndarray:
    """Battery powers (MW, + charging) at step ``k``: the target's fair share within each state of charge."""
    b, dt = s.f.batteries, s.f.step_h
    e_min, e_max = b.soc_min * b.e_mwh, b.soc_max * b.e_mwh
    lo = -np.minimum(b.p_max_mw, np.clip(s.energy - e_min, 0, None) * b.eta / dt)
    hi = np.minimum(b.p_max_mw, np.clip(e_max - s.energy, 0, None) / (b.eta * dt))
    tb = s.targets.get("battery")
    if tb is not None:
        p = _share(tb[k], lo, hi, s.grp_m["battery"], s.pos["battery"])
    else:
        p = np.clip(b.p_base_mw, lo, hi)
    s.energy += np.where(p > 0, p * b.eta, p / b.eta) * dt
    s.viol += int(
        np.sum(
            (s.energy < e_min - 1e-9) | (s.energy > e_max + 1e-9) | (np.abs(p) > b.p_max_mw + 1e-12)
        )
    )
    return p


def _step_evs(s: _Walk, k: int) -> np.ndarray:
    """EV powers (MW, + charging, - V2G) at step ``k``; the sessions' delivered energy advances."""
    e, dt = s.f.ev, s.f.step_h
    t = s.t0 + k
    room = e.e_cap_mwh - e.e_arr_mwh
    floor = np.where(e.v2g, e.soc_floor * e.e_cap_mwh - e.e_arr_mwh, 0.0)
    plug = (e.arrival <= t) & (t < e.departure)
    rem = np.clip(e.departure - (t + 1), 0, None) * dt
    x = e.delivered_mwh
    # V2G cars may discharge down to their floor, never forced up to it (as in the aggregate)
    need_lo = np.maximum(e.e_need_mwh - e.p_max_mw * rem, np.where(e.v2g, np.minimum(floor, x), x))
    lo = np.where(
        plug, np.clip((need_lo - x) / dt, np.where(e.v2g, -e.p_max_mw, 0.0), e.p_max_mw), 0.0
    )
    hi = np.where(plug, np.clip((room - x) / dt, 0.0, e.p_max_mw), 0.0)
    lo = np.minimum(lo, hi)
    te = s.targets.get("ev")
    if te is not None:
        # two tiers: first every car the same fraction of its range up to its request, and only
        # a target beyond that charges cars past their request (again the same fraction each);
        # one tier over [lo, room] would send every car away fuller than asked
        hi_need = np.clip(np.where(plug, (e.e_need_mwh - x) / dt, 0.0), lo, hi)
        ge, pe = s.grp_m["ev"], s.pos["ev"]
        p = _share(te[k], lo, hi_need, ge, pe) + _share(te[k], hi_need, hi, ge, pe) - hi_need
    else:  # baseline: as fast as possible until the request is met
        p = np.where(plug, np.clip((e.e_need_mwh - x) / dt, 0.0, e.p_max_mw), 0.0)
    e.delivered_mwh = x + p * dt
    s.v2g += np.clip(-p, 0, None) * dt
    s.viol += int(
        np.sum(
            (np.abs(p) > e.p_max_mw + 1e-12) | (plug & ~e.v2g & (p < -1e-12)) | (~plug & (p != 0))
        )
    )
    return p


def _step_water_heaters(s: _Walk, k: int) -> np.ndarray:
    """Water-heater powers (MW) at step ``k``: the target's share within the comfort band, else the thermostat."""
    w, dt = s.f.water_heaters, s.f.step_h
    d = s.draw_all[k]
    lo = np.clip(d - s.wh_e / dt, 0.0, None)
    hi = np.clip(d + (w.e_max_mwh - s.wh_e) / dt, 0.0, w.p_rated_mw)
    short = lo > w.p_rated_mw + 1e-12
    s.comfort += int(np.sum(short))
    lo = np.minimum(lo, hi)
    tw = s.targets.get("water_heater")
    if tw is not None:
        p = _share(tw[k], lo, hi, s.grp_m["water_heater"], s.pos["water_heater"])
        s.heating = p > 0.5 * w.p_rated_mw
    else:
        e_on = w.c_mwh_per_k * (w.t_on_c - w.t_min_c)  # thermostat thresholds as stored energy
        e_off = w.c_mwh_per_k * (w.t_off_c - w.t_min_c)
        s.heating = np.where(s.wh_e < e_on, True, np.where(s.wh_e > e_off, False, s.heating))
        p = np.clip(np.where(s.heating, w.p_rated_mw, 0.0), lo, hi)
    s.wh_e = np.clip(s.wh_e + (p - d) * dt, 0.0, w.e_max_mwh)
    s.viol += int(np.sum((p > w.p_rated_mw + 1e-12) | (p < -1e-12)))
    return p


def _step_pv(s: _Walk, k: int) -> np.ndarray:
    """PV curtailment (MW) at step ``k``: the target's share of the available curtailable output."""
    n = len(s.f.pv)
    tp = s.targets.get("pv_curtail")
    if tp is None:
        return np.zeros(n)
    return _share(tp[k], np.zeros(n), s.pv_avail[k], s.grp_m["pv_curtail"], s.pos["pv_curtail"])


def _finish_walk(s: _Walk, buses: np.ndarray) -> Dispatch:
    """Write the devices' state after the walk into the fleet copy; returns the :class:`Dispatch`."""
    b, e, w = s.f.batteries, s.f.ev, s.f.water_heaters
    b.soc = np.clip(s.energy / b.e_mwh, b.soc_min, b.soc_max)
    w.t_c = np.clip(w.t_min_c + s.wh_e / w.c_mwh_per_k, w.t_min_c, w.t_max_c)
    w.heating = s.heating
    t0, steps = s.t0, s.steps
    departed = (e.departure > t0) & (e.departure <= t0 + steps)
    shortfall = np.where(departed, np.clip(e.e_need_mwh - e.delivered_mwh, 0, None), 0.0)
    dev = {c: np.array(v) for c, v in s.keep.items()} if s.keep is not None else {}
    return Dispatch(
        buses, s.out, s.err, s.viol, s.comfort, np.flatnonzero(departed), shortfall, s.v2g, s.f, dev
    )


_STEPS = (
    ("battery", _step_batteries),
    ("ev", _step_evs),
    ("water_heater", _step_water_heaters),
    ("pv_curtail", _step_pv),
)


def disaggregate(  # noqa: PLR0913
    fleet: Fleet,
    t0: int,
    targets: dict[str, np.ndarray],
    buses: np.ndarray | None = None,
    pv_avail_mw: np.ndarray | None = None,
    keep_devices: bool = False,
    steps: int | None = None,
    group: np.ndarray | None = None,
) -> Dispatch:
    """Split per-bus class targets ((steps, n_bus) MW each, keys in :data:`CLASSES`) to devices.

    Walks the steps from ``t0``; at each step every device's feasible power range is computed
    from its state and every device gets the same fraction of its range (see :func:`_share`).
    Returns a :class:`Dispatch` with realised per-bus powers and the fleet's state afterwards
    (the input fleet is not changed). A missing class target means "baseline" (each
    battery's ``p_base_mw`` within its limits, default idle; no PV curtailment; fastest charging
    for EVs; thermostat for water heaters);
    ``steps`` is needed only when no target is given. With ``group`` (a group number per bus)
    the targets are per group ((steps, n_group)); realised powers are always per bus.
    """
    buses = fleet.buses() if buses is None else np.asarray(buses, np.int64)
    n_target = buses.size
    if group is not None:
        n_target = int(np.max(group)) + 1 if np.size(group) else 0
    steps = _check_targets(targets, steps, n_target)
    s = _start_walk(fleet, t0, targets, buses, group, (steps, n_target))
    if pv_avail_mw is not None:
        s.pv_avail = np.asarray(pv_avail_mw) * s.f.pv.can_curtail
    if keep_devices:
        s.keep = {c: [] for c in CLASSES}
    for k in range(steps):
        last = {}
        for c, step in _STEPS:
            last[c] = step(s, k)
            s.record(c, k, last[c])
        for c, tgt in targets.items():
            s.err[k] += tgt[k] - s.grp_m[c] @ last[c]
    if s.viol:
        log.warning("disaggregate: %d device-steps outside a hard limit (should be 0)", s.viol)
    return _finish_walk(s, buses)


def inverter_q_capability(
    fleet: Fleet, pv_p_mw: np.ndarray, q_max_frac: float = 0.44
) -> np.ndarray:
    """(steps, n_pv) reactive-power capability of each inverter, Mvar (either direction).

    At most ``q_max_frac`` x rating (IEEE 1547 Category B: 0.44) and never beyond the rating
    left by the active power ``pv_p_mw`` ((steps, n_pv) MW): ``min(q_max_frac*S, sqrt(S^2 - P^2))``.
    """
    s = fleet.pv.s_rated_mva
    p = np.clip(np.asarray(pv_p_mw, np.float64), 0.0, s)
    return np.minimum(q_max_frac * s, np.sqrt(np.clip(s**2 - p**2, 0.0, None)))


def disaggregate_q(  # noqa: PLR0913
    fleet: Fleet,
    q_target_mvar: np.ndarray,
    pv_avail_mw: np.ndarray,
    curtail_mw: np.ndarray,
    buses: np.ndarray | None = None,
    group: np.ndarray | None = None,
    q_max_frac: float = 0.44,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Split per-bus (or per-group) reactive-power targets to the inverters.

    ``q_target_mvar`` (steps, n_bus or n_group), generator convention (+ injects, - absorbs);
    ``pv_avail_mw`` (steps, n_pv) available output; ``curtail_mw`` (steps, n_bus or n_group) the
    curtailment targets (every curtailable inverter of a bus/group curtails the same fraction of
    its output, as :func:`disaggregate` does). Each inverter gets the same fraction of its own
    capability (:func:`inverter_q_capability` at its active power), so no inverter exceeds its
    rating. Returns (per-inverter set points (steps, n_pv) Mvar, per-bus totals (steps, n_bus)
    Mvar, what the inverters could not follow in Mvarh x step_h summed).
    """
    buses = fleet.buses() if buses is None else np.asarray(buses, np.int64)
    pv = fleet.pv
    q_target_mvar = np.asarray(q_target_mvar, np.float64)
    steps = q_target_mvar.shape[0]
    gp = group_matrix(pv.bus, buses, group)
    if q_target_mvar.shape != (steps, gp.shape[0]):
        raise ValidationError(
            f"disaggregate_q: q_target_mvar has shape {q_target_mvar.shape}, expected "
            f"({steps}, {gp.shape[0]})"
        )
    pp = np.clip(np.searchsorted(buses, pv.bus), 0, max(buses.size - 1, 0))
    if group is not None:
        pp = np.asarray(group, np.int64)[pp]
    avail = np.asarray(pv_avail_mw, np.float64)
    cur_avail = avail * pv.can_curtail
    tot = np.asarray((gp @ cur_avail.T).T)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(tot > 1e-12, np.clip(np.asarray(curtail_mw) / tot, 0.0, 1.0), 0.0)
    p_dev = avail - frac[:, pp] * cur_avail
    cap = inverter_q_capability(fleet, p_dev, q_max_frac)
    cap_g = np.asarray((gp @ cap.T).T)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(cap_g > 1e-12, np.clip(q_target_mvar / cap_g, -1.0, 1.0), 0.0)
    q_dev = ratio[:, pp] * cap
    err = float(np.abs(q_target_mvar - np.asarray((gp @ q_dev.T).T)).sum() * fleet.step_h)
    q_bus = np.asarray((bus_matrix(pv.bus, buses) @ q_dev.T).T)
    return q_dev, q_bus, err
