"""The orchestrator: observe -> estimate -> forecast -> decide -> guard (simulate) -> act or propose -> audit.

One :meth:`Orchestrator.step` is one turn of the loop in simulated time; :meth:`run` runs many,
and :func:`run_realtime` paces them against the wall clock (accelerated by ``speed``). Modes:
``autonomous`` executes every plan the guard accepts; ``propose`` queues it for an operator,
who approves or rejects through :meth:`approve` / :meth:`reject` (the API's endpoints).
Operators' own commands go through :meth:`submit`: the same guard, the same audit log.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from typing import Any, Unpack

import numpy as np

from gridpilot.agent.actions import Action
from gridpilot.agent.audit import AuditLog
from gridpilot.agent.estimating import LoopEstimator, SensorSet, view_sensors
from gridpilot.agent.flexloop import FlexLoop
from gridpilot.agent.forecasting import LoadForecast, RenewableForecast
from gridpilot.agent.guard import GuardLimits, SafetyGuard
from gridpilot.agent.loopstate import (
    MODES,
    LoopOptions,
    LoopOptionsArgs,
    LoopState,
    Proposal,
    StepReport,
)
from gridpilot.agent.marketlink import MarketLink
from gridpilot.agent.operators import OperatorDesk
from gridpilot.agent.policies import Context, Policy, default_policies
from gridpilot.agent.reporting import LoopReporting
from gridpilot.agent.sensing import Sensing
from gridpilot.agent.telemetry_link import TelemetryLink
from gridpilot.agent.wording import injected_text
from gridpilot.agent.world import Observation
from gridpilot.agent.worldtypes import (
    AlarmingWorld,
    DeviceWorld,
    MeteredWorld,
    PhaseAwareWorld,
    WeatherWorld,
    World,
)
from gridpilot.errors import ValidationError
from gridpilot.telemetry import wire_text
from gridpilot.twin import Twin, profiles_for

log = logging.getLogger(__name__)


class Orchestrator(Sensing, OperatorDesk, LoopReporting, FlexLoop, LoopState):
    """The agent loop over a :class:`~gridpilot.agent.worldtypes.World` (SimWorld, FieldWorld).

    ``Orchestrator(world, options=None, **kw)``: ``options`` a
    :class:`~gridpilot.agent.loopstate.LoopOptions`, ``kw`` any of its fields (e.g.
    ``Orchestrator(world, mode="propose", telemetry=False)``), which override it. The
    policies default to :func:`default_policies`. State estimation
    (:class:`~gridpilot.agent.estimating.LoopEstimator`) runs every ``se_every_steps`` steps (0:
    never) and after each switching change on the ``sensors`` subset (default
    :func:`~gridpilot.agent.estimating.default_sensors`); ``sensor_noise`` makes the telemetry
    link's voltage and flow sensors noisy at the sensor set's sigmas. ``flex_plan`` adds the
    flexibility schedule (:class:`~gridpilot.agent.flexplan.FlexPlanPolicy`) on a world with a
    device registry (:class:`~gridpilot.agent.worldtypes.DeviceWorld`); ``meters`` the
    households' meter path on a :class:`~gridpilot.agent.worldtypes.MeteredWorld`. The parts
    of the loop are mixins typed by :class:`~gridpilot.agent.loopstate.LoopState`.
    Thread-safe: the API calls it while a background thread steps it.
    """

    def __init__(
        self, world: World, options: LoopOptions | None = None, **kw: Unpack[LoopOptionsArgs]
    ) -> None:
        opts = dataclasses.replace(options or LoopOptions(), **kw)  # checked by LoopOptions
        self.world = world
        self.mode = opts.mode
        self.grid = (
            world.grid.copy()
        )  # the controller's model of the grid (never the world's object)
        self.twin = Twin(self.grid, validate=False, engine=world.engine)
        self.limits = opts.limits or GuardLimits()
        self.guard = SafetyGuard(self.grid, self.twin, self.limits)
        if isinstance(world, PhaseAwareWorld):  # switching plans also checked per node-phase
            from gridpilot.agent.phaseguard import PhaseCheck

            self.guard.phase = PhaseCheck.build(world.grid3p, self.grid)
        self.audit = opts.audit or AuditLog()
        self.policies = list(default_policies() if opts.policies is None else opts.policies)
        if isinstance(world, PhaseAwareWorld) and opts.policies is None:
            from gridpilot.agent.flisr3p_policy import three_phase_policies

            view = getattr(world, "view", None)  # the world's view: no second build
            self.policies = three_phase_policies(world.grid3p, self.policies, view)
        self.lock = threading.RLock()
        self._init_state(opts.history)
        sensors = opts.sensors
        view = getattr(world, "view", None)
        if sensors is None and isinstance(world, PhaseAwareWorld) and view is not None:
            # the balanced view's measurement model (sensors' sigmas, see view_sensors)
            sensors = view_sensors(self.grid, view, world.grid3p)
        self._init_sensing(
            opts.se_every_steps,
            sensors,
            sensor_noise=opts.sensor_noise,
            telemetry=opts.telemetry,
        )
        self._init_field(meters=opts.meters, flex_plan=opts.flex_plan)
        self._signal_grid = self.grid.copy()  # its own profiles: price/CO2 signals' time of day
        self._signals = None
        flat_profiles(self.grid)

    def _init_state(self, history: int) -> None:
        """The controller's own state: switching, estimates, records, forecasts, market."""
        g = self.grid
        self.normal_closed = g.switch["closed"].copy()
        self.pre_fault_closed = self.normal_closed.copy()
        self.known_faults = set()
        self.section_buses = set()
        self.tripped = set()  # switch ids protection reported open, not yet handled
        self.locked_open = []  # bounds of isolated sections, kept open until repair
        self.shared = {}
        self.dr_requests = {}
        self.ev_factor = 1.0
        self.storage_cmd_mw = g.storage["p_mw"].copy()
        self.load_est_mw = g.load["p_mw"].copy()
        self.gen_est_mw = g.generator["p_mw"].copy()
        self.ev_est_mw = np.zeros(len(g.ev_charger))
        self.flex_est_mw = np.zeros(len(g.flex_load))
        self.obs_history = deque(maxlen=64)
        self.history = deque(maxlen=history)
        self.events = deque(maxlen=500)
        self.alarms = {}
        self.proposals = {}
        self.plans_done = deque(maxlen=200)
        self._forecast_at = {}
        self.last = None
        self.counters = {"steps": 0, "executed": 0, "proposed": 0, "refused": 0, "switch_ops": 0}
        prof, cols = profiles_for(self.grid, self.world.start_step + 96 * 8)
        self._prof, self._cols = prof, cols
        self.load_forecast = LoadForecast(prof.index, prof.values, cols["load_p"])
        # PV and wind from the world's weather forecast, where it issues one (else profiles)
        w = self.world
        self.renewable_forecast = RenewableForecast(w) if isinstance(w, WeatherWorld) else None
        self.market = MarketLink.create(self.grid)

    def _init_sensing(
        self, se_every_steps: int, sensors: SensorSet | None, *, sensor_noise: bool, telemetry: bool
    ) -> None:
        """State estimation every ``se_every_steps`` steps on ``sensors``; the signed telemetry
        link (noisy at the sensor set's sigmas with ``sensor_noise``)."""
        self.se_every_steps = int(se_every_steps)
        self.estimator = LoopEstimator(self.grid, sensors) if self.se_every_steps else None
        self.estimate = None
        self.se_ms = []  # wall time of each state-estimation call (bench, state)
        self.counters["se_runs"] = 0
        self.counters["bad_data_removed"] = 0
        flows = self.estimator.sensors.flow_line_ids if self.estimator is not None else ()
        ss = self.estimator.sensors if self.estimator is not None else None
        self.link = (
            TelemetryLink(
                self.grid,
                flows,
                v_noise_pu=ss.v_sigma_pu if (sensor_noise and ss) else 0.0,
                flow_noise_rel=ss.flow_rel_sigma if (sensor_noise and ss) else 0.0,
            )
            if telemetry
            else None
        )
        self._foreign = []
        self.counters["telemetry_rejected"] = 0
        self._se_closed = self.normal_closed.copy()

    def _init_field(self, *, meters: bool, flex_plan: bool) -> None:
        """The field world's parts: the households' meter path (opt-in, a
        :class:`~gridpilot.agent.worldtypes.MeteredWorld`), demand response as device events
        on a :class:`~gridpilot.agent.worldtypes.DeviceWorld` and, asked for, its flexibility
        schedule."""
        world = self.world
        # the households' 15-minute meter rows (field world; opt-in): signed, verified, stored,
        # balanced against the feeder and checked at the edge (gridpilot.agent.meters)
        self.meters = None
        if meters:
            if not isinstance(world, MeteredWorld):
                raise ValidationError(
                    f"meters: the world {type(world).__name__} has no household meters (field world only)"
                )
            from gridpilot.agent.meters import MeterPath

            self.meters = MeterPath(world, self.grid)
            self.counters["meter_rows"] = 0
            self.counters["meter_frames_rejected"] = 0
        # a world with household devices under command (the field world): DR is planned and
        # dispatched as gridpilot.flex events on them; otherwise the world's own DR model
        self.flexdr = None
        self.device_world = world if isinstance(world, DeviceWorld) else None
        if isinstance(world, DeviceWorld):
            from gridpilot.agent.flexlink import FlexDR  # gridpilot.flex only where it is used

            self.flexdr = FlexDR(self.grid, world.devices)
        # the flexibility schedule (receding horizon) on such a world, when asked for
        # (flex_plan=True; opt-in: see docs/agent.md for its measured effect)
        if self.flexdr is not None and flex_plan:
            from gridpilot.agent.flexplan import FlexPlanPolicy

            if not any(getattr(p, "name", "") == FlexPlanPolicy.name for p in self.policies):
                self.policies.append(FlexPlanPolicy())

    # --- helpers ---------------------------------------------------------------------------------
    def _shape_at(self, steps_ahead: np.ndarray) -> np.ndarray:
        """Per-load forecast shape multipliers at ``steps_ahead`` steps from now, (k, n_load)."""
        assert self.last is not None
        dt = np.rint(np.asarray(steps_ahead, np.float64) * self.world.step_s).astype(np.int64)
        times = self.last.time.astype("datetime64[s]") + dt.astype("timedelta64[s]")
        return self.load_forecast.shape(times)

    def forecast_ratio(self, steps_ahead: np.ndarray) -> np.ndarray:
        """Load forecast as multipliers of the present estimate, (k, n_load).

        Method: the day-ahead shape forecast of :class:`~gridpilot.agent.forecasting.LoadForecast`
        (``gridpilot.forecast.day_ahead`` on the past load shapes, refitted daily), as the ratio
        of the shape ahead to the shape now, applied to the present estimated demand —
        persistence of the level, forecast for the shape.
        """
        s = self._shape_at(np.asarray(steps_ahead))
        now = self._shape_at(np.zeros(1))[0]
        return s / np.where(now > 1e-9, now, 1.0)

    def context(self) -> Context:
        """The policies' view of the present state."""
        assert self.last is not None
        return Context(
            grid=self.grid,
            twin=self.twin,
            limits=self.limits,
            obs=self.last,
            history=self.obs_history,
            load_est_mw=self.load_est_mw.copy(),
            gen_est_mw=self.gen_est_mw.copy(),
            dr_share=self._dr_share_ctx(),
            dr_level=self.dr_level,
            dr_requests=dict(self.dr_requests),
            ev_factor=self.ev_factor,
            storage_cmd_mw=self.storage_cmd_mw.copy(),
            known_faults=set(self.known_faults),
            section_buses=set(self.section_buses),
            pre_fault_closed=self.pre_fault_closed.copy(),
            normal_closed=self.normal_closed.copy(),
            forecast_ratio=self.forecast_ratio,
            shared=self.shared,
            tripped=set(self.tripped),
            locked_open=list(self.locked_open),
            ev_est_mw=self.ev_est_mw.copy(),
            flex_est_mw=self.flex_est_mw.copy(),
            v_est_pu=None if self.estimate is None else self.estimate.v_pu.copy(),
            ev_dr_share=self.ev_dr_share,
            flexdr=self.flexdr,
            forecast_injections=self.forecast_injections,
            flex_signals=self.flex_signals,
        )

    # --- the loop --------------------------------------------------------------------------------
    def _alarms(self, obs: Observation) -> None:  # noqa: C901
        lim = self.limits
        active: dict[str, dict[str, Any]] = {}
        dead = int((~obs.energised).sum())
        if dead:
            active["outage"] = {"severity": "critical", "text": f"{dead} bus(es) without supply"}
        # voltage violations from the state estimate (the sensors are a subset of the buses);
        # from the received voltages only while no estimate is available
        est = self.estimate
        vmin, vmax, src = (
            (est.vmin_pu, est.vmax_pu, "estimated")
            if est is not None
            else (obs.vmin_pu, obs.vmax_pu, "measured")
        )
        if np.isfinite(vmin) and vmin < lim.v_min_pu:
            active["undervoltage"] = {
                "severity": "major",
                "text": f"{src} voltage {vmin:.3f} pu below {lim.v_min_pu}",
            }
        if np.isfinite(vmax) and vmax > lim.v_max_pu:
            active["overvoltage"] = {
                "severity": "major",
                "text": f"{src} voltage {vmax:.3f} pu above {lim.v_max_pu}",
            }
        if est is not None and est.removed:
            active["bad_data"] = {
                "severity": "major",
                "text": "bad data removed by the state estimator: " + ", ".join(est.removed),
            }
        if obs.max_loading_pct > lim.loading_max_pct:
            active["overload"] = {
                "severity": "major",
                "text": f"loading {obs.max_loading_pct:.0f} % above {lim.loading_max_pct:.0f} %",
            }
        if obs.fpi.any():
            active["fault"] = {
                "severity": "critical",
                "text": f"fault indicated by {int(obs.fpi.sum())} FPI(s)",
            }
        if self.meters is not None:
            active.update({k: dict(v) for k, v in self.meters.alarms.items()})
        if self.flexdr is not None and self.flexdr.alarm:
            active["dr_under_delivery"] = {"severity": "major", "text": self.flexdr.alarm}
        if isinstance(self.world, AlarmingWorld):  # e.g. a device that refused a command
            active.update({k: dict(v) for k, v in self.world.alarms.items()})
        for k, a in active.items():
            if k not in self.alarms:
                self._event("alarm", a["text"], a["severity"], alarm=k)
                a["since"] = str(obs.time)
            else:
                a["since"] = self.alarms[k]["since"]
        for k in set(self.alarms) - set(active):
            self._event("alarm_cleared", f"{k} cleared", "info", alarm=k)
        self.alarms = active

    def step(self) -> StepReport:
        """One turn of the loop: observe, estimate, forecast, decide, guard, act/propose, audit; advance time."""
        with self.lock:
            obs = self.world.observe()
            if self.link is not None:
                obs = self._via_telemetry(obs)
            self.last = obs
            self.obs_history.append(obs)
            if self.meters is not None:
                self._meter_step(obs)
            if self.flexdr is not None:
                # dark loads draw nothing now: their share is judged on the demand they will have
                # when restored (the previous estimate), else a dark feeder would show no room
                on = obs.energised[self.grid.bus.position_map(self.grid.load["bus"])]
                load_now = np.where(on, obs.load_p_mw, self.load_est_mw)
                self.flexdr.update_share(obs.time, load_now, self.grid.load["bus"])
                self._flex_run(lambda: self._flex_tick(obs))
            self._estimate(obs)
            self._state_estimate(obs)
            for ev in obs.events:
                self._field_event(ev)
            if not obs.fpi.any() and not self.tripped:
                # settled (no protection operation pending): the state a next trip starts from
                self.pre_fault_closed = obs.switch_closed.copy()
            self._alarms(obs)
            rep = StepReport(obs.t, str(obs.time))
            ctx = self.context()
            for pol in self.policies:
                try:
                    plans = pol.decide(ctx)
                except Exception as exc:  # a broken policy must not stop the loop; it is audited
                    self._policy_failed(pol, exc, obs)
                    continue
                for plan in plans:
                    status = self._handle(plan, actor=f"policy:{plan.source}")
                    {"done": rep.executed, "pending": rep.proposed}.get(status, rep.refused).append(
                        plan.id
                    )
                    if status == "done":
                        ctx = self.context()
            self._market_step(obs)
            self._record_history(obs)
            self.counters["steps"] += 1
            rep.state = self.headline()
            self.world.advance()
            return rep

    def _policy_failed(self, pol: Policy, exc: Exception, obs: Observation) -> None:
        """A policy raised: logged with its traceback, audited, shown; the loop goes on."""
        name = str(getattr(pol, "name", "?"))
        safe = wire_text(name, 80)
        log.exception(
            "policy %s raised at step %d",
            safe,
            obs.t,
            extra={"policy": safe, "step": obs.t, "sim_time": str(obs.time)},
        )
        self.audit.record(
            actor=f"policy:{name}",
            kind="error",
            what=repr(exc),
            why="policy raised",
            status="failed",
            sim_time=str(obs.time),
        )
        self._event("policy_error", f"{name}: {exc}", "major")

    def run(
        self, steps: int, events: dict[int, list[dict[str, Any]]] | None = None
    ) -> list[StepReport]:
        """Run ``steps`` steps; ``events`` maps a step to events to inject first."""
        out = []
        for _ in range(steps):
            for ev in (events or {}).get(self.world.t, []):
                self.inject(actor="scenario", **ev)
            out.append(self.step())
        return out

    def _field_event(self, ev: dict[str, Any]) -> None:
        kind = ev.get("kind")
        if kind == "breaker_trip":
            self.tripped.add(int(ev["switch"]))
            self._event(
                "protection",
                f"breaker {ev['switch']} tripped; FPIs {ev.get('fpi')}",
                "critical",
                switch=ev.get("switch"),
            )
        elif kind == "crew_report":
            self.known_faults.clear()
            self.section_buses.clear()
            self.tripped.clear()
            self.locked_open = []
            self.shared.pop("boundary_switches", None)
            self.guard.release_taps()  # the world releases its held taps at the repair
            self._event(
                "crew",
                f"crew report: line(s) {ev.get('lines')} repaired, normal configuration restored",
                "info",
            )
        elif kind == "recloser_operation":  # the recloser's SCADA: its shots, lockout or not
            self._event(
                "protection",
                f"recloser {ev.get('device')}: {ev.get('trips')} trip(s), "
                + ("locked out" if ev.get("lockout") else "reclosed")
                + f"; FPIs {ev.get('fpi')}",
                "critical" if ev.get("lockout") else "major",
                switch=ev.get("switch"),
            )
        elif kind == "fault_uncleared":
            self._event("protection", f"a fault was not cleared: {ev.get('reason')}", "critical")
        elif kind == "device_trip":
            self._event(
                "protection",
                f"generator {ev.get('generator')} tripped",
                "major",
                generator=ev.get("generator"),
            )
        elif kind == "command_rejected":
            # a device refused a command (any protocol): plan on what is in effect, not on the ask
            if ev.get("command") == "ev":
                self.ev_factor = float(ev.get("in_effect", self.ev_factor))
            elif ev.get("command") == "storage" and ev.get("target") is not None:
                k = int(self.grid.storage.index_of(int(ev["target"]))[0])
                self.storage_cmd_mw[k] = float(ev.get("in_effect") or 0.0)
            self._event(
                "command_rejected",
                f"{ev.get('protocol')} device {ev.get('device')} refused {ev.get('command')}: "
                f"{ev.get('status')} (message {ev.get('message_id')})"[:200],
                "major",
                device=ev.get("device"),
            )

    def inject(self, kind: str, actor: str = "simulation", **params: Any) -> dict[str, Any]:
        """Inject an event into the simulated world (fault, wind_drop, ...); audited."""
        with self.lock:
            ev = self.world.inject(kind, **params)
            self.audit.record(
                actor=actor,
                kind="event",
                what=ev,
                why="injected into the simulation",
                sim_time=str(self.world.time),
            )
            self._event("injected", injected_text(actor, kind, params), "warning", **{"event": ev})
            return ev


def run_realtime(
    orch: Orchestrator,
    *,
    speed: float = 60.0,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    events: dict[int, list[dict[str, Any]]] | None = None,
) -> int:
    """Step ``orch`` paced at ``speed`` simulated seconds per wall second until ``stop`` or ``duration_s``.

    Returns the number of steps run.
    """
    stop = stop or threading.Event()
    t_end = time.monotonic() + duration_s if duration_s is not None else float("inf")
    period = orch.world.step_s / max(speed, 1e-9)
    n = 0
    while not stop.is_set() and time.monotonic() < t_end:
        t0 = time.monotonic()
        for ev in (events or {}).get(orch.world.t, []):
            orch.inject(actor="demo", **ev)
        orch.step()
        n += 1
        stop.wait(max(period - (time.monotonic() - t0), 0.0))
    return n


def flat_profiles(grid: Any, steps: int = 4096) -> None:
    """Give a controller-side grid copy flat one-shape profiles so that twin batches with every
    injection given explicitly do not rebuild gridpilot's default year of shapes on each call."""
    from gridpilot.model import Profiles

    if grid.profiles is None:
        idx = np.datetime64("2025-01-01T00:00:00") + np.arange(steps) * np.timedelta64(900, "s")
        grid.profiles = Profiles(idx, ["flat"], np.ones((steps, 1)))


__all__ = [
    "MODES",
    "Action",
    "LoopOptions",
    "Orchestrator",
    "Proposal",
    "StepReport",
    "run_realtime",
]
