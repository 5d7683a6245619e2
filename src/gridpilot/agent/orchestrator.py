"""The orchestrator: observe -> estimate -> forecast -> decide -> guard (simulate) -> act or propose -> audit.

One :meth:`Orchestrator.step` is one turn of the loop in simulated time; :meth:`run` runs many,
and :func:`run_realtime` paces them against the wall clock (accelerated by ``speed``). Modes:
``autonomous`` executes every plan the guard accepts; ``propose`` queues it for an operator,
who approves or rejects through :meth:`approve` / :meth:`reject` (the API's endpoints).
Operators' own commands go through :meth:`submit`: the same guard, the same audit log.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from gridpilot.agent.actions import Action, Plan
from gridpilot.agent.audit import AuditLog
from gridpilot.agent.estimating import LoopEstimate, LoopEstimator, SensorSet
from gridpilot.agent.flexloop import FlexLoop
from gridpilot.agent.forecasting import LoadForecast
from gridpilot.agent.guard import GuardLimits, SafetyGuard, Verdict
from gridpilot.agent.marketlink import MarketLink
from gridpilot.agent.policies import Context, Policy, default_policies
from gridpilot.agent.telemetry_link import TelemetryLink
from gridpilot.agent.world import Observation, SimWorld
from gridpilot.errors import UnknownComponentError, ValidationError
from gridpilot.model import GenKind
from gridpilot.twin import Twin, profiles_for

if TYPE_CHECKING:
    from gridpilot.agent.flexlink import FlexDR

MODES = ("autonomous", "propose")


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


class Orchestrator(FlexLoop):
    """The agent loop over a :class:`SimWorld` (or anything with the same methods).

    ``Orchestrator(world, mode="autonomous", policies=None, limits=None, audit=None)``; the
    policies default to :func:`default_policies`. State estimation
    (:class:`~gridpilot.agent.estimating.LoopEstimator`) runs every ``se_every_steps`` steps (0:
    never) and after each switching change on the ``sensors`` subset (default
    :func:`~gridpilot.agent.estimating.default_sensors`); ``sensor_noise`` makes the telemetry
    link's voltage and flow sensors noisy at the sensor set's sigmas. ``flex_plan`` adds the
    flexibility schedule (:class:`~gridpilot.agent.flexplan.FlexPlanPolicy`) on a world with a
    device registry. Thread-safe: the API calls it while a background thread steps it.
    """

    def __init__(
        self,
        world: SimWorld,
        *,
        mode: str = "autonomous",
        policies: list[Policy] | None = None,
        limits: GuardLimits | None = None,
        audit: AuditLog | None = None,
        history: int = 720,
        telemetry: bool = True,
        se_every_steps: int = 5,
        sensors: SensorSet | None = None,
        sensor_noise: bool = False,
        flex_plan: bool = False,
        meters: bool = False,
    ) -> None:
        if mode not in MODES:
            raise ValidationError(f"mode: unknown {mode!r}; known: {', '.join(MODES)}")
        if int(se_every_steps) != se_every_steps or se_every_steps < 0:
            raise ValidationError(
                f"se_every_steps: must be a whole number >= 0 (0 = no state estimation), got {se_every_steps}"
            )
        self.world = world
        self.mode = mode
        self.grid = (
            world.grid.copy()
        )  # the controller's model of the grid (never the world's object)
        self.twin = Twin(self.grid, validate=False, engine=getattr(world, "engine", "pgm"))
        self.limits = limits or GuardLimits()
        self.guard = SafetyGuard(self.grid, self.twin, self.limits)
        self.audit = audit or AuditLog()
        self.policies: list[Policy] = list(default_policies() if policies is None else policies)
        self.lock = threading.RLock()
        g = self.grid
        self.normal_closed = g.switch["closed"].copy()
        self.pre_fault_closed = self.normal_closed.copy()
        self.known_faults: set[int] = set()
        self.section_buses: set[int] = set()
        self.tripped: set[int] = set()  # switch ids protection reported open, not yet handled
        self.locked_open: list[int] = []  # bounds of isolated sections, kept open until repair
        self.shared: dict[str, Any] = {}
        self.dr_requests: dict[str, float] = {}
        self.ev_factor = 1.0
        self.storage_cmd_mw = g.storage["p_mw"].copy()
        self.load_est_mw = g.load["p_mw"].copy()
        self.gen_est_mw = g.generator["p_mw"].copy()
        self.ev_est_mw = np.zeros(len(g.ev_charger))
        self.flex_est_mw = np.zeros(len(g.flex_load))
        self.obs_history: deque[Observation] = deque(maxlen=64)
        self.history: deque[dict[str, Any]] = deque(maxlen=history)
        self.events: deque[dict[str, Any]] = deque(maxlen=500)
        self.alarms: dict[str, dict[str, Any]] = {}
        self.proposals: dict[int, Proposal] = {}
        self.plans_done: deque[dict[str, Any]] = deque(maxlen=200)
        self._forecast_at: dict[int, float] = {}
        self.last: Observation | None = None
        self.counters = {"steps": 0, "executed": 0, "proposed": 0, "refused": 0, "switch_ops": 0}
        prof, cols = profiles_for(self.grid, world.start_step + 96 * 8)
        self._prof, self._cols = prof, cols
        self.load_forecast = LoadForecast(prof.index, prof.values, cols["load_p"])
        self.market = MarketLink.create(self.grid)
        self.se_every_steps = int(se_every_steps)
        self.estimator: LoopEstimator | None = (
            LoopEstimator(self.grid, sensors) if self.se_every_steps else None
        )
        self.estimate: LoopEstimate | None = None
        self.se_ms: list[float] = []  # wall time of each state-estimation call (bench, state)
        self.counters["se_runs"] = 0
        self.counters["bad_data_removed"] = 0
        flows = self.estimator.sensors.flow_line_ids if self.estimator is not None else ()
        ss = self.estimator.sensors if self.estimator is not None else None
        self.link: TelemetryLink | None = (
            TelemetryLink(
                self.grid,
                flows,
                v_noise_pu=ss.v_sigma_pu if (sensor_noise and ss) else 0.0,
                flow_noise_rel=ss.flow_rel_sigma if (sensor_noise and ss) else 0.0,
            )
            if telemetry
            else None
        )
        self._foreign: list[bytes] = []
        self.counters["telemetry_rejected"] = 0
        # the households' 15-minute meter rows (field world; opt-in): signed, verified, stored,
        # balanced against the feeder and checked at the edge (gridpilot.agent.meters)
        self.meters: Any = None
        if meters:
            if not hasattr(world, "meter_frames"):
                raise ValidationError(
                    f"meters: the world {type(world).__name__} has no household meters (field world only)"
                )
            from gridpilot.agent.meters import MeterPath

            self.meters = MeterPath(world, self.grid)
            self.counters["meter_rows"] = 0
            self.counters["meter_frames_rejected"] = 0
        self._se_closed = self.normal_closed.copy()
        # a world with household devices under command (the field world): DR is planned and
        # dispatched as gridpilot.flex events on them; otherwise the world's own DR model
        self.flexdr: FlexDR | None = None
        if hasattr(world, "apply") and hasattr(world, "devices"):
            from gridpilot.agent.flexlink import FlexDR  # gridpilot.flex only where it is used

            self.flexdr = FlexDR(self.grid, world.devices)
        # the flexibility schedule (receding horizon) on such a world, when asked for
        # (flex_plan=True; opt-in: see docs/agent.md for its measured effect)
        if self.flexdr is not None and flex_plan:
            from gridpilot.agent.flexplan import FlexPlanPolicy

            if not any(getattr(p, "name", "") == FlexPlanPolicy.name for p in self.policies):
                self.policies.append(FlexPlanPolicy())
        self._signal_grid = self.grid.copy()  # its own profiles: price/CO2 signals' time of day
        self._signals: Any = None
        flat_profiles(self.grid)

    # --- helpers ---------------------------------------------------------------------------------
    @property
    def dr_level(self) -> float:
        """Effective demand-response level: the highest request of any policy or operator."""
        return max(self.dr_requests.values(), default=0.0)

    def _event(self, kind: str, text: str, severity: str = "info", **data: Any) -> None:
        t = self.last.t if self.last is not None else 0
        tm = str(self.last.time) if self.last is not None else ""
        extra = {
            k: v for k, v in data.items() if k not in ("t", "time", "kind", "text", "severity")
        }
        self.events.append(
            {"t": t, "time": tm, "kind": kind, "text": text, "severity": severity, **extra}
        )

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
    def _estimate(self, obs: Observation) -> None:
        g = self.grid
        lb = g.bus.position_map(g.load["bus"])
        on = obs.energised[lb]
        if self.last is not None:
            ratio = self.forecast_ratio(np.array([1.0]))[0]
            self.load_est_mw = self.load_est_mw * ratio
        if self.flexdr is not None:  # the metered load plus what its DR event's devices shed
            self.load_est_mw[on] = self._flex_demand(obs)[on]
        else:  # the world's own DR model: its enrolled share curtailed in proportion
            cut = 1.0 - self.dr_level * float(self.dr_share)
            self.load_est_mw[on] = obs.load_p_mw[on] / max(cut, 1e-6)
        if len(g.generator):
            gb = g.bus.position_map(g.generator["bus"])
            gon = obs.energised[gb]
            self.gen_est_mw[gon] = obs.gen_p_mw[gon]
        # EV chargers and flexible loads: last seen value where the bus is dead now
        for tb, est, seen in (
            (g.ev_charger, self.ev_est_mw, obs.ev_p_mw),
            (g.flex_load, self.flex_est_mw, obs.flex_p_mw),
        ):
            if len(tb):
                on_b = obs.energised[g.bus.position_map(tb["bus"])]
                est[on_b] = seen[on_b]

    def _state_estimate(self, obs: Observation) -> None:
        """Every ``se_every_steps`` steps (and after a switching change): the robust state
        estimate from the sensors received; bad data found is alarmed, shown and audited."""
        if self.estimator is None:
            return
        prev = self.estimate
        topo_changed = prev is not None and not np.array_equal(self._se_closed, obs.switch_closed)
        if prev is not None and not topo_changed and obs.t % self.se_every_steps:
            return
        self._se_closed = obs.switch_closed.copy()
        try:
            est = self.estimator.estimate(obs)
        except Exception as exc:  # the loop goes on without a fresh estimate; said, not hidden
            self._event("estimation", f"state estimation failed: {exc}", "warning")
            self.estimate = None
            return
        self.estimate = est if est.converged else None
        self.se_ms.append(est.se_ms)
        self.counters["se_runs"] += 1
        if not est.converged:
            self._event("estimation", "state estimation did not converge", "warning")
            return
        if est.removed:
            self.counters["bad_data_removed"] += len(est.removed)
            if prev is not None and prev.removed == est.removed:
                return  # the same sensors as last time: the alarm stands, nothing new to log
            names = ", ".join(est.removed)
            self._event(
                "bad_data",
                f"bad data identified and removed: {names}",
                "major",
                measurements=list(est.removed),
                normalised_residuals=list(est.removed_rn),
            )
            self.audit.record(
                actor="estimation",
                kind="bad_data",
                what={"removed": list(est.removed), "normalised_residuals": est.removed_rn},
                why=(
                    f"chi-square test failed; largest normalised residual > 3: "
                    f"{names} removed, state re-estimated (J {est.chi2:.1f} <= {est.chi2_limit:.1f})"
                ),
                status="removed",
                sim_time=str(obs.time),
            )

    def _alarms(self, obs: Observation) -> None:
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
        # devices behind a field protocol that refused a command (gridpilot.protocols' worlds)
        active.update({k: dict(v) for k, v in (getattr(self.world, "alarms", None) or {}).items()})
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
                    self.audit.record(
                        actor=f"policy:{getattr(pol, 'name', '?')}",
                        kind="error",
                        what=repr(exc),
                        why="policy raised",
                        status="failed",
                        sim_time=str(obs.time),
                    )
                    self._event("policy_error", f"{getattr(pol, 'name', '?')}: {exc}", "major")
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

    def _via_telemetry(self, obs: Observation) -> Observation:
        """Grid sensors through signed telemetry: keep only what verifies (see TelemetryLink)."""
        assert self.link is not None
        ts_ms = int(obs.time.astype("datetime64[ms]").astype(np.int64))
        rep = self.link.roundtrip(obs, ts_ms, extra=self._foreign)
        self._foreign = []
        if rep.rejected:
            self._refused(obs, rep.rejected, "telemetry_rejected", "frames_rejected", "telemetry")
        link = self.link
        return dataclasses.replace(
            obs,
            v_pu=link.v_pu.copy(),
            line_loading_pct=link.line_loading_pct.copy(),
            switch_closed=link.switch_closed.copy(),
            energised=link.v_pu > 0.05,
            line_p_mw=link.line_p_mw.copy(),
            line_q_mvar=link.line_q_mvar.copy(),
        )

    def _meter_step(self, obs: Observation) -> None:
        """The households' meter rows (see :class:`~gridpilot.agent.meters.MeterPath`): counted,
        refused frames audited like the grid sensors' ones; its alarms join :meth:`_alarms`."""
        rep = self.meters.step(obs)
        self.counters["meter_rows"] += rep.rows
        if rep.rejected:
            self._refused(
                obs, rep.rejected, "meter_frames_rejected", "meter_frames_rejected", "meter"
            )

    def _refused(
        self, obs: Observation, rejected: dict[str, int], counter: str, key: str, what: str
    ) -> None:
        """Frames that failed verification (by reason): counted, audited, shown as a security
        event at the observation's step."""
        n = sum(rejected.values())
        self.counters[counter] += n
        self.audit.record(
            actor="telemetry",
            kind="refused",
            what={key: rejected},
            why=f"{what} frames failed verification",
            status="refused",
            sim_time=str(obs.time),
        )
        self.events.append(
            {
                "t": obs.t,
                "time": str(obs.time),
                "kind": "security",
                "severity": "critical",
                "text": f"{n} {what} frame(s) refused: {rejected}",
            }
        )

    def receive_foreign(self, frames: list[bytes]) -> None:
        """Frames from elsewhere on the telemetry channel (e.g. an attacker's), read at the next step."""
        with self.lock:
            self._foreign.extend(frames)

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
            self._event(
                "crew",
                f"crew report: line(s) {ev.get('lines')} repaired, normal configuration restored",
                "info",
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

    # --- guard, act, propose -------------------------------------------------------------------
    def _injections_now(
        self, dr_level: float | None = None, ev_factor: float | None = None
    ) -> dict[str, np.ndarray]:
        return self.context().injections(dr_level=dr_level, ev_factor=ev_factor)

    def _verdict(self, plan: Plan) -> Verdict:
        assert self.last is not None
        lvl = self.dr_level
        evf = self.ev_factor
        for a in plan.actions:
            if a.kind == "dr":
                req = dict(self.dr_requests)
                req[plan.source] = float(a.value)
                lvl = max(req.values())
            elif a.kind == "ev":
                evf = float(a.value)
        now = self._injections_now()
        after = self._injections_now(dr_level=lvl, ev_factor=evf)
        buses = plan.data.get("dr_buses")
        if buses and any(a.kind == "dr" for a in plan.actions):
            ctx = self.context()  # DR at given buses sheds only there (FlexDR, per-load share)
            sh = np.asarray(ctx.dr_share, np.float64)
            if sh.ndim:
                at = np.isin(self.grid.load["bus"], np.asarray(buses, np.int64))
                after = ctx.injections(dr_level=lvl, ev_factor=evf, load_cut=lvl * sh * at)
        delta = plan.data.get("_load_delta_mw")  # a schedule's household set points (flexplan)
        if delta is not None:
            after["load_p_mw"] = np.maximum(after["load_p_mw"] + np.asarray(delta), 0.0)
        return self.guard.check(
            plan,
            switch_closed=self.last.switch_closed.copy(),
            injections=now,
            faulted_lines=self.known_faults,
            now_s=self.last.t * self.world.step_s,
            injections_after=after,
        )

    def _handle(self, plan: Plan, actor: str) -> str:
        # a plan identical to a pending proposal is not proposed again
        if self.mode == "propose" and not actor.startswith("operator"):
            for p in self.proposals.values():
                if (
                    p.status == "pending"
                    and p.plan.source == plan.source
                    and p.plan.actions == plan.actions
                ):
                    return "pending"
        verdict = self._verdict(plan)
        sim_time = str(self.last.time) if self.last is not None else ""
        data = {k: v for k, v in plan.data.items() if k != "inj" and not k.startswith("_")}

        def record(kind: str, status: str, result: dict[str, Any] | None = None) -> None:
            self.audit.record(
                actor=actor,
                kind=kind,
                what=plan.to_dict(),
                why=plan.reason,
                data=data,
                verdict=verdict.to_dict(),
                result=result,
                status=status,
                sim_time=sim_time,
            )

        if not verdict.ok:
            self.counters["refused"] += 1
            record("refused", "refused")
            self._event(
                "refused",
                f"guard refused {plan.source} plan #{plan.id}: {'; '.join(verdict.reasons)[:200]}",
                "major",
                plan=plan.id,
            )
            return "refused"
        if self.mode == "propose" and not actor.startswith("operator"):
            for p in (
                self.proposals.values()
            ):  # a fresher plan from the same policy supersedes older ones
                if p.status == "pending" and p.plan.source == plan.source:
                    p.status = "expired"
            self.proposals[plan.id] = Proposal(plan, verdict, self.last.t if self.last else 0)
            self.counters["proposed"] += 1
            record("proposal", "pending")
            self._event(
                "proposal",
                f"{plan.source} proposes #{plan.id}: {plan.reason[:160]}",
                "warning",
                plan=plan.id,
            )
            return "pending"
        record("action", "done", self._execute(plan, actor))
        what = [a.describe() for a in plan.actions]
        if plan.data.get("_commands"):
            what.append(f"{len(plan.data['_commands'])} device command(s)")
        self._event(
            "action",
            f"{plan.source} #{plan.id}: " + "; ".join(what)[:200],
            "info",
            plan=plan.id,
            reason=plan.reason[:300],
        )
        return "done"

    def _execute(self, plan: Plan, actor: str | None = None) -> dict[str, Any]:
        w = self.world
        done = []
        for a in plan.actions:
            if a.kind == "switch":
                w.set_switch(int(a.target or 0), bool(a.value))
                self.counters["switch_ops"] += 1
                if (
                    self.last is not None
                ):  # the commanded state until the next telemetry confirms it
                    k = int(self.grid.switch.index_of(int(a.target or 0))[0])
                    self.last.switch_closed[k] = bool(a.value)
            elif a.kind == "dr":
                if a.value > 0:
                    self.dr_requests[plan.source] = float(a.value)
                else:
                    self.dr_requests.pop(plan.source, None)
                w.set_dr(self.dr_level)
                if self.flexdr is not None and self.last is not None:
                    fd, now, lvl = self.flexdr, self.last.time, self.dr_level
                    who = actor or f"policy:{plan.source}"
                    buses = plan.data.get("dr_buses")
                    self._flex_run(
                        lambda fd=fd, now=now, lvl=lvl, who=who, buses=buses: fd.set_level(
                            lvl, now, source=who, reason=plan.reason, buses=buses
                        ),
                        plan.reason,
                    )
            elif a.kind == "storage":
                w.set_storage(int(a.target or 0), float(a.value))
                k = int(self.grid.storage.index_of(int(a.target or 0))[0])
                self.storage_cmd_mw[k] = float(a.value)
                # who holds the batteries (the flexibility schedule leaves them to others)
                if np.any(self.storage_cmd_mw != 0):
                    if a.value != 0:
                        self.shared["storage_by"] = plan.source
                else:
                    self.shared.pop("storage_by", None)
            elif a.kind == "ev":
                self.ev_factor = float(a.value)
                w.set_ev_factor(self.ev_factor)
            elif a.kind == "reset_fpi":
                w.reset_fpi()
            done.append(a.describe())
        cmds = plan.data.get("_commands")  # field commands of a schedule (flexplan)
        if cmds and hasattr(w, "apply"):
            w.apply(cmds)
            done.append(f"{len(cmds)} device command(s)")
        if plan.faulted_lines:
            self.known_faults |= set(plan.faulted_lines)
            self.section_buses |= set(plan.data.get("section_buses", []))
            self.shared["boundary_switches"] = list(plan.data.get("boundary_switches", []))
            self.locked_open = sorted(set(self.locked_open) | set(self.shared["boundary_switches"]))
            self.tripped.clear()  # protection's operation is handled
        if self.last is not None and not self.tripped and plan.switch_ops:
            # the commanded state is where a next trip (e.g. a re-trip when the fault was
            # located wrongly behind a failed indicator) starts from
            self.pre_fault_closed = self.last.switch_closed.copy()
        self.guard.commit(plan, (self.last.t if self.last else 0) * w.step_s)
        self.counters["executed"] += 1
        self.plans_done.append({"t": self.last.t if self.last else 0, **plan.to_dict()})
        return {
            "applied": done,
            "switch_closed_after": self.grid.switch.ids[self.last.switch_closed].tolist()
            if self.last
            else [],
            "dr_level": self.dr_level,
        }

    # --- operators -------------------------------------------------------------------------------
    def submit(self, plan: Plan, actor: str) -> dict[str, Any]:
        """An operator's command: guard, execute if accepted, audit either way. Returns the outcome."""
        with self.lock:
            if self.last is None:
                self.last = self.world.observe()
            status = self._handle(plan, actor=f"operator:{actor}")
            return {
                "plan": plan.id,
                "status": status,
                "reasons": [] if status == "done" else self._last_refusal(plan.id),
            }

    def _last_refusal(self, plan_id: int) -> list[str]:
        for e in self.audit.entries(limit=20, kind="refused"):
            if e["what"] and e["what"].get("id") == plan_id:
                return list(e["verdict"].get("reasons", []))
        return []

    def approve(self, plan_id: int, actor: str) -> dict[str, Any]:
        """Approve a pending proposal: re-checked by the guard on the present state, then executed."""
        with self.lock:
            p = self.proposals.get(plan_id)
            if p is None:
                raise UnknownComponentError("proposal", plan_id)
            if p.status != "pending":
                raise ValidationError(f"proposal {plan_id}: is {p.status}, not pending")
            verdict = self._verdict(p.plan)
            sim_time = str(self.last.time) if self.last else ""
            if not verdict.ok:
                p.status, p.decided_by, p.verdict = "refused", actor, verdict
                self.audit.record(
                    actor=f"operator:{actor}",
                    kind="approval",
                    what=p.plan.to_dict(),
                    why="approved, but the guard refuses it on the present state",
                    verdict=verdict.to_dict(),
                    status="refused",
                    sim_time=sim_time,
                )
                return {"plan": plan_id, "status": "refused", "reasons": verdict.reasons}
            result = self._execute(p.plan)  # a DR event stays under the proposing policy
            p.status, p.decided_by = "approved", actor
            self.audit.record(
                actor=f"operator:{actor}",
                kind="approval",
                what=p.plan.to_dict(),
                why=p.plan.reason,
                verdict=verdict.to_dict(),
                result=result,
                status="approved",
                sim_time=sim_time,
            )
            self._event("approval", f"{actor} approved #{plan_id}", "info", plan=plan_id)
            return {"plan": plan_id, "status": "approved", "result": result}

    def reject(self, plan_id: int, actor: str, why: str = "") -> dict[str, Any]:
        """Reject a pending proposal (audited)."""
        with self.lock:
            p = self.proposals.get(plan_id)
            if p is None:
                raise UnknownComponentError("proposal", plan_id)
            if p.status != "pending":
                raise ValidationError(f"proposal {plan_id}: is {p.status}, not pending")
            p.status, p.decided_by = "rejected", actor
            self.audit.record(
                actor=f"operator:{actor}",
                kind="approval",
                what=p.plan.to_dict(),
                why=why or "rejected",
                status="rejected",
                sim_time=str(self.last.time) if self.last else "",
            )
            self._event("approval", f"{actor} rejected #{plan_id}", "info", plan=plan_id)
            return {"plan": plan_id, "status": "rejected"}

    def set_mode(self, mode: str, actor: str) -> None:
        """Switch between ``autonomous`` and ``propose`` (audited)."""
        if mode not in MODES:
            raise ValidationError(f"mode: unknown {mode!r}; known: {', '.join(MODES)}")
        with self.lock:
            old, self.mode = self.mode, mode
            self.audit.record(
                actor=f"operator:{actor}",
                kind="command",
                what={"mode": mode},
                why=f"mode {old} -> {mode}",
            )
            self._event("mode", f"mode {old} -> {mode} by {actor}")

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
            self._event(
                "injected", f"{actor} injected {kind} {params or ''}", "warning", **{"event": ev}
            )
            return ev

    # --- reporting -------------------------------------------------------------------------------
    def headline(self) -> dict[str, Any]:
        """Headline figures of the latest observation (JSON-able)."""
        o = self.last
        if o is None:
            return {}
        g = self.grid
        ren = (
            np.isin(g.generator["kind"], (GenKind.WIND, GenKind.PV))
            if len(g.generator)
            else np.zeros(0, bool)
        )
        return {
            "t": o.t,
            "time": str(o.time),
            "mode": self.mode,
            "source_p_mw": round(o.source_p_mw, 4),
            "load_mw": round(float(o.load_p_mw.sum()), 4),
            "renewables_mw": round(float(o.gen_p_mw[ren].sum()), 4) if ren.size else 0.0,
            "storage_mw": round(float(o.storage_p_mw.sum()), 4),
            "vmin_pu": None if not np.isfinite(o.vmin_pu) else round(o.vmin_pu, 4),
            "vmax_pu": None if not np.isfinite(o.vmax_pu) else round(o.vmax_pu, 4),
            "max_loading_pct": round(o.max_loading_pct, 2),
            "losses_kw": None if not np.isfinite(o.losses_kw) else round(o.losses_kw, 2),
            "dead_buses": int((~o.energised).sum()),
            "dr_level": round(self.dr_level, 3),
            "dr_requests": dict(self.dr_requests),
            "dr_share": round(self.dr_share, 4),
            "known_faults": sorted(self.known_faults),
            "alarms": len(self.alarms),
            "pending_proposals": sum(p.status == "pending" for p in self.proposals.values()),
            "v_est_min_pu": None
            if self.estimate is None or not np.isfinite(self.estimate.vmin_pu)
            else round(self.estimate.vmin_pu, 4),
            **{k: v for k, v in self.counters.items()},
        }

    def _record_history(self, obs: Observation) -> None:
        est_total = float(self.load_est_mw.sum())
        ahead = 15
        f = self._metered_forecast_mw(obs, ahead)
        self._forecast_at[obs.t + ahead] = f
        fc = self._forecast_at.pop(obs.t, None)
        self.history.append(
            {
                "t": obs.t,
                "time": str(obs.time),
                "load_mw": round(float(obs.load_p_mw.sum()), 4),
                "demand_est_mw": round(est_total, 4),
                "forecast_mw": None if fc is None else round(fc, 4),
                **{
                    k: v
                    for k, v in self.headline().items()
                    if k
                    in (
                        "source_p_mw",
                        "renewables_mw",
                        "storage_mw",
                        "vmin_pu",
                        "v_est_min_pu",
                        "max_loading_pct",
                        "dr_level",
                        "dead_buses",
                        "losses_kw",
                    )
                },
                "price_eur_mwh": self.market.last_price if self.market else None,
                "volume_mwh": self.market.last_volume if self.market else None,
            }
        )

    def _market_step(self, obs: Observation) -> None:
        if self.market is None or obs.t % max(int(900 / self.world.step_s), 1):
            return
        try:
            info = self.market.clear(obs, self.dr_level)
        except Exception as exc:  # the market is advisory here; a failure is reported, never hidden
            self._event("market", f"market interval failed: {exc}", "warning")
            self.market = None
            return
        if info:
            self._event("market", f"market interval cleared: {info}", "info")

    def state(self) -> dict[str, Any]:
        """The full live state for the API and the dashboard (JSON-able)."""
        with self.lock:
            o = self.last
            g = self.grid
            if o is None:
                return {"headline": {}, "bus_id": g.bus.ids.tolist()}
            return {
                "headline": self.headline(),
                "bus_id": g.bus.ids.tolist(),
                "v_pu": np.round(o.v_pu, 4).tolist(),
                "energised": o.energised.tolist(),
                "line_id": g.line.ids.tolist(),
                "line_loading_pct": np.round(o.line_loading_pct, 1).tolist(),
                "switch_id": g.switch.ids.tolist(),
                "switch_closed": o.switch_closed.tolist(),
                "fpi": o.fpi.tolist(),
                "storage_soc": np.round(o.storage_soc, 3).tolist(),
                "v_est_pu": None
                if self.estimate is None
                else [
                    None if not np.isfinite(x) else round(float(x), 4) for x in self.estimate.v_pu
                ],
                "estimate": None if self.estimate is None else self.estimate.to_dict(),
                "alarms": [{"alarm": k, **v} for k, v in self.alarms.items()],
                "events": list(self.events)[-30:],
                "proposals": [
                    p.to_dict() for p in self.proposals.values() if p.status == "pending"
                ],
                "dr_events": self.flexdr.events() if self.flexdr is not None else [],
                "flex_plan": self.shared.get("flex_plan"),
            }


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


__all__ = ["MODES", "Action", "Orchestrator", "Proposal", "StepReport", "run_realtime"]
