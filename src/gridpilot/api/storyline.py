"""The demo's storyline: faults and wind drops, each announced ahead, repeated with new faults.

The storyline waits until the first dashboard client connects (or ``start_after_s`` wall
seconds, whichever is first), so that the first fault is seen. Each episode announces, in the
terminal and in the event log, what comes and when ("in 20 s: a fault on line 27"), then
injects a fault, the crew's repair, a wind drop and the wind's return; the next episode takes
the next line of a shuffled list of candidate lines.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gridpilot.agent.acting import announce
from gridpilot.agent.wording import event_phrase

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    """An episode's timing in wall seconds: the lead of each announcement, how long a fault
    stays before the repair, how long the wind stays low, the pause between episodes."""

    lead_s: float = 20.0
    fault_hold_s: float = 30.0
    wind_hold_s: float = 25.0
    pause_s: float = 10.0


def fault_candidates(grid: Any, seed: int = 0) -> list[int]:
    """Line ids a storyline faults, in a shuffled order: in service, no normally open (tie)
    switch on them, not at a source bus (a fault there would black out the whole feeder)."""
    sw = grid.switch
    ties = {
        int(e)
        for e, et, no in zip(sw["element"], sw["et"], sw["normally_open"], strict=True)
        if et == 0 and no
    }
    src = {int(b) for b in grid.source["bus"]}
    ids = [
        int(i)
        for i, f, t, on in zip(
            grid.line.ids,
            grid.line["from_bus"],
            grid.line["to_bus"],
            grid.line["in_service"],
            strict=True,
        )
        if on and int(i) not in ties and int(f) not in src and int(t) not in src
    ]
    np.random.default_rng(seed).shuffle(ids)
    return ids


class Storyline:
    """Announced drill events, episode after episode (a :class:`~gridpilot.api.runner.StepHook`).

    ``say`` prints a line in the terminal; ``speed`` (simulated s per wall s) and ``step_s``
    turn the wall-second :class:`Timing` into steps.
    """

    def __init__(  # noqa: PLR0913
        self,
        grid: Any,
        speed: float,
        step_s: float,
        say: Callable[[str], None],
        *,
        timing: Timing | None = None,
        start_after_s: float | None = 60.0,
        seed: int = 0,
    ) -> None:
        self.speed, self.step_s, self.say = float(speed), float(step_s), say
        self.timing = timing or Timing()
        self.start_after_s = start_after_s
        self.lines = fault_candidates(grid, seed) or [int(grid.line.ids[0])]
        self.episodes = 0
        self.happened: list[str] = []  # what the storyline did, for the summary
        self._plan: dict[int, list[tuple[str, Any]]] = {}
        self._armed = threading.Event()
        self._t0: float | None = None
        self._why = ""

    def client_connected(self) -> None:
        """A dashboard client connected: start the storyline (if not already started)."""
        if not self._armed.is_set():
            self._why = "a dashboard client connected"
            self._armed.set()

    def _steps(self, wall_s: float) -> int:
        return max(1, math.ceil(wall_s * self.speed / self.step_s))

    def _episode(self, t: int) -> None:
        """Schedule the next episode from step ``t``."""
        tm = self.timing
        line = self.lines[self.episodes % len(self.lines)]
        self.episodes += 1
        fault = {"kind": "fault", "line": line}
        repair = {"kind": "repair", "line": line}
        drop = {"kind": "wind_drop", "factor": 0.05}
        back = {"kind": "wind_restore"}
        at_fault = t + self._steps(tm.lead_s)
        at_repair = at_fault + self._steps(tm.fault_hold_s)
        at_drop = at_repair + self._steps(tm.lead_s / 2)
        at_back = at_drop + self._steps(tm.wind_hold_s)
        lead2 = min(tm.lead_s / 2, tm.fault_hold_s)
        for step, item in (
            (t, ("say", (tm.lead_s, fault))),
            (at_fault, ("inject", fault)),
            (at_repair - self._steps(lead2), ("say", (lead2, repair))),
            (at_repair, ("inject", repair)),
            (at_repair, ("say", (tm.lead_s / 2, drop))),
            (at_drop, ("inject", drop)),
            (at_back, ("inject", back)),
            (at_back + self._steps(tm.pause_s), ("next", None)),
        ):
            self._plan.setdefault(step, []).append(item)

    def before_step(self, orch: Any) -> None:
        """Arm on the countdown, then announce and inject what is due at the present step."""
        if self._t0 is None:
            self._t0 = time.monotonic()
        if not self._armed.is_set():
            if self.start_after_s is None or time.monotonic() - self._t0 < self.start_after_s:
                return
            self._why = f"{self.start_after_s:.0f} s passed"
            self._armed.set()
        t = int(orch.world.t)
        if not self._plan:
            self.say(f"storyline starts ({self._why})")
            self._episode(t)
        for k in sorted(k for k in self._plan if k <= t):
            for kind, arg in self._plan.pop(k):
                self._do(orch, t, kind, arg)

    def _do(self, orch: Any, t: int, kind: str, arg: Any) -> None:
        if kind == "say":
            lead, ev = arg
            text = f"in {lead:.0f} s: {event_phrase(ev['kind'], ev)}"
            self.say(text)
            announce(orch, text, at_step=t + self._steps(lead))
        elif kind == "inject":
            what = event_phrase(arg["kind"], arg)
            self.say(f"now: {what}")
            self.happened.append(what)
            orch.inject(actor="demo", **arg)
        else:
            self._episode(t)
