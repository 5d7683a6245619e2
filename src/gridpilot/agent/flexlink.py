"""Demand response planned and dispatched by :mod:`gridpilot.flex` on the field's devices.

The loop decides a demand-response *level* 0..1 (policies, operators). :class:`FlexDR` turns it
into an OpenADR-like :class:`~gridpilot.flex.Event` of a ``load_shed`` program over the field's
device registry (:class:`gridpilot.field.DeviceFleet`, read through
:func:`gridpilot.flex.fleet_from_field` in the grid's MW): target = level x the power the
enrolled devices could shed now, for ``duration_min`` minutes (renewed from the devices' state
while the level holds), at all enrolled devices or at given buses. The event's per-device set
points (:func:`gridpilot.flex.event_setpoints`) become :class:`gridpilot.field.Command`\\ s the
field understands: ``battery_setpoint`` (kW), ``ev_limit`` (kW), ``water_heater_pause`` /
``water_heater_resume`` (on/off: the heaters with the most room are paused until the class's
share of the reduction is covered), refreshed at every 15-minute step of the plan, and
``battery_auto``, ``ev_limit`` = charger rating and ``water_heater_resume`` to release.

:attr:`FlexDR.share` is the sheddable power over the feeder's load (what the loop's look-ahead
model ``cut = 1 - level * dr_share`` needs), frozen while an event runs. Every event is kept as
a :class:`~gridpilot.agent.drrecord.DREventRecord` (id, target, expected reduction, devices,
status and, once it ends, the measured reduction). At each :meth:`FlexDR.tick` the
participants' reduction is measured device by device
(:class:`~gridpilot.agent.drdelivery.DeviceReadings`): per load for the loop's demand
estimate (:meth:`FlexDR.shed_by_load_mw`), in total for the delivery check (below 80 % of the
target after 5 minutes: :attr:`FlexDR.alarm` and one top-up per event at a higher level).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from gridpilot.agent.drdelivery import (
    DeliveryCheck,
    DeviceReadings,
    planned_shed_by_load,
    reduction_by_load,
    window_mean,
)
from gridpilot.agent.drrecord import DEVICE_METHOD, DREventRecord
from gridpilot.errors import ValidationError
from gridpilot.field import Command
from gridpilot.flex import (
    Event,
    EventPlan,
    Fleet,
    OptOut,
    Program,
    event_setpoints,
    fleet_from_field,
    shed_potential_by_bus,
)
from gridpilot.model import Grid

logger = logging.getLogger(__name__)

FLEX_STEP_S = 900  # the flex package's step (15 minutes)
PRE_SAMPLES = 15  # load samples before an event that form its measured baseline


@dataclass
class _Active:
    record: DREventRecord
    plan: EventPlan
    t0: np.datetime64  # wall time of the event's first step
    dispatched: np.datetime64  # when it was dispatched
    step: int = -1  # plan step whose set points are in force


def _flex_step(now: np.datetime64) -> int:
    """Flex step of ``now`` counted from the midnight before the previous day (so that the
    overnight session of a car plugged in now has non-negative steps)."""
    sec = (now.astype("datetime64[s]") - now.astype("datetime64[D]")) / np.timedelta64(1, "s")
    return 96 + int(sec // FLEX_STEP_S)


@dataclass(frozen=True)
class _Ask:
    """What :meth:`FlexDR.dispatch` was asked: level (0..1), who and why, the buses (ids; empty:
    all), the loop's own level when topped up and the event topped up."""

    level: float
    source: str
    reason: str
    buses: list[int]
    requested_level: float | None
    topup_of: str | None


class FlexDR:
    """Demand response by events over the field's devices (see the module docstring).

    ``FlexDR(grid, devices, duration_min=60, opt_outs=(), program=None)``: ``devices`` is the
    field's :class:`~gridpilot.field.DeviceFleet` (read, never written: devices change only
    through the returned commands).
    """

    def __init__(  # noqa: PLR0913
        self,
        grid: Grid,
        devices: Any,
        *,
        duration_min: float = 60.0,
        opt_outs: list[OptOut] | tuple[OptOut, ...] = (),
        program: Program | None = None,
        history: int = 200,
        check: DeliveryCheck | None = None,
    ) -> None:
        if not duration_min >= FLEX_STEP_S / 60:
            raise ValidationError(
                f"duration_min: must be at least {FLEX_STEP_S // 60} minutes, got {duration_min}"
            )
        self.grid = grid
        self.devices = devices
        self.duration_min = float(duration_min)
        self.opt_outs = list(opt_outs)
        self.program = program or Program("gridpilot-load-shed", "load_shed")
        self.records: deque[DREventRecord] = deque(maxlen=history)
        self.active: _Active | None = None
        self.share = 0.0
        self.share_per_load: np.ndarray | None = None
        self._seq = 0
        self._pot: tuple[int, np.ndarray, np.ndarray] | None = None
        self._pre: deque[float] = deque(maxlen=PRE_SAMPLES)
        self._shape = 1.0  # the load profile's multiplier now (from tick), for battery baselines
        self._load_bus: np.ndarray | None = None  # bus id per load (from update_share)
        self.check = check or DeliveryCheck()
        self.alarm: str | None = None  # the under-delivery alarm's text (None: none)
        self._in_force: tuple[_Active, int] | None = None  # event and step of the last reading
        self._readings = DeviceReadings()
        self._measured: np.ndarray | None = None  # measured reduction per load, last reading
        self.delivery_factor = 1.0  # measured / planned reduction at the last reading

    # --- the devices in flex terms ----------------------------------------------------------------
    def fleet(self, now: np.datetime64) -> tuple[Fleet, int]:
        """The registry as a flex :class:`Fleet` (grid MW) and the flex step of ``now``."""
        t = _flex_step(now)
        f = fleet_from_field(
            self.grid, self.devices, start_step=t, days=2, grid_scale=True, base_factor=self._shape
        )
        return f, t

    def sheddable_by_bus(self, now: np.datetime64) -> tuple[np.ndarray, np.ndarray]:
        """What the enrolled devices could shed below their own baseline now, per bus: (bus ids,
        MW), cached per 15-minute step."""
        t = _flex_step(now)
        if self._pot is None or self._pot[0] != t:
            fleet, t = self.fleet(now)
            buses, room = shed_potential_by_bus(fleet, t, 1)
            self._pot = (t, buses, room[0])
        return self._pot[1], self._pot[2]

    def sheddable_mw(self, now: np.datetime64) -> float:
        """What the enrolled devices could shed below their own baseline now, MW."""
        return float(self.sheddable_by_bus(now)[1].sum())

    def update_share(
        self,
        now: np.datetime64,
        load_mw: float | np.ndarray,
        load_bus: np.ndarray | None = None,
    ) -> float:
        """Sheddable power over the load (0..1), the look-ahead's ``dr_share``; kept as it was at
        dispatch while an event runs. ``load_mw`` the feeder's load (MW) or, with ``load_bus``
        (bus id per load), per load: then :attr:`share_per_load` is the share per load (the room
        at its bus over the load there; an event sheds the same share of every bus's room, so
        this is where it acts). Returns the feeder-wide share."""
        if self.active is not None:
            return self.share
        buses, room = self.sheddable_by_bus(now)
        load = np.atleast_1d(np.asarray(load_mw, np.float64))
        self.share = float(np.clip(room.sum() / max(load.sum(), 1e-6), 0.0, 1.0))
        if load_bus is None:
            self.share_per_load = None
            return self.share
        lb = np.asarray(load_bus, np.int64)
        if lb.shape != load.shape:
            raise ValidationError(
                f"update_share: load_bus has shape {lb.shape}, load_mw {load.shape}"
            )
        self._load_bus = lb
        ub, inv = np.unique(lb, return_inverse=True)
        at_bus = np.bincount(inv, weights=np.maximum(load, 0.0), minlength=ub.size)
        r = np.zeros(ub.size)
        if buses.size:
            pos = np.clip(np.searchsorted(buses, ub), 0, buses.size - 1)
            r = np.where(buses[pos] == ub, room[pos], 0.0)
        share_b = np.clip(np.divide(r, at_bus, out=np.zeros(ub.size), where=at_bus > 1e-9), 0, 1)
        self.share_per_load = share_b[inv]
        return self.share

    # --- events -----------------------------------------------------------------------------------
    def set_level(
        self,
        level: float,
        now: np.datetime64,
        *,
        source: str = "",
        reason: str = "",
        buses: list[int] | None = None,
    ) -> list[Command]:
        """Follow the loop's DR level: a new event (superseding one at another level), a release
        (level 0) or nothing (same level). Returns the commands for the field, in order."""
        if not 0.0 <= level <= 1.0:
            raise ValidationError(f"dr level: must be within [0, 1], got {level}")
        act = self.active
        if level <= 0.0:
            self.alarm = None  # no DR asked: nothing to under-deliver
            return self.release(now, "released") if act is not None else []
        asked = act.record.requested_level if act is not None else None
        if act is not None and math.isclose(asked or act.record.level, level) and not buses:
            return []
        cmds = self.release(now, "superseded") if act is not None else []
        return cmds + self.dispatch(level, now, source=source, reason=reason, buses=buses)

    def dispatch(  # noqa: PLR0913
        self,
        level: float,
        now: np.datetime64,
        *,
        source: str = "",
        reason: str = "",
        buses: list[int] | None = None,
        requested_level: float | None = None,
        topup_of: str | None = None,
    ) -> list[Command]:
        """Plan and start one event at ``level`` x the power the targeted devices (all, or those
        at ``buses``) could shed now; returns its commands (none when nothing can be shed: the
        record says so). A bus id not in the grid is an UnknownComponentError; buses without
        devices add nothing. ``requested_level``: the loop's level when ``level`` is raised
        above it (a top-up, ``topup_of`` the event it tops up)."""
        t_wall = time.perf_counter()
        want = [int(b) for b in (buses or [])]
        if want:
            self.grid.bus.index_of(np.asarray(want, np.int64))  # unknown ids raise
        fleet, t = self.fleet(now)
        bb, rb = shed_potential_by_bus(fleet, t, 1)
        keep = np.isin(bb, np.asarray(want, np.int64)) if want else np.ones(bb.size, bool)
        targeted = [int(b) for b in bb[keep]] if want else []
        room = float(rb[0][keep].sum())
        target = level * room
        self._seq += 1
        eid = f"dr-{self._seq}"
        n = max(1, round(self.duration_min * 60 / FLEX_STEP_S))
        start = str(now.astype("datetime64[s]"))
        ask = _Ask(float(level), source, reason, list(buses or []), requested_level, topup_of)
        if target <= 1e-6:
            self.records.append(self._empty_record(ask, eid, start, t_wall))
            return []
        ev = Event(eid, self.program, t, n, target_mw=target, buses=targeted)
        plan = event_setpoints(fleet, ev, t, self.opt_outs)
        rec = DREventRecord(
            eid,
            source,
            float(level),
            target,
            start,
            self.duration_min,
            list(buses or []),
            {c: int(v.size) for c, v in plan.device_ids.items()},
            [float(x) for x in plan.reduction_mw],
            float(plan.short_mw.max()),
            plan.target_met,
            0.0,
            reason=reason,
            pre_level_mw=float(np.mean(self._pre)) if self._pre else None,
            requested_level=float(level if requested_level is None else requested_level),
            topup_of=topup_of,
        )
        t0 = now.astype("datetime64[D]").astype("datetime64[s]") + np.timedelta64(
            (t - 96) * FLEX_STEP_S, "s"
        )  # wall time of the event's first step
        self.active = _Active(rec, plan, t0, now.astype("datetime64[s]"))
        self._readings.reset()
        self._readings.read(self.devices, plan, now)  # the first reading of its participants
        if targeted and self.share_per_load is not None and self._load_bus is not None:
            # the event sheds only at its buses: elsewhere DR level x share is 0 while it runs
            at = np.isin(self._load_bus, np.asarray(targeted, np.int64))
            self.share_per_load = np.where(at, self.share_per_load, 0.0)
        cmds = self._setpoints(0)
        rec.dispatch_ms = (time.perf_counter() - t_wall) * 1e3
        rec.commands = len(cmds)
        self.records.append(rec)
        return cmds

    def _empty_record(self, ask: _Ask, eid: str, start: str, t_wall: float) -> DREventRecord:
        """The record of an event that found nothing to shed at ``start`` (dispatched at
        ``t_wall``, perf-counter seconds)."""
        return DREventRecord(
            id=eid,
            source=ask.source,
            level=ask.level,
            target_mw=0.0,
            start=start,
            duration_min=self.duration_min,
            buses=ask.buses,
            devices={},
            expected_reduction_mw=[],
            short_mw=0.0,
            target_met=None,
            dispatch_ms=(time.perf_counter() - t_wall) * 1e3,
            status="empty",
            end=start,
            reason=f"{ask.reason}; nothing to shed now".strip("; "),
            requested_level=float(
                ask.level if ask.requested_level is None else ask.requested_level
            ),
            topup_of=ask.topup_of,
        )

    def release(self, now: np.datetime64, status: str = "released") -> list[Command]:
        """End the active event (``status``: released, superseded, renewed); every participant
        back to its own control. Returns the commands (none without an active event)."""
        act = self.active
        if act is None:
            return []
        self.active = None
        if status in ("released", "superseded"):
            self.alarm = None  # the loop changed or ended the demand response
        rec = act.record
        rec.status = status
        rec.end = str(now.astype("datetime64[s]"))
        if rec.delivered:
            rec.measured_reduction_mw = float(np.mean([x for _, x in rec.delivered]))
            rec.measured_method = DEVICE_METHOD
        elif rec.pre_level_mw is not None and rec.during:
            load, shape = np.asarray(rec.during).T
            rec.measured_reduction_mw = float(np.mean(rec.pre_level_mw * shape - load))
        return release_commands(self.devices, act.plan.device_ids, f"{rec.id}:release")

    def tick(
        self, now: np.datetime64, load_mw: float | None = None, shape: float = 1.0
    ) -> list[Command]:
        """Once per loop step: record the metered load ``load_mw`` (MW) and the load-shape
        forecast ``shape`` at ``now`` (any scale; 1 = no forecast) for the measured reduction,
        move the active event's set points to the plan step of ``now`` and renew the event at
        its end while its level holds. Returns the commands for the field."""
        act = self.active
        self._in_force = (act, act.step) if act is not None else None
        self._measure(now)
        if shape > 0:
            self._shape = float(shape)
        if load_mw is not None and np.isfinite(load_mw) and shape > 0:
            if act is not None:
                act.record.during.append((float(load_mw), float(shape)))
            else:
                self._pre.append(float(load_mw) / float(shape))
        if act is None:
            return []
        k = int((now.astype("datetime64[s]") - act.t0) / np.timedelta64(FLEX_STEP_S, "s"))
        if k >= act.plan.steps:
            rec = act.record
            cmds = self._restart(now, "renewed")
            return cmds + self.dispatch(
                rec.level,
                now,
                source=rec.source,
                reason=f"renewal of {rec.id}",
                buses=rec.buses,
                requested_level=rec.requested_level,
                topup_of=rec.topup_of,
            )
        topup = self._check_delivery(now)
        if topup is not None:
            return topup
        if k != act.step:
            cmds = self._setpoints(k)
            act.record.commands += len(cmds)
            return cmds
        return []

    def _restart(self, now: np.datetime64, status: str) -> list[Command]:
        """Release the active event (``status``) keeping its pre-event level for the next."""
        assert self.active is not None
        pre = self.active.record.pre_level_mw
        cmds = self.release(now, status)
        self._pre.clear()
        if pre is not None:  # the next event is measured against the same pre-event level
            self._pre.append(pre)
        return cmds

    def _check_delivery(self, now: np.datetime64) -> list[Command] | None:
        """The delivery check (:class:`~gridpilot.agent.drdelivery.DeliveryCheck`): after the
        settling time, the reduction measured over the last window against the target. Below
        ``alarm_share``: :attr:`alarm` is set and, once per event, the event is topped up (a
        new event at level / delivered share, at most 1: more of the enrolled devices' room)
        or, at level 1 already, the record says nothing more is possible. Returns the top-up's
        commands, else None."""
        act = self.active
        assert act is not None
        rec, c = act.record, self.check
        age = (now.astype("datetime64[s]") - act.dispatched) / np.timedelta64(1, "s")
        if age < c.settle_s or rec.target_mw <= 1e-9:
            return None
        d = window_mean(rec.delivered, c.window_s)
        if d is None:
            return None
        share = d / rec.target_mw
        rec.delivered_mw, rec.delivered_share = d, share
        if share >= c.alarm_share:
            self.alarm = None
            return None
        text = (
            f"DR event {rec.id} under-delivers: {d:.3f} MW of its {rec.target_mw:.3f} MW "
            f"target ({100 * share:.0f} % < {100 * c.alarm_share:.0f} %)"
        )
        if rec.reaction:
            return None
        level = min(1.0, rec.level / max(share, 1e-3))
        if level <= rec.level + 1e-6:
            rec.reaction = "none left: the event already asks the devices' full room (level 1)"
            self.alarm = f"{text}; {rec.reaction}"
            logger.warning(self.alarm)
            return None
        rec.reaction = f"topped up: level {rec.level:.2f} -> {level:.2f} (more device room)"
        self.alarm = f"{text}; {rec.reaction}"
        logger.warning(self.alarm)
        cmds = self._restart(now, "topped-up")
        return cmds + self.dispatch(
            level,
            now,
            source=rec.source,
            reason=f"top-up of {rec.id}: {text}",
            buses=rec.buses,
            requested_level=rec.requested_level,
            topup_of=rec.id,
        )

    def _measure(self, now: np.datetime64) -> None:
        """The participants' measured reduction since the last reading, per load (for the
        loop's estimate) and in total (the record's ``delivered`` samples)."""
        act, self._measured, self.delivery_factor = self.active, None, 1.0
        if act is None or act.step < 0:
            return
        power = self._readings.read(self.devices, act.plan, now)
        if power is None:
            return
        n = len(self.grid.load)
        planned_l = planned_shed_by_load(self.devices, act.plan, act.step, n)
        # bounded by the plan (0 .. 1.5 x planned per load): stale or missing device data
        # must not invent demand
        self._measured = np.clip(
            reduction_by_load(self.devices, act.plan, act.step, power, n),
            0.0,
            1.5 * np.maximum(planned_l, 0.0),
        )
        age = (now.astype("datetime64[s]") - act.dispatched) / np.timedelta64(1, "s")
        got = float(self._measured.sum())
        act.record.delivered.append((float(age), got))
        planned = float(act.plan.reduction_mw[act.step])
        self.delivery_factor = float(np.clip(got / planned, 0.0, 1.5)) if planned > 1e-6 else 1.0

    def _setpoints(self, k: int) -> list[Command]:
        """Commands putting the participants at plan step ``k`` (per-device kW from grid MW)."""
        act = self.active
        assert act is not None
        act.step = k
        return setpoint_commands(self.devices, act.plan, k, f"{act.record.id}:{k}")

    # --- reporting ---------------------------------------------------------------------------------
    def shed_by_load_mw(self, n_load: int, at: np.datetime64 | None = None) -> np.ndarray:
        """The planned reduction below the devices' baseline per grid load, (n_load,) MW.

        ``at`` None: what the metered load lacks at the last reading passed to :meth:`tick`: the
        participants' measured reduction (:class:`~gridpilot.agent.drdelivery.DeviceReadings`)
        or, before a first interval is measured, the plan step then in force. Else the step
        the active event will be at ``at`` (past its plan: its first step's, as a renewal
        starts) times :attr:`delivery_factor` (what the devices deliver of their plan now);
        zero without an event.
        """
        if at is None:
            if self._measured is not None:
                return self._measured.copy()
            f = self._in_force
            if f is None or f[1] < 0:
                return np.zeros(n_load)
            return planned_shed_by_load(self.devices, f[0].plan, f[1], n_load)
        act = self.active
        if act is None:
            return np.zeros(n_load)
        k = int((at.astype("datetime64[s]") - act.t0) / np.timedelta64(FLEX_STEP_S, "s"))
        k = k if 0 <= k < act.plan.steps else 0
        return planned_shed_by_load(self.devices, act.plan, k, n_load) * self.delivery_factor

    def expected_shed_mw(self, now: np.datetime64) -> float:
        """What the active event's devices are expected to shed below their own baseline at
        ``now`` (MW, the plan step in force; 0 without an event): the household DR energy for
        the curtailment KPI (the field has no counterfactual of its own)."""
        act = self.active
        if act is None:
            return 0.0
        k = int((now.astype("datetime64[s]") - act.t0) / np.timedelta64(FLEX_STEP_S, "s"))
        red = act.record.expected_reduction_mw
        return float(max(red[k], 0.0)) if 0 <= k < len(red) else 0.0

    def events(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest event records (JSON-able), newest last."""
        return [r.to_dict() for r in list(self.records)[-limit:]]


def setpoint_commands(devices: Any, plan: EventPlan, k: int, tag: str) -> list[Command]:
    """Field commands putting ``plan``'s devices at its step ``k`` (an event's or a schedule's
    per-device set points in the grid's MW; per-device kW = MW x 1000 / the meter's scale).

    Batteries: ``battery_setpoint`` where the plan holds them (a set point off their own
    baseline, or any non-zero one), ``battery_auto`` elsewhere. EVs: ``ev_limit`` at the planned
    power for the cars charging (or discharging) in the plan, the charger's rating for the
    others. Water heaters (on/off only): the heaters with the most room are paused until the
    class's reduction below its own baseline is covered, the others resume (a schedule asking
    more than the baseline leaves every heater on its thermostat). ``tag`` names the commands.
    """
    d = devices
    ms = np.asarray(d.meter_scale, np.float64)
    out: list[Command] = []
    ids = plan.device_ids["battery"]
    if ids.size:
        p = plan.p_mw["battery"][k]
        on = (np.abs(p) > 1e-9) | (np.abs(p - plan.baseline_mw["battery"][k]) > 1e-9)
        kw = p[on] * 1e3 / ms[d.bat_meter[ids[on]]]
        if on.any():
            out.append(Command("battery_setpoint", ids[on], kw, tag))
        if (~on).any():
            out.append(Command("battery_auto", ids[~on], None, tag))
    ids = plan.device_ids["ev"]
    if ids.size:
        p = plan.p_mw["ev"][k]
        on = (plan.baseline_mw["ev"][k] > 1e-9) | (p < -1e-9)
        kw = p[on] * 1e3 / ms[d.ev_meter[ids[on]]]
        if on.any():
            out.append(Command("ev_limit", ids[on], kw, tag))
        if (~on).any():
            rated = np.asarray(d.ev_charger_kw[ids[~on]], np.float64)
            out.append(Command("ev_limit", ids[~on], rated, tag))
    ids = plan.device_ids["water_heater"]
    if ids.size:
        want = float((plan.baseline_mw["water_heater"][k] - plan.p_mw["water_heater"][k]).sum())
        room = plan.baseline_mw["water_heater"][k] - plan.floor_mw["water_heater"][k]
        order = np.argsort(-room, kind="stable")
        cum = np.cumsum(room[order])
        n_pause = int(np.searchsorted(cum, want - 1e-9) + 1) if want > 1e-9 else 0
        pause = np.zeros(ids.size, bool)
        pause[order[: min(n_pause, ids.size)]] = True
        pause &= room > 1e-9
        if pause.any():
            out.append(Command("water_heater_pause", ids[pause], None, tag))
        if (~pause).any():
            out.append(Command("water_heater_resume", ids[~pause], None, tag))
    return out


def release_commands(devices: Any, device_ids: dict[str, np.ndarray], tag: str) -> list[Command]:
    """Field commands handing ``device_ids`` (per class) back to their own control:
    ``battery_auto``, ``ev_limit`` at the charger's rating, ``water_heater_resume``."""
    out = []
    if device_ids["battery"].size:
        out.append(Command("battery_auto", device_ids["battery"].copy(), None, tag))
    if device_ids["ev"].size:
        kw = np.asarray(devices.ev_charger_kw[device_ids["ev"]], np.float64)
        out.append(Command("ev_limit", device_ids["ev"].copy(), kw, tag))
    if device_ids["water_heater"].size:
        out.append(Command("water_heater_resume", device_ids["water_heater"].copy(), None, tag))
    return out


__all__ = ["FLEX_STEP_S", "DREventRecord", "FlexDR", "release_commands", "setpoint_commands"]
