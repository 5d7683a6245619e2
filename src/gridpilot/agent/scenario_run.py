"""One scenario run (:func:`run_one`): the world stepped with or without the orchestrator, the
scenario's events, the attacker's moves and the theft watch, KPIs collected (see
:mod:`gridpilot.agent.scenarios`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from gridpilot.agent.scenario_kpis import _Kpis, _setup, theft_meters
from gridpilot.agent.scenario_spec import SCENARIOS, WORLDS, RunResult, ScenarioSpec, scenario_grid
from gridpilot.errors import UnknownComponentError, ValidationError

if TYPE_CHECKING:
    from gridpilot.agent.fieldworld import FieldWorld
    from gridpilot.agent.orchestrator import Orchestrator
    from gridpilot.agent.world import SimWorld


@dataclass
class _TheftWatch:
    """The theft scenario: meters tampered with from step ``at`` (reporting ``factor`` of their
    import); the loop's first non-technical-loss alarm after it, and those before it."""

    at: int
    factor: float
    detected_t: int | None = None
    false_alarms: int = 0
    was: bool = False
    sections: list[Any] = field(default_factory=list)

    def watch(self, orch: Orchestrator, t: int) -> None:
        """Note the alarm's rising edge at step ``t``: a false alarm before the theft, else the
        detection (once) with the sections it names."""
        on = "non_technical_loss" in orch.alarms
        if on and not self.was:
            if t < self.at:
                self.false_alarms += 1
            elif self.detected_t is None:
                self.detected_t = t
                self.sections = list(orch.alarms["non_technical_loss"]["sections"])
        self.was = on


@dataclass
class _Run:
    """One run in progress: the spec, its world and (controlled) orchestrator, the scenario's
    events and attacker commands, the KPIs, notes and counts so far."""

    spec: ScenarioSpec
    world: FieldWorld | SimWorld
    orch: Orchestrator | None
    steps: int
    events: dict[int, list[dict[str, Any]]]
    attack: list[dict[str, Any]]
    detect: int  # steps until operators notice an attack (uncontrolled)
    kp: _Kpis
    theft: _TheftWatch | None
    notes: list[str] = field(default_factory=list)
    actions: int = 0
    refused: int = 0


def _check_spec(spec: ScenarioSpec) -> None:
    """Refuse a spec this runner cannot run, naming the field and the value."""
    if spec.world not in WORLDS:
        raise ValidationError(f"world: unknown {spec.world!r}; known: {', '.join(WORLDS)}")
    if spec.hours <= 0:
        raise ValidationError(f"hours: must be positive, got {spec.hours}")
    if spec.name not in SCENARIOS or spec.name == "n-1":
        raise UnknownComponentError(
            "scenario", spec.name, "known here: fault, heatwave, ev-surge, cyberattack, theft"
        )
    from gridpilot.agent.world3p import is_three_phase

    if spec.name == "theft" and spec.world != "field" and not is_three_phase(spec.grid):
        raise ValidationError(
            f"world: the theft scenario needs household meters (field), got {spec.world!r}"
        )


def _start(spec: ScenarioSpec) -> _Run:
    """The run's world (field or sim) at the scenario's start, its orchestrator when
    controlled (with the meter path for theft), events and attacker commands."""
    from gridpilot.agent.fieldworld import FieldWorld
    from gridpilot.agent.orchestrator import Orchestrator
    from gridpilot.agent.world import SimWorld
    from gridpilot.agent.world3p import is_three_phase

    theft = spec.name == "theft"
    steps = round(spec.hours * 3600 / spec.step_s)
    horizon = int(spec.hours * 4) + 8
    world: FieldWorld | SimWorld
    if is_three_phase(spec.grid):  # a three-phase feeder: the three-phase world, either way
        world, start, events, attack = _three_phase_start(spec, horizon)
    else:
        grid = scenario_grid(spec.grid, spec.fleet)
        start, events, attack = _setup(spec, grid)
        world = (
            FieldWorld(grid, step_s=spec.step_s, start_step=start, horizon_steps=horizon)
            if spec.world == "field"
            else SimWorld(grid, step_s=spec.step_s, start_step=start, horizon_steps=horizon)
        )
    kp = _Kpis(world.grid, spec.step_s)
    orch = Orchestrator(world, meters=theft) if spec.controlled else None
    detect = int(spec.params.get("detect_min", 30) * 60 / spec.step_s)
    watch = None
    if theft:  # tampered meters from at_min (none when params["clean"])
        at = int(spec.params.get("at_min", 420) * 60 / spec.step_s)
        if spec.params.get("clean"):
            at = steps + 1
        watch = _TheftWatch(at, float(spec.params.get("factor", 0.5)))
    return _Run(spec, world, orch, steps, events, attack, detect, kp, watch)


def _three_phase_start(
    spec: ScenarioSpec, horizon: int
) -> tuple[SimWorld, int, dict[int, list[dict[str, Any]]], list[dict[str, Any]]]:
    """The three-phase world of a scenario on a three-phase feeder, its start step, events
    and attacker commands (the set-up reads the feeder's balanced view: same line ids)."""
    from gridpilot.agent.world3p import ThreePhaseWorld, three_phase_grid
    from gridpilot.model.threephase.balanced import balanced_view

    g3 = three_phase_grid(spec.grid)
    start, events, attack = _setup(spec, balanced_view(g3).grid)
    world = ThreePhaseWorld(
        g3, step_s=spec.step_s, start_step=start, horizon_steps=horizon, fleet=spec.fleet
    )
    return world, start, events, attack


def _events(run: _Run, t: int) -> None:
    """Step ``t``'s scenario events: the theft starts, events injected (through the loop when
    controlled; uncontrolled, the crew closes what protection opened at a repair)."""
    world, spec = run.world, run.spec
    if run.theft is not None and t == run.theft.at:
        m = theft_meters(world, spec.params.get("loads"), float(spec.params.get("share", 0.5)))
        if hasattr(world, "sim"):  # the field world (checked by _check_spec)
            world.sim.inject_theft(m, run.theft.factor)
        else:  # a three-phase world's customer meters
            from gridpilot.agent.world3p import ThreePhaseWorld

            assert isinstance(world, ThreePhaseWorld)
            world.inject_theft(m, run.theft.factor)
        run.notes.append(f"step {t}: {len(m)} meters report {run.theft.factor:g} of their import")
    for ev in run.events.get(t, []):
        kind = ev["kind"]
        params = {k: v for k, v in ev.items() if k != "kind"}
        if run.orch is not None:
            run.orch.inject(kind, actor="scenario", **params)
        else:
            world.inject(kind, **params)
            if kind == "repair":  # the crew closes what protection opened
                world.switch_closed = world.normal_closed.copy()


def _attack(run: _Run, t: int) -> None:
    """Step ``t``'s attacker moves: a tampered sensor, forged commands (executed uncontrolled,
    refused by the loop), and, uncontrolled, the operators noticing after ``detect`` steps."""
    world, orch, attack = run.world, run.orch, run.attack
    if orch is not None and attack and t == attack[0]["t"]:
        _tamper_sensor(orch, run.spec, run.notes, t)
    for cmd in [c for c in attack if c["t"] == t]:
        if orch is None:
            world.set_switch(cmd["switch"], cmd["closed"])
            run.notes.append(
                f"step {t}: forged command executed: switch {cmd['switch']} -> {cmd['closed']}"
            )
        else:
            run.refused += _refuse_forged(orch, cmd)
    if orch is None and attack and t == attack[0]["t"] + run.detect:
        world.switch_closed = world.normal_closed.copy()
        run.notes.append(
            f"step {t}: operators noticed the attack and restored the normal configuration"
        )


def _step(run: _Run, t: int) -> None:
    """One step of the run: events, attack, then the loop's step (or the world's, uncontrolled)
    with its KPIs."""
    _events(run, t)
    _attack(run, t)
    world, orch = run.world, run.orch
    if orch is not None:
        rep = orch.step()
        run.actions += len(rep.executed)
        run.refused += len(rep.refused)
        obs = orch.last
        run.kp.add(world, obs, orch)
        if run.theft is not None:
            run.theft.watch(orch, t)
    else:
        obs = world.observe()
        run.kp.add(world, obs)
        world.advance()


def _result(run: _Run, wall_s: float) -> RunResult:
    """The run's :class:`RunResult`: KPIs (with the theft's detection delay and false alarms),
    series, counts and notes."""
    orch, spec = run.orch, run.spec
    tel = int(orch.counters.get("telemetry_rejected", 0)) if orch is not None else 0
    bad = (
        sorted({m for e in orch.events if e["kind"] == "bad_data" for m in e["measurements"]})
        if orch is not None
        else []
    )
    kpis: dict[str, Any] = dict(run.kp.finish())  # floats; the theft's delay may be None
    if run.theft is not None:
        w = run.theft
        d = w.detected_t
        # None (JSON null) where nothing was detected (or nobody watched: uncontrolled)
        kpis["detection_delay_min"] = (
            None if d is None else round((d - w.at) * spec.step_s / 60.0, 3)
        )
        kpis["false_alarms"] = float(w.false_alarms)
        if orch is not None:
            run.notes.append(
                f"meter rows {orch.counters['meter_rows']}, frames refused "
                f"{orch.counters['meter_frames_rejected']}; sections named {w.sections}"
            )
    return RunResult(
        spec, kpis, run.kp.series, run.actions, run.refused, wall_s, run.notes, tel, bad
    )


def run_one(spec: ScenarioSpec) -> RunResult:
    """Run one scenario spec in the twin; returns its :class:`RunResult` (picklable, for Dask)."""
    _check_spec(spec)
    t0 = time.perf_counter()
    run = _start(spec)
    for t in range(run.steps):
        _step(run, t)
    return _result(run, time.perf_counter() - t0)


def _tamper_sensor(orch: Any, spec: ScenarioSpec, notes: list[str], t: int) -> None:
    """The attacker's false-data injection on one voltage sensor (signed by the gateway)."""
    link, est = getattr(orch, "link", None), getattr(orch, "estimator", None)
    if link is None or est is None:
        return
    bus = int(spec.params.get("fdi_bus", 18))
    if bus not in est.sensors.v_bus_ids:  # another grid: its last (remote) sensor
        bus = int(est.sensors.v_bus_ids[-1])
    off = float(spec.params.get("fdi_offset_pu", 0.06))
    link.tamper_voltage(bus, off)
    notes.append(f"step {t}: voltage sensor at bus {bus} compromised: reports {off:+.3f} pu")


def _refuse_forged(orch: Any, cmd: dict[str, Any]) -> int:
    """A forged command meets the API's key check: refused and audited. Returns 1."""
    from gridpilot.agent.auth import KeyStore
    from gridpilot.errors import AuthError

    if (
        getattr(orch, "link", None) is not None
    ):  # the attacker also spoofs telemetry: switch shown open
        ts_ms = int(orch.world.time.astype("datetime64[ms]").astype(np.int64))
        orch.receive_foreign([orch.link.forged_frame(ts_ms, [cmd["switch"]])])
    keys = KeyStore.generate()
    try:
        keys.require("forged-key-from-attacker", "operator")
    except AuthError as exc:
        orch.audit.record(
            actor="unknown",
            kind="auth",
            what={"command": "switch", **cmd},
            why=str(exc),
            status="refused",
            sim_time=str(orch.world.time),
        )
        orch._event(
            "security", f"forged command refused: switch {cmd['switch']} ({exc})", "critical"
        )
        return 1
    return 0
