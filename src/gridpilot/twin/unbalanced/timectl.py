"""OpenDSS's ``controlmode=time`` for regulators and capacitor controls, as a stepper with
state: :class:`TimeControls` samples every control of a twin at a time ``t_s`` and executes
the queued actions that are due by then (the Python QSTS engine's rules, :mod:`.qsts`; the
compiled engine, :mod:`.fastctl`, implements the same and both are matched against OpenDSS
device by device). The state (queued actions, reverse mode, a bank's last opening for its
dead time) is kept per control name, so one stepper can drive several twins of the same
feeder (the agent's world compiles one per switching state)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

from gridpilot.model.threephase.elements import Capacitor, Winding
from gridpilot.twin.unbalanced.controls import (
    CLOSE,
    OPEN,
    CapSensor,
    RegSensor,
    cap_measure,
    cap_sample,
    neutral_taps,
    reg_delay,
    reg_measure,
    reg_wants,
    time_of_day,
    watches_reverse,
)
from gridpilot.twin.unbalanced.twin import UnbalancedTwin


@dataclass
class Device:
    """One control's time-mode state."""

    armed: bool = False
    t_exec: float = 0.0
    value: int = 0
    last_open_s: float = -1e18
    queue: list[float] = field(default_factory=list)  # regulator: times of queued actions
    handle: float | None = None  # the queued action a reset cancels (the first one)
    rev: bool = False  # regulator in reverse mode
    rev_t: float | None = None  # the queued reverse (or back-to-forward) action


def measure(
    tw: UnbalancedTwin, v: np.ndarray
) -> tuple[list[np.ndarray], list[dict[str, np.ndarray]]]:
    """The measures of all of ``tw``'s controls for solved steps ``v`` (nodes × steps)."""
    regs = [reg_measure(s, tw.net, v) for s in tw.regs]
    caps = [cap_measure(s, tw.net, v, y) for s, y in zip(tw.caps, tw._cap_y, strict=True)]
    return regs, caps


class TimeControls:
    """The time-mode state machine of a feeder's regulators and capacitor controls.

    ``sample_and_act(tw, t_s, regs, caps)`` is one control sample at ``t_s`` (seconds since
    the start) on twin ``tw``'s measures, then the actions due; the caller re-solves and
    samples again at the same time while any acted (as OpenDSS's control iterations).
    ``tap_ops`` (per regulator control) and ``cap_ops`` (per capacitor) count the moves."""

    def __init__(self) -> None:
        self.regs: dict[str, Device] = {}
        self.caps: dict[str, Device] = {}
        self.tap_ops: dict[str, int] = {}
        self.cap_ops: dict[str, int] = {}

    def reset(self, keep: Collection[str] = ()) -> None:
        """Forget the state (queued actions, reverse mode, dead time) of every control not in
        ``keep`` (names, lower case): it starts unarmed at its next sample."""
        for d in (self.regs, self.caps):
            for k in [k for k in d if k not in keep]:
                del d[k]

    def sample_and_act(
        self,
        tw: UnbalancedTwin,
        t_s: float,
        regs: list[np.ndarray],
        caps: list[dict[str, float]],
        skip: Collection[str] = (),
        tod_h: float | None = None,
    ) -> bool:
        """One sample at ``t_s`` then the actions due; True if any acted. ``skip``:
        regulator controls not sampled (their local control off); ``tod_h``: the time of
        day for time-type CapControls (default: that of ``t_s``)."""
        acted = False
        for i, rs in enumerate(tw.regs):
            if rs.ctl.name.lower() not in skip and self._reg(tw, rs, t_s, regs[i]):
                acted = True
        tod = time_of_day(t_s) if tod_h is None else tod_h
        for i, cs in enumerate(tw.caps):
            if self._cap(tw, cs, t_s, {**caps[i], "tod": tod}):
                acted = True
        return acted

    def _reg(self, tw: UnbalancedTwin, s: RegSensor, t_s: float, m: np.ndarray) -> bool:
        """OpenDSS time-mode RegControl: sample, then the queued actions that are due.

        A sample out of band arms one action at ``t + delay``; back in band it cancels that
        one action. Each action moves one tap towards the pending change and, while some is
        left, queues the next at ``t + tapdelay``; such follow-ups are not cancelled by a
        reset and act on the pending change of their time (OpenDSS's queue semantics)."""
        ctl = s.ctl
        key = ctl.name.lower()
        d = self.regs.setdefault(key, Device())
        w = tw.grid.transformer(s.xf).windings[ctl.tap_winding - 1]
        if watches_reverse(s):
            reverse_sample(d, ctl.rev_threshold_kw * 1e3, t_s + ctl.rev_delay_s, float(m[2]))
        arm(d, s, w, t_s, (float(m[1] if d.rev else m[0]), float(m[3])))
        acted = False
        for t in sorted(t for t in d.queue if t <= t_s + 1e-6):
            if d.rev_t is not None and d.rev_t <= t:  # the reverse action comes first
                d.rev, d.rev_t, acted = not d.rev, None, True
            d.queue.remove(t)
            if d.value == 0:
                d.armed = False
                continue
            step = 1 if d.value > 0 else -1
            new = min(max(w.tap + step * w.tap_step, w.min_tap), w.max_tap)
            if abs(new - w.tap) > 1e-9:  # not a rounding move at a limit (no new tap)
                tw.set_tap(ctl.name, new)
                self.tap_ops[key] = self.tap_ops.get(key, 0) + 1
                acted = True
            d.value -= step
            if d.value != 0:
                d.queue.append(t_s + ctl.tapdelay_s)
            else:
                d.armed = False
        if d.rev_t is not None and d.rev_t <= t_s + 1e-6:
            d.rev, d.rev_t, acted = not d.rev, None, True
        return acted

    def _cap(self, tw: UnbalancedTwin, s: CapSensor, t_s: float, m: dict[str, float]) -> bool:
        """OpenDSS time-mode CapControl: sample (arming after delay, dead time before a
        re-close), then the armed action if due, acting on the latest pending change."""
        ctl = s.ctl
        d = self.caps.setdefault(ctl.name.lower(), Device(last_open_s=-ctl.dead_time_s))
        cap = _capacitor(tw, s.cap)
        closed = sum(cap.states) > 0
        avail = len(cap.states) - sum(cap.states)
        d.value, should = cap_sample(s, m, closed, avail, d.value)
        if should and not d.armed:
            delay = ctl.delay_off_s
            if d.value == CLOSE:
                since = t_s - d.last_open_s
                delay = ctl.delay_s
                if since < ctl.dead_time_s:
                    delay = max(ctl.delay_s, ctl.dead_time_s + ctl.delay_s - since)
            d.armed, d.t_exec = True, t_s + delay
        if d.armed and d.value == 0:
            d.armed = False
        if not (d.armed and d.t_exec <= t_s + 1e-6):
            return False
        d.armed = False
        states = list(cap.states)
        if d.value == CLOSE and 0 in states:
            states[states.index(0)] = 1
        elif d.value == OPEN and closed:
            states[len(states) - 1 - states[::-1].index(1)] = 0
            d.last_open_s = t_s
        else:
            return False
        tw.set_cap(cap.name, states)
        self.cap_ops[s.cap] = self.cap_ops.get(s.cap, 0) + 1
        return True


def _capacitor(tw: UnbalancedTwin, name: str) -> Capacitor:
    return next(c for c in tw.grid.capacitors if c.name.lower() == name)


def arm(d: Device, s: RegSensor, w: Winding, t_s: float, vs: tuple[float, float]) -> None:
    """The regulator's sample proper (``vs``: control and VLimit voltages): the pending
    change, arming (after the delay, inverse-time or not) or cancelling the first action;
    reverse neutral: towards tap 1.0, no band check. Out of band with nothing to move
    (rounded to 0 taps) an armed action stays armed, as OpenDSS."""
    ctl = s.ctl
    if not ctl.max_tap_change:  # OpenDSS samples nothing (queued actions still run)
        d.value = 0
        return
    if d.rev and ctl.rev_neutral and watches_reverse(s):
        neutral_sample(d, w.tap, w.tap_step, t_s + ctl.tapdelay_s)
        return
    rev, cogen = d.rev and not ctl.cogen, d.rev and ctl.cogen
    n, needed = reg_wants(s, w.tap, w.tap_step, vs[0], vs[1], rev, cogen)
    d.value = n
    if not needed:
        if d.armed and d.handle in d.queue:
            d.queue.remove(d.handle)
        d.armed = False
        return
    movable = (n > 0 and w.tap < w.max_tap - 1e-9) or (n < 0 and w.tap > w.min_tap + 1e-9)
    if movable and not d.armed:
        d.handle = t_s + reg_delay(s, vs[0], w.tap, rev)
        d.queue.append(d.handle)
        d.armed = True


def neutral_sample(d: Device, tap: float, step: float, t_due: float) -> None:
    """OpenDSS's reverse-neutral sample: unless armed, head for the neutral tap (first
    action at ``t_due``); no band check (an armed action keeps its pending change)."""
    if d.armed:
        return
    d.value = neutral_taps(tap, step)
    if d.value != 0:
        d.queue.append(t_due)
        d.armed = True


def reverse_sample(d: Device, threshold_w: float, t_due: float, fwd_w: float) -> None:
    """OpenDSS's reverse detection: forward power beyond the threshold the other way queues
    the toggle (at ``t_due``); back within it cancels the queued toggle."""
    flip = fwd_w < -threshold_w if not d.rev else fwd_w > threshold_w
    if flip and d.rev_t is None:
        d.rev_t = t_due
    elif not flip:
        d.rev_t = None


def next_due(ctl: TimeControls) -> float | None:
    """The earliest time any control has an action queued (None: nothing queued)."""
    times = [t for d in ctl.regs.values() for t in d.queue]
    times += [d.rev_t for d in ctl.regs.values() if d.rev_t is not None]
    times += [d.t_exec for d in ctl.caps.values() if d.armed]
    return min(times) if times else None


__all__ = ["Device", "TimeControls", "arm", "measure", "neutral_sample", "next_due",
           "reverse_sample"]  # fmt: skip
