"""State estimation in the orchestrator's loop: sensor subset, accuracy, bad data, errors."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from gridpilot.agent import FieldWorld, Observation, Orchestrator, SimWorld
from gridpilot.agent.cli import build_demo, demo_events
from gridpilot.agent.estimating import LoopEstimator, SensorSet, default_sensors
from gridpilot.agent.policies import VoltagePolicy
from gridpilot.errors import ValidationError
from gridpilot.estimation import Measurements, PowerSensorKind
from gridpilot.model import Grid

from .conftest import EVENING


def _measured(w: SimWorld | FieldWorld) -> tuple[Observation, LoopEstimator, Measurements]:
    """The world's first observation, a loop estimator on its grid and its measurements."""
    obs = w.observe()
    le = LoopEstimator(w.grid)
    return obs, le, le.measurements(obs)


def _se_errors(o: Orchestrator, steps: int) -> list[tuple[float, float]]:
    """Run ``steps`` steps; (max, mean) |V_est - V_true| of every fresh estimate (test-side truth)."""
    out = []
    for _ in range(steps):
        o.step()
        est = o.estimate
        if est is not None and est.t == o.world.t - 1:
            assert o.world.last is not None
            out.append(est.error_pu(o.world.last.v_pu))
    return out


def test_default_sensors_are_a_realistic_subset(fleet_grid: Grid) -> None:
    s = default_sensors(fleet_grid)
    g = fleet_grid
    buses = set(s.v_bus_ids)
    assert int(g.source["bus"][0]) in buses  # substation
    tie = g.switch["normally_open"]
    for lid in g.switch["element"][tie]:  # both ends of every tie
        k = int(g.line.index_of(int(lid))[0])
        assert {int(g.line["from_bus"][k]), int(g.line["to_bus"][k])} <= buses
    assert len(buses) < len(g.bus) / 2  # not every bus is measured
    head = [int(i) for i, f in zip(g.line.ids, g.line["from_bus"], strict=True) if f == 1]
    assert list(s.flow_line_ids) == head


def test_estimate_within_10_mv_at_steady_state_with_noisy_sensors(fleet_grid: Grid) -> None:
    o = Orchestrator(SimWorld(fleet_grid, start_step=EVENING), sensor_noise=True, se_every_steps=2)
    errs = _se_errors(o, 40)
    assert len(errs) >= 20
    worst = max(e[0] for e in errs)
    assert worst < 0.01
    assert o.estimate is not None and np.isfinite(o.estimate.v_pu).all()
    # the controller's sensors: the noisy voltages really are not the truth
    assert o.link is not None and o.world.last is not None
    pos = fleet_grid.bus.index_of(np.asarray(o.estimator.sensors.v_bus_ids))  # type: ignore[union-attr]
    assert np.abs(o.link.v_pu[pos] - o.world.last.v_pu[pos]).max() > 1e-4
    assert o.counters["bad_data_removed"] == 0
    # the policies see the estimate
    ctx = o.context()
    assert ctx.v_est_pu is not None
    np.testing.assert_array_equal(ctx.v_est_pu, o.estimate.v_pu)


def test_false_data_on_one_voltage_sensor_is_removed_alarmed_and_audited(
    fleet_grid: Grid,
) -> None:
    o = Orchestrator(SimWorld(fleet_grid, start_step=EVENING), sensor_noise=True)
    o.run(5)
    assert o.link is not None
    # a compromised sensor at the remote bus 18 reports 6 % high (hiding a low voltage): its
    # frames are signed by the gateway, so telemetry verification passes them
    o.link.tamper_voltage(18, 0.06)
    rejected = o.counters["telemetry_rejected"]
    o.run(5)
    assert o.counters["telemetry_rejected"] == rejected
    est = o.estimate
    assert est is not None and est.removed == ["V bus 18"]
    assert est.removed_rn[0] > 3.0
    assert o.world.last is not None
    assert est.error_pu(o.world.last.v_pu)[0] < 0.01  # the estimate is clean again
    ev = [e for e in o.events if e["kind"] == "bad_data"]
    assert len(ev) == 1 and ev[0]["measurements"] == ["V bus 18"]
    assert "V bus 18" in o.alarms["bad_data"]["text"]
    aud = o.audit.entries(limit=5, kind="bad_data")
    assert len(aud) == 1 and aud[0]["what"]["removed"] == ["V bus 18"]
    assert o.audit.verify() == (True, None)
    # the attack ends: the alarm clears
    o.link.tamper_voltage(18, 0.0)
    o.run(5)
    assert o.estimate is not None and o.estimate.removed == []
    assert "bad_data" not in o.alarms


def test_without_bad_data_removal_the_forged_value_would_bias_the_estimate(
    fleet_grid: Grid,
) -> None:
    """The same attack seen by a plain WLS estimate (no removal): bus 18 is visibly wrong."""
    obs, le, m = _measured(SimWorld(fleet_grid, start_step=EVENING))
    k = int(np.flatnonzero(m.v_bus_id == 18)[0])
    m.v_pu[k] += 0.06
    se = le._se(obs.switch_closed)
    plain = se.estimate(m)
    b18 = int(fleet_grid.bus.index_of(18)[0])
    assert plain.bad_data_suspected
    # every load is metered, so the forged value moves the WLS estimate only part of the way
    # (about 5 mV of the 60 mV here): enough to hide a real violation near the band
    assert abs(plain.v_pu[b18] - obs.v_pu[b18]) > 0.004
    clean = le.estimate(obs)
    assert clean.removed == [] and clean.error_pu(obs.v_pu)[0] < 1e-6


def test_estimated_violation_triggers_the_voltage_policy_off_cycle(
    fleet_grid: Grid,
) -> None:
    o = Orchestrator(SimWorld(fleet_grid, start_step=EVENING))
    o.run(3)
    ctx = o.context()
    assert ctx.obs.t % 5 != 0
    assert not ctx.estimated_violation()
    pol = VoltagePolicy()
    assert pol.decide(ctx) == []  # off cycle, no estimated violation: not even looked at
    ctx.v_est_pu = np.where(np.isfinite(ctx.v_est_pu), 0.85, np.nan)  # type: ignore[arg-type]
    assert ctx.estimated_violation()
    calls: list[int] = []
    orig = pol._worst_step_mult

    def spy(c: object) -> np.ndarray:
        calls.append(1)
        return orig(c)  # type: ignore[arg-type]

    pol._worst_step_mult = spy  # type: ignore[method-assign]
    pol.decide(ctx)
    assert calls  # the look-ahead ran off cycle


def test_estimate_runs_after_switching_and_is_nan_where_dead(fleet_grid: Grid) -> None:
    o = Orchestrator(SimWorld(fleet_grid, start_step=EVENING), se_every_steps=1000)
    o.run(2)
    first = o.counters["se_runs"]
    assert first == 1  # only the first step (K is large)
    o.inject(kind="fault", line=20)
    o.run(3)
    assert o.counters["se_runs"] > first  # protection tripped: topology changed, re-estimated
    est = o.estimate
    assert o.last is not None and est is not None
    dead = ~o.last.energised
    assert dead.any()
    assert np.isnan(est.v_pu[dead]).all() and np.isfinite(est.v_pu[~dead]).all()


def test_state_estimation_can_be_switched_off(fleet_grid: Grid) -> None:
    o = Orchestrator(SimWorld(fleet_grid, start_step=EVENING), se_every_steps=0)
    o.run(3)
    assert o.estimator is None and o.estimate is None and o.counters["se_runs"] == 0
    assert o.context().v_est_pu is None
    assert o.state()["estimate"] is None


@pytest.mark.parametrize("bad", [-1, 2.5])
def test_bad_se_every_steps_is_named(fleet_grid: Grid, bad: float) -> None:
    with pytest.raises(ValidationError, match=r"se_every_steps.*" + re.escape(str(bad))):
        Orchestrator(SimWorld(fleet_grid, start_step=EVENING), se_every_steps=bad)  # type: ignore[arg-type]


def test_bad_sensor_set_and_tamper_are_named(fleet_grid: Grid) -> None:
    with pytest.raises(ValidationError, match=r"v_bus_ids.*999"):
        LoopEstimator(fleet_grid, SensorSet((1, 999), ()))
    with pytest.raises(ValidationError, match=r"flow_line_ids.*555"):
        LoopEstimator(fleet_grid, SensorSet((1,), (555,)))
    with pytest.raises(ValidationError, match=r"v_sigma_pu.*0"):
        LoopEstimator(fleet_grid, SensorSet((1,), (), v_sigma_pu=0.0))
    o = Orchestrator(SimWorld(fleet_grid, start_step=EVENING), se_every_steps=0)
    assert o.link is not None
    with pytest.raises(ValidationError, match=r"offset_pu.*0\.9"):
        o.link.tamper_voltage(18, 0.9)


def test_loads_q_is_the_metered_q_when_observed_else_the_model_power_factor(
    fleet_grid: Grid,
) -> None:
    obs, le, m = _measured(FieldWorld(fleet_grid, start_step=EVENING))
    is_load = lambda m: m.p_kind == PowerSensorKind.LOAD  # noqa: E731
    np.testing.assert_array_equal(m.p_element_id[is_load(m)], fleet_grid.load.ids)
    np.testing.assert_allclose(m.q_mvar[is_load(m)], obs.load_q_mvar)
    # the field's households do not draw Q at the model's power factor (water heaters, EVs)
    pf = fleet_grid.load["q_mvar"] / fleet_grid.load["p_mw"]
    assert np.abs(obs.load_q_mvar - obs.load_p_mw * pf).max() > 0.005
    # no metered Q (an observation without it): the model's power factor, wider sigma
    bare = dataclasses.replace(obs, load_q_mvar=np.zeros(0))
    mb = le.measurements(bare)
    np.testing.assert_allclose(mb.q_mvar[is_load(mb)], obs.load_p_mw * pf)
    assert (mb.q_sigma_mvar[is_load(mb)] >= m.q_sigma_mvar[is_load(m)]).all()


def test_field_world_demo_raises_no_spurious_bad_data_and_still_finds_a_forged_voltage() -> None:
    """The demo on the field world (fault, wind drop, repair, wind back): every load's Q is
    metered, so nothing is flagged (with Q from the model's power factor a wind-drop generator
    Q and loads' Q were removed as bad data); a forged voltage at bus 18 is still found."""
    o = build_demo(world="field")
    o.run(120, demo_events(o.world.step_s))
    assert o.counters["se_runs"] >= 20
    assert [e for e in o.events if e["kind"] == "bad_data"] == []
    assert o.counters["bad_data_removed"] == 0
    assert o.link is not None
    o.link.tamper_voltage(18, 0.06)
    o.run(5)
    assert o.estimate is not None and o.estimate.removed == ["V bus 18"]
