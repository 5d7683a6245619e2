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

from gridpilot.errors import UnknownComponentError, ValidationError
from gridpilot.flex.aggregate import disaggregate
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


def participants(
    fleet: Fleet, event: Event, opt_outs: list[OptOut] | tuple[OptOut, ...] = ()
) -> tuple[dict[str, np.ndarray], int]:
    """Masks of participating devices per class; unknown device ids or buses are an UnknownComponentError."""
    ids = {"battery": fleet.batteries.id, "ev": fleet.ev.ev, "water_heater": fleet.water_heaters.id}
    buses = {
        "battery": fleet.batteries.bus,
        "ev": fleet.ev.bus,
        "water_heater": fleet.water_heaters.bus,
    }
    known_bus = fleet.buses()
    for b in event.buses:
        if int(b) not in set(known_bus.tolist()):
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
    out = 0
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
        out += int(np.any(masks[o.device_class] & hit))
        masks[o.device_class] &= ~hit
    return masks, out


def _total(d: Any) -> np.ndarray:
    return (
        d.p_mw["battery"].sum(axis=1)
        + d.p_mw["ev"].sum(axis=1)
        + d.p_mw["water_heater"].sum(axis=1)
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
    if not (t0 <= event.start and event.start + event.duration <= t0 + steps):
        raise ValidationError(
            f"event {event.id}: steps {event.start}..{event.start + event.duration} are outside "
            f"the simulated {t0}..{t0 + steps}"
        )
    masks, n_out = participants(fleet, event, opt_outs)
    part = _select(fleet, masks)
    rest = _select(fleet, {c: ~m for c, m in masks.items()})
    base = disaggregate(fleet, t0, {}, steps=steps)
    # participants: before the event on their own, then the event, then on their own again
    a = event.start - t0
    n = event.duration
    pre = disaggregate(part, t0, {}, steps=a) if a > 0 else None
    state = pre.fleet_after if pre is not None else part
    buses = state.buses()
    cf = disaggregate(
        state, event.start, {}, buses, steps=n
    )  # their own counterfactual in the event
    floor = disaggregate(
        state, event.start, {c: np.full((n, buses.size), -1e9) for c in DR_CLASSES}, buses
    )
    base_b = sum(cf.p_mw[c] for c in DR_CLASSES)
    min_b = sum(floor.p_mw[c] for c in DR_CLASSES)
    room = np.clip(base_b - min_b, 0, None)
    if event.program.kind == "price":
        share = (
            np.ones(n)
            if event.price_eur_per_mwh >= event.program.trigger_eur_per_mwh
            else np.zeros(n)
        )  # type: ignore[operator]
    else:
        tot = room.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.clip(np.where(tot > 0, float(event.target_mw) / tot, 0.0), 0, 1)  # type: ignore[arg-type]
    tg = {
        c: cf.p_mw[c] - share[:, None] * np.clip(cf.p_mw[c] - floor.p_mw[c], 0, None)
        for c in DR_CLASSES
    }
    if np.any(share > 0):
        during = disaggregate(state, event.start, tg, buses)
    else:  # nothing asked (a price below the trigger): the devices carry on on their own
        during = disaggregate(state, event.start, {}, buses, steps=n)
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
        n_out,
        event.target_mw,
        viol,
    )
