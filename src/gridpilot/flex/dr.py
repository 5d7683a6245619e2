"""Demand response, OpenADR-3-like: programs, events, opt-outs, dispatch to devices, reports.

An :class:`Event` of a :class:`Program` asks, for an interval of steps, either a load
reduction (``target_mw``, MW below the baseline) or signals a price (``price_eur_per_mwh``:
devices whose program trigger price is reached shed all they can). It targets devices by id
(per class: ``battery``, ``ev``, ``water_heater``) and/or whole buses (areas); opted-out
devices are left alone. :func:`dispatch_event` runs the counterfactual (every device on its
own, the customers' baseline) and the event over the same steps with the same fleet and
returns a :class:`Report`: baseline vs actual, measured reduction, energy, rebound after the
event, and whether the target was met. Devices stay within their limits throughout (the
reduction comes from the fair disaggregation at each device's feasible minimum).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix

from gridpilot.errors import UnknownComponentError, ValidationError
from gridpilot.flex.aggregate import Dispatch, disaggregate
from gridpilot.flex.fleet import Fleet, PVInverters

DR_CLASSES = ("battery", "ev", "water_heater")


@dataclass
class Program:
    """A DR program: ``kind`` ``"load_shed"`` or ``"price"``; price events trigger at ``trigger_eur_per_mwh``."""

    id: str
    kind: str = "load_shed"
    trigger_eur_per_mwh: float = 200.0
    payment_eur_per_mwh: float = 150.0

    def __post_init__(self) -> None:
        if self.kind not in ("load_shed", "price"):
            raise ValidationError(
                f"program {self.id}: field 'kind' must be 'load_shed' or 'price', got {self.kind!r}"
            )


@dataclass
class Event:
    """One DR event: steps ``start .. start + duration`` (absolute), a target or a price, and its targets."""

    id: str
    program: Program
    start: int
    duration: int
    target_mw: float | None = None
    price_eur_per_mwh: float | None = None
    devices: dict[str, list[int]] = field(default_factory=dict)
    buses: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.duration <= 0:
            raise ValidationError(
                f"event {self.id}: field 'duration' must be > 0 steps, got {self.duration}"
            )
        if self.program.kind == "load_shed" and (self.target_mw is None or self.target_mw <= 0):
            raise ValidationError(
                f"event {self.id}: a load_shed event needs target_mw > 0, got {self.target_mw!r}"
            )
        if self.program.kind == "price" and self.price_eur_per_mwh is None:
            raise ValidationError(f"event {self.id}: a price event needs price_eur_per_mwh")
        bad = sorted(set(self.devices) - set(DR_CLASSES))
        if bad:
            raise ValidationError(
                f"event {self.id}: unknown device class(es) {bad}; known: {list(DR_CLASSES)}"
            )


@dataclass(frozen=True)
class OptOut:
    """A customer's opt-out of one event for one device."""

    event_id: str
    device_class: str
    device_id: int


@dataclass
class Report:
    """Event report (per step, MW): baseline, actual and reduction over the simulated steps."""

    event_id: str
    steps: np.ndarray
    baseline_mw: np.ndarray
    actual_mw: np.ndarray
    in_event: np.ndarray
    participants: dict[str, int]
    opted_out: int
    target_mw: float | None
    limit_violations: int

    @property
    def reduction_mw(self) -> np.ndarray:
        """Baseline minus actual, MW (positive = less consumption)."""
        return self.baseline_mw - self.actual_mw

    def summary(self, step_h: float = 0.25) -> dict[str, Any]:
        """Mean and minimum reduction in the event, energy (MWh), rebound after it, target met."""
        red = self.reduction_mw
        ev = red[self.in_event]
        after = red[np.flatnonzero(self.in_event)[-1] + 1 :] if self.in_event.any() else red[:0]
        met = None if self.target_mw is None else bool(ev.min() >= self.target_mw * 0.999)
        return {
            "event": self.event_id,
            "mean_reduction_mw": float(ev.mean()) if ev.size else 0.0,
            "min_reduction_mw": float(ev.min()) if ev.size else 0.0,
            "energy_mwh": float(ev.sum() * step_h),
            "rebound_mwh": float(-after[after < 0].sum() * step_h),
            "target_mw": self.target_mw,
            "target_met": met,
            "participants": self.participants,
            "opted_out": self.opted_out,
            "device_limit_violations": self.limit_violations,
        }


def _select(fleet: Fleet, masks: dict[str, np.ndarray]) -> Fleet:
    """A copy of ``fleet`` keeping the devices where ``masks[class]`` is True (EV mask over sessions)."""
    f = copy.deepcopy(fleet)
    for name, attr in (("battery", "batteries"), ("ev", "ev"), ("water_heater", "water_heaters")):
        obj = getattr(f, attr)
        m = masks[name]
        for k, v in vars(obj).items():
            if isinstance(v, np.ndarray) and v.shape[:1] == m.shape:
                setattr(obj, k, v[m])
    pv = fleet.pv
    f.pv = PVInverters(pv.id[:0], pv.bus[:0], pv.gen_pos[:0], pv.s_rated_mva[:0])
    return f


def select_devices(fleet: Fleet, masks: dict[str, np.ndarray]) -> Fleet:
    """A copy of ``fleet`` with the devices where ``masks[class]`` is True (classes of
    :data:`DR_CLASSES`; the EV mask is over sessions) and no PV inverters."""
    return _select(fleet, masks)


def _participants(
    fleet: Fleet, event: Event, opt_outs: list[OptOut] | tuple[OptOut, ...] = ()
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Masks of participating devices per class and the ids that opted out of ``event`` per class."""
    ids = {"battery": fleet.batteries.id, "ev": fleet.ev.ev, "water_heater": fleet.water_heaters.id}
    buses = {
        "battery": fleet.batteries.bus,
        "ev": fleet.ev.bus,
        "water_heater": fleet.water_heaters.bus,
    }
    known_bus = set(fleet.buses().tolist())
    for b in event.buses:
        if int(b) not in known_bus:
            raise UnknownComponentError(
                "bus", int(b), f"event {event.id}: no flexible device at this bus"
            )
    masks = {}
    for c in DR_CLASSES:
        want = np.asarray(event.devices.get(c, []), np.int64)
        unknown = want[~np.isin(want, ids[c])]
        if unknown.size:
            raise UnknownComponentError(
                f"{c} device",
                int(unknown[0]),
                f"event {event.id}: {unknown.size} unknown {c} id(s)",
            )
        m = np.isin(ids[c], want) | np.isin(buses[c], np.asarray(event.buses, np.int64))
        if not event.devices and not event.buses:
            m = np.ones(ids[c].size, bool)
        masks[c] = m
    out: dict[str, list[int]] = {c: [] for c in DR_CLASSES}
    for o in opt_outs:
        if o.event_id != event.id:
            continue
        if o.device_class not in DR_CLASSES:
            raise ValidationError(f"opt-out: unknown device class {o.device_class!r}")
        hit = ids[o.device_class] == o.device_id
        if not hit.any():
            raise UnknownComponentError(
                f"{o.device_class} device", o.device_id, f"opt-out of event {event.id}"
            )
        if np.any(masks[o.device_class] & hit):
            out[o.device_class].append(int(o.device_id))
        masks[o.device_class] &= ~hit
    return masks, {c: np.unique(np.asarray(v, np.int64)) for c, v in out.items()}


def participants(
    fleet: Fleet, event: Event, opt_outs: list[OptOut] | tuple[OptOut, ...] = ()
) -> tuple[dict[str, np.ndarray], int]:
    """Masks of participating devices per class (EV mask over sessions) and how many devices
    opted out; unknown device ids or buses are an UnknownComponentError."""
    masks, out = _participants(fleet, event, opt_outs)
    return masks, sum(int(v.size) for v in out.values())


def _total(d: Any) -> np.ndarray:
    return (
        d.p_mw["battery"].sum(axis=1)
        + d.p_mw["ev"].sum(axis=1)
        + d.p_mw["water_heater"].sum(axis=1)
    )


@dataclass
class _Shed:
    """The event's dispatch of its participants (shared by :func:`dispatch_event` and
    :func:`event_setpoints`): their own counterfactual, their floor, the shed share per step and
    what they do in the event."""

    counterfactual: Dispatch
    floor: Dispatch
    room_mw: np.ndarray  # (steps,) what the participants could shed, MW
    share: np.ndarray  # (steps,) share of that room asked for
    during: Dispatch


def _floor_targets(n: int, n_bus: int) -> dict[str, np.ndarray]:
    return {c: np.full((n, n_bus), -1e9) for c in DR_CLASSES}


def _shed(state: Fleet, event: Event, keep_devices: bool = False) -> _Shed:
    """Dispatch participants ``state`` (their state at ``event.start``) through the event.

    Each bus's participants move from their own baseline towards their feasible minimum (water
    heaters off while the tank stays in the comfort band, EVs at the least that still meets
    departure, batteries discharging within state of charge) by the share of the total room
    needed for ``target_mw`` (all of it for a triggered price event).
    """
    buses = state.buses()
    n = event.duration
    cf = disaggregate(state, event.start, {}, buses, steps=n, keep_devices=keep_devices)
    floor = disaggregate(
        state, event.start, _floor_targets(n, buses.size), buses, keep_devices=keep_devices
    )
    base_b = sum(cf.p_mw[c] for c in DR_CLASSES)
    min_b = sum(floor.p_mw[c] for c in DR_CLASSES)
    room = np.clip(base_b - min_b, 0, None)
    tot = room.sum(axis=1)
    if event.program.kind == "price":
        hit = float(event.price_eur_per_mwh or 0.0) >= event.program.trigger_eur_per_mwh
        share = np.full(n, 1.0 if hit else 0.0)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.clip(np.where(tot > 0, float(event.target_mw or 0.0) / tot, 0.0), 0, 1)
    tg = {
        c: cf.p_mw[c] - share[:, None] * np.clip(cf.p_mw[c] - floor.p_mw[c], 0, None)
        for c in DR_CLASSES
    }
    if np.any(share > 0):
        during = disaggregate(state, event.start, tg, buses, keep_devices=keep_devices)
    else:  # nothing asked (a price below the trigger): the devices carry on on their own
        during = cf
    return _Shed(cf, floor, tot, share, during)


def shed_potential(fleet: Fleet, t0: int, steps: int = 1) -> np.ndarray:
    """What the whole fleet could shed below its own baseline at steps ``t0 .. t0 + steps``, MW.

    Returns (steps,) MW: every device from its own baseline (thermostats, EVs charging at once,
    batteries idle) to its feasible minimum, the state carried along the minimum path.
    """
    if steps <= 0:
        raise ValidationError(f"shed_potential: field 'steps' must be > 0, got {steps}")
    buses = fleet.buses()
    cf = disaggregate(fleet, t0, {}, buses, steps=steps)
    floor = disaggregate(fleet, t0, _floor_targets(steps, buses.size), buses)
    return np.clip(_total(cf) - _total(floor), 0, None)


def shed_potential_by_bus(fleet: Fleet, t0: int, steps: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """:func:`shed_potential` per bus: (sorted bus ids with devices, (steps, n_bus) MW)."""
    if steps <= 0:
        raise ValidationError(f"shed_potential: field 'steps' must be > 0, got {steps}")
    buses = fleet.buses()
    cf = disaggregate(fleet, t0, {}, buses, steps=steps)
    floor = disaggregate(fleet, t0, _floor_targets(steps, buses.size), buses)
    room = sum(cf.p_mw[c] - floor.p_mw[c] for c in DR_CLASSES)
    return buses, np.clip(np.asarray(room, np.float64).reshape(steps, buses.size), 0, None)


def _check_window(event: Event, t0: int, steps: int | None) -> None:
    end = None if steps is None else t0 + steps
    if event.start < t0 or (end is not None and event.start + event.duration > end):
        span = f"{t0}..{end}" if end is not None else f"from {t0} on"
        raise ValidationError(
            f"event {event.id}: steps {event.start}..{event.start + event.duration} are outside "
            f"the simulated {span}"
        )


def dispatch_event(
    fleet: Fleet,
    event: Event,
    t0: int,
    steps: int,
    opt_outs: list[OptOut] | tuple[OptOut, ...] = (),
) -> Report:
    """Simulate steps ``t0 .. t0 + steps`` with and without the event; returns the :class:`Report`.

    Participating devices shed during the event: each bus's participants move from their
    baseline towards their feasible minimum (water heaters off while the tank stays in the
    comfort band, EVs at the least that still meets departure, batteries discharging within
    state of charge) by the share needed for ``target_mw`` (all of it for a triggered price
    event); everything else follows its own logic. A target larger than the fleet can shed
    is reported as not met (``target_met`` False), not hidden.
    """
    _check_window(event, t0, steps)
    masks, out_ids = _participants(fleet, event, opt_outs)
    part = _select(fleet, masks)
    rest = _select(fleet, {c: ~m for c, m in masks.items()})
    base = disaggregate(fleet, t0, {}, steps=steps)
    # participants: before the event on their own, then the event, then on their own again
    a = event.start - t0
    n = event.duration
    pre = disaggregate(part, t0, {}, steps=a) if a > 0 else None
    state = pre.fleet_after if pre is not None else part
    during = _shed(state, event).during
    post_n = t0 + steps - (event.start + n)
    post = (
        disaggregate(during.fleet_after, event.start + n, {}, steps=post_n) if post_n > 0 else None
    )
    rest_d = disaggregate(rest, t0, {}, steps=steps)
    actual = _total(rest_d).copy()
    seg = [x for x in (pre, during, post) if x is not None]
    actual += np.concatenate([_total(x) for x in seg])
    in_event = np.zeros(steps, bool)
    in_event[a : a + n] = True
    viol = sum(x.limit_violations for x in seg) + rest_d.limit_violations
    return Report(
        event.id,
        np.arange(t0, t0 + steps),
        _total(base),
        actual,
        in_event,
        {c: int(m.sum()) for c, m in masks.items()},
        sum(int(v.size) for v in out_ids.values()),
        event.target_mw,
        viol,
    )


@dataclass
class EventPlan:
    """Per-device set points of one DR event (see :func:`event_setpoints`).

    Per class (``battery``, ``ev``, ``water_heater``): ``device_ids`` (n,) the participating
    devices (EVs by car id), ``p_mw`` (steps, n) their set points, ``baseline_mw`` what each
    would draw on its own and ``floor_mw`` the least it could draw (MW, load convention: +
    consumes, a battery's negative set point discharges). ``reduction_mw`` (steps,) the expected
    reduction below the fleet's own baseline (non-participants do not change), ``room_mw``
    (steps,) what the participants could shed at most; ``opted_out`` the ids that opted out.
    """

    event_id: str
    start: int
    steps: int
    step_h: float
    target_mw: float | None
    device_ids: dict[str, np.ndarray]
    p_mw: dict[str, np.ndarray]
    baseline_mw: dict[str, np.ndarray]
    floor_mw: dict[str, np.ndarray]
    reduction_mw: np.ndarray
    room_mw: np.ndarray
    opted_out: dict[str, np.ndarray]
    limit_violations: int

    @property
    def short_mw(self) -> np.ndarray:
        """(steps,) MW by which the expected reduction falls short of the target (0 when met)."""
        if self.target_mw is None:
            return np.zeros(self.steps)
        return np.clip(self.target_mw - self.reduction_mw, 0.0, None)

    @property
    def target_met(self) -> bool | None:
        """Whether every step's expected reduction reaches the target (None for price events)."""
        if self.target_mw is None:
            return None
        return bool(np.all(self.reduction_mw >= self.target_mw * 0.999))

    @property
    def n_devices(self) -> int:
        """Participating devices (EVs counted per car)."""
        return sum(int(v.size) for v in self.device_ids.values())

    def summary(self) -> dict[str, Any]:
        """JSON-able figures: target, expected reduction (mean/min MW, MWh), shortfall, devices."""
        red = self.reduction_mw
        return {
            "event": self.event_id,
            "start": self.start,
            "steps": self.steps,
            "target_mw": self.target_mw,
            "expected_reduction_mw": [round(float(x), 6) for x in red],
            "mean_reduction_mw": float(red.mean()) if red.size else 0.0,
            "min_reduction_mw": float(red.min()) if red.size else 0.0,
            "energy_mwh": float(red.sum() * self.step_h),
            "short_mw": float(self.short_mw.max()) if red.size else 0.0,
            "target_met": self.target_met,
            "room_mw": [round(float(x), 6) for x in self.room_mw],
            "participants": {c: int(v.size) for c, v in self.device_ids.items()},
            "opted_out": {c: v.tolist() for c, v in self.opted_out.items() if v.size},
            "device_limit_violations": self.limit_violations,
        }


def _per_car(p: np.ndarray, car: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Session columns (steps, n_sessions) summed per car: (car ids, (steps, n_cars))."""
    cars, inv = np.unique(car, return_inverse=True)
    m = csr_matrix((np.ones(car.size), (inv, np.arange(car.size))), shape=(cars.size, car.size))
    return cars, np.asarray((m @ p.T).T).reshape(p.shape[0], cars.size)


def event_setpoints(
    fleet: Fleet,
    event: Event,
    t0: int,
    opt_outs: list[OptOut] | tuple[OptOut, ...] = (),
) -> EventPlan:
    """Per-device set points for ``event`` over ``fleet``, whose state is that of step ``t0``.

    The same dispatch as :func:`dispatch_event` (participants from their own baseline towards
    their feasible minimum by the share the target needs; devices always within their limits),
    kept per device: returns an :class:`EventPlan` with set points (steps, n) MW per class for
    the event's steps, the expected reduction per step against the fleet's own baseline and
    what falls short of the target. Participants run on their own from ``t0`` to the event's
    start. An event starting before ``t0``, unknown device ids or buses raise clear errors.
    """
    _check_window(event, t0, None)
    masks, out_ids = _participants(fleet, event, opt_outs)
    part = _select(fleet, masks)
    a = event.start - t0
    state = disaggregate(part, t0, {}, steps=a).fleet_after if a > 0 else part
    sh = _shed(state, event, keep_devices=True)
    n = event.duration
    dev_ids, p, base, floor = _per_device(state, (sh.during, sh.counterfactual, sh.floor), n)
    red = _total(sh.counterfactual) - _total(sh.during)
    return EventPlan(
        event.id,
        event.start,
        n,
        fleet.step_h,
        event.target_mw,
        dev_ids,
        p,
        base,
        floor,
        red,
        sh.room_mw,
        out_ids,
        sh.during.limit_violations,
    )


def _per_device(
    state: Fleet, dispatches: tuple[Dispatch, Dispatch, Dispatch], n: int
) -> tuple[dict[str, np.ndarray], ...]:
    """Per class: device ids (EVs by car) and the (n, n_dev) MW of three dispatches kept per
    device (set points, baseline, floor)."""
    ids = {
        "battery": state.batteries.id,
        "ev": state.ev.ev,
        "water_heater": state.water_heaters.id,
    }
    dev_ids: dict[str, np.ndarray] = {}
    out: list[dict[str, np.ndarray]] = [{}, {}, {}]
    for c in DR_CLASSES:
        cols = [d.device_p_mw[c].reshape(n, ids[c].size) for d in dispatches]
        if c == "ev":
            pairs = [_per_car(x, ids[c]) for x in cols]
            dev_ids[c] = pairs[0][0]
            cols = [x[1] for x in pairs]
        else:
            dev_ids[c] = ids[c].copy()
        for o, x in zip(out, cols, strict=True):
            o[c] = x
    return (dev_ids, *out)


def schedule_setpoints(
    fleet: Fleet,
    t0: int,
    targets: dict[str, np.ndarray],
    *,
    plan_id: str = "schedule",
    buses: np.ndarray | None = None,
    group: np.ndarray | None = None,
) -> EventPlan:
    """Per-device set points of a schedule's per-bus (or per-group) class targets.

    ``targets``: (steps, n_bus or n_group) MW per class of :data:`DR_CLASSES` (a scheduler's
    window, e.g. :func:`gridpilot.flex.plan_window`'s first steps), the fleet's state being that
    of step ``t0``. The same fair disaggregation as :func:`event_setpoints`, kept per device
    with each device's own baseline and floor, so the same command building serves both.
    Returns an :class:`EventPlan` (``target_mw`` None; ``reduction_mw`` the fleet's power below
    its own baseline per step, negative where the schedule draws more, e.g. charging).
    """
    bad = sorted(set(targets) - set(DR_CLASSES))
    if bad:
        raise ValidationError(
            f"schedule_setpoints: unknown device class(es) {bad}; known: {list(DR_CLASSES)}"
        )
    if not targets:
        raise ValidationError("schedule_setpoints: no class targets given")
    n = int(next(iter(targets.values())).shape[0])
    if n <= 0:
        raise ValidationError("schedule_setpoints: targets have no steps")
    buses = fleet.buses() if buses is None else np.asarray(buses, np.int64)
    during = disaggregate(fleet, t0, targets, buses, keep_devices=True, group=group)
    cf = disaggregate(fleet, t0, {}, buses, steps=n, keep_devices=True)
    fl = disaggregate(fleet, t0, _floor_targets(n, buses.size), buses, keep_devices=True)
    dev_ids, p, base, floor = _per_device(fleet, (during, cf, fl), n)
    room = np.clip(_total(cf) - _total(fl), 0, None)
    return EventPlan(
        plan_id,
        t0,
        n,
        fleet.step_h,
        None,
        dev_ids,
        p,
        base,
        floor,
        _total(cf) - _total(during),
        room,
        {c: np.zeros(0, np.int64) for c in DR_CLASSES},
        during.limit_violations,
    )
