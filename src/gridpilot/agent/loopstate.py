"""The orchestrator's state, declared once for the parts it is built of.

:class:`~gridpilot.agent.orchestrator.Orchestrator` is composed of mixins, each a small module
with one concern: :class:`~gridpilot.agent.sensing.Sensing` (telemetry, meters, estimates),
:class:`~gridpilot.agent.planexec.PlanExecution` (guard, act or propose),
:class:`~gridpilot.agent.operators.OperatorDesk` (operators' commands and approvals),
:class:`~gridpilot.agent.reporting.LoopReporting` (headline, history, market, live state) and
:class:`~gridpilot.agent.flexloop.FlexLoop` (demand response and the look-ahead's forecasts).
:class:`LoopState` types the attributes they share (set by the orchestrator's ``__init__``)
and the few methods one part calls on another.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from gridpilot.agent.world import Observation
from gridpilot.agent.worldtypes import DeviceWorld, World
from gridpilot.errors import ValidationError
from gridpilot.telemetry import wire_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from gridpilot.agent.actions import Plan
    from gridpilot.agent.audit import AuditLog
    from gridpilot.agent.estimating import LoopEstimate, LoopEstimator, SensorSet
    from gridpilot.agent.flexlink import FlexDR
    from gridpilot.agent.forecasting import LoadForecast, RenewableForecast
    from gridpilot.agent.guard import GuardLimits, SafetyGuard, Verdict
    from gridpilot.agent.marketlink import MarketLink
    from gridpilot.agent.meters import MeterPath
    from gridpilot.agent.policies import Context, Policy
    from gridpilot.agent.telemetry_link import TelemetryLink
    from gridpilot.model import Grid, Profiles
    from gridpilot.twin import Twin

log = logging.getLogger(__name__)

MODES = ("autonomous", "propose")


@dataclass(frozen=True)
class LoopOptions:
    """How an :class:`~gridpilot.agent.orchestrator.Orchestrator` runs (one parameter object).

    ``mode`` (:data:`MODES`); ``policies`` (default
    :func:`~gridpilot.agent.policies.default_policies`); the guard's ``limits``; the ``audit``
    log (default in memory); ``history`` rows kept; ``telemetry``: grid sensors through signed
    telemetry; state estimation every ``se_every_steps`` steps (0: never) on ``sensors``,
    noisy at their sigmas with ``sensor_noise``; ``flex_plan``: the flexibility schedule on a
    device world; ``meters``: the households' meter path on a metered world.
    """

    mode: str = "autonomous"
    policies: list[Policy] | None = None
    limits: GuardLimits | None = None
    audit: AuditLog | None = None
    history: int = 720
    telemetry: bool = True
    se_every_steps: int = 5
    sensors: SensorSet | None = None
    sensor_noise: bool = False
    flex_plan: bool = False
    meters: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValidationError(f"mode: unknown {self.mode!r}; known: {', '.join(MODES)}")
        se = self.se_every_steps
        if int(se) != se or se < 0:
            raise ValidationError(
                f"se_every_steps: must be a whole number >= 0 (0 = no state estimation), got {se}"
            )


class LoopOptionsArgs(TypedDict, total=False):
    """:class:`LoopOptions`' fields as keyword arguments of the orchestrator (all optional)."""

    mode: str
    policies: list[Policy] | None
    limits: GuardLimits | None
    audit: AuditLog | None
    history: int
    telemetry: bool
    se_every_steps: int
    sensors: SensorSet | None
    sensor_noise: bool
    flex_plan: bool
    meters: bool


@dataclass
class Proposal:
    """A plan waiting for an operator: its guard verdict and status."""

    plan: Plan
    verdict: Verdict
    t: int
    status: str = "pending"  # pending, approved, rejected, expired, refused
    decided_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        return {
            **self.plan.to_dict(),
            "t": self.t,
            "status": self.status,
            "decided_by": self.decided_by,
            "verdict": self.verdict.to_dict(),
        }


@dataclass
class StepReport:
    """What one step did: executed, proposed and refused plan ids, and the headline state."""

    t: int
    time: str
    executed: list[int] = field(default_factory=list)
    proposed: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)


class LoopState:
    """The attributes the orchestrator's parts share (see the module docstring)."""

    # the world and the controller's own model of it
    world: World
    mode: str
    grid: Grid
    twin: Twin
    limits: GuardLimits
    guard: SafetyGuard
    audit: AuditLog
    policies: list[Policy]
    lock: threading.RLock
    # switching state and protection
    normal_closed: np.ndarray
    pre_fault_closed: np.ndarray
    known_faults: set[int]
    section_buses: set[int]
    tripped: set[int]
    locked_open: list[int]
    shared: dict[str, Any]
    # demand response, batteries, EVs
    dr_requests: dict[str, float]
    ev_factor: float
    storage_cmd_mw: np.ndarray
    # estimates (MW per element, table order)
    load_est_mw: np.ndarray
    gen_est_mw: np.ndarray
    ev_est_mw: np.ndarray
    flex_est_mw: np.ndarray
    # what the loop has seen and done
    obs_history: deque[Observation]
    history: deque[dict[str, Any]]
    events: deque[dict[str, Any]]
    alarms: dict[str, dict[str, Any]]
    proposals: dict[int, Proposal]
    plans_done: deque[dict[str, Any]]
    _forecast_at: dict[int, float]
    last: Observation | None
    counters: dict[str, int]
    # forecasts and signals
    _prof: Profiles
    _cols: dict[str, Any]
    load_forecast: LoadForecast
    renewable_forecast: RenewableForecast | None
    _signal_grid: Grid
    _signals: Any
    market: MarketLink | None
    # state estimation and telemetry
    se_every_steps: int
    estimator: LoopEstimator | None
    estimate: LoopEstimate | None
    se_ms: list[float]
    link: TelemetryLink | None
    _foreign: list[bytes]
    _se_closed: np.ndarray
    # the field world's parts
    meters: MeterPath | None
    device_world: DeviceWorld | None  # the world again, where it has devices under command
    flexdr: FlexDR | None

    @property
    def dr_level(self) -> float:
        """Effective demand-response level: the highest request of any policy or operator."""
        return max(self.dr_requests.values(), default=0.0)

    def _event(self, kind: str, text: str, severity: str = "info", **data: Any) -> None:
        """Append an event (shown on the dashboard) at the latest observation's step."""
        t = self.last.t if self.last is not None else 0
        tm = str(self.last.time) if self.last is not None else ""
        extra = {
            k: v for k, v in data.items() if k not in ("t", "time", "kind", "text", "severity")
        }
        self.events.append(
            {"t": t, "time": tm, "kind": kind, "text": text, "severity": severity, **extra}
        )

    def _warn_failed(self, what: str, obs: Observation, exc: BaseException) -> None:
        """Log that ``what`` failed at ``obs``'s step (the loop goes on): the escaped error,
        its traceback and the step as structured fields."""
        log.warning(
            "%s failed at step %d: %s",
            what,
            obs.t,
            wire_text(exc, 300),
            exc_info=exc,
            extra={"step": obs.t, "sim_time": str(obs.time), "failed": what},
        )

    # --- provided by the other parts --------------------------------------------------------
    def context(self) -> Context:
        """The policies' view of the present state (the orchestrator)."""
        raise NotImplementedError

    def forecast_ratio(self, steps_ahead: np.ndarray) -> np.ndarray:
        """Load forecast as multipliers of the present estimate (the orchestrator)."""
        raise NotImplementedError

    @property
    def dr_share(self) -> float:
        """Share of the estimated demand that DR level 1 sheds (FlexLoop)."""
        raise NotImplementedError

    def _flex_demand(self, obs: Observation) -> np.ndarray:
        """Demand per load with FlexDR, MW (FlexLoop)."""
        raise NotImplementedError

    def _flex_run(self, fn: Callable[[], list[Any] | None], why: str = "") -> None:
        """Run a FlexDR call and dispatch its commands (FlexLoop)."""
        raise NotImplementedError

    def _metered_forecast_mw(self, obs: Observation, minutes_ahead: float) -> float:
        """Forecast of the feeder's metered load, MW (FlexLoop)."""
        raise NotImplementedError


__all__ = ["MODES", "LoopOptions", "LoopOptionsArgs", "LoopState", "Proposal", "StepReport"]
