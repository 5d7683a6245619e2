"""The loop thread behind the served API: steps the orchestrator in accelerated real time."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from gridpilot.agent.orchestrator import Orchestrator

log = logging.getLogger(__name__)


class StepHook(Protocol):
    """Called before each step (e.g. a storyline that injects and announces events)."""

    def before_step(self, orch: Orchestrator) -> None:
        """Inject or announce what is due at the orchestrator's present step."""


class LoopRunner:
    """Runs the orchestrator in a background thread at ``speed`` simulated seconds per wall second.

    ``events`` maps a step to events to inject first (fixed schedule); ``hook`` (e.g. a
    :class:`~gridpilot.api.storyline.Storyline`) is called before each step.
    """

    def __init__(
        self,
        orch: Orchestrator,
        speed: float = 60.0,
        events: dict[int, list[dict[str, Any]]] | None = None,
        hook: StepHook | None = None,
    ) -> None:
        self.orch, self.speed, self.events, self.hook = orch, speed, events, hook
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.steps = 0

    def start(self) -> None:
        """Start the loop thread (idempotent)."""
        if self.thread is None or not self.thread.is_alive():
            self.stop_event.clear()
            self.thread = threading.Thread(target=self._run, daemon=True, name="gridpilot-loop")
            self.thread.start()

    def _run(self) -> None:
        orch = self.orch
        period = orch.world.step_s / max(self.speed, 1e-9)
        while not self.stop_event.is_set():
            t0 = time.monotonic()
            try:
                for ev in (self.events or {}).get(orch.world.t, []):
                    orch.inject(actor="demo", **ev)
                if self.hook is not None:
                    self.hook.before_step(orch)
                orch.step()
                self.steps += 1
            except Exception:  # the served loop must not die silently: logged, then it stops
                log.exception("the orchestrator loop failed at step %s", orch.world.t)
                return
            self.stop_event.wait(max(period - (time.monotonic() - t0), 0.0))

    def stop(self) -> None:
        """Stop the loop thread and wait for it."""
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=10)
