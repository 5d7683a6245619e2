from __future__ import annotations

import numpy as np
import pytest

from gridpilot.agent import FieldWorld, GridEnv, SimWorld
from gridpilot.errors import ValidationError
from gridpilot.model import load_grid


@pytest.fixture(scope="module", params=["field", "sim"])
def env(request: pytest.FixtureRequest) -> GridEnv:
    return GridEnv(load_grid("case33bw"), episode_steps=12, world=request.param)


def test_gymnasium_api_shapes_and_spaces(env: GridEnv) -> None:
    obs, info = env.reset(seed=3, options={"fault_line": 7, "fault_step": 2})
    assert env.observation_space.contains(obs) and obs.shape == env.observation_space.shape
    assert (
        env.action_space.n == 1 + 37 + 3
        and env.action_space.contains(0)
        and not env.action_space.contains(99)
    )
    assert info["fault_step"] == 2
    total, steps, truncated = 0.0, 0, False
    while not truncated:
        obs, reward, terminated, truncated, info = env.step(0)
        total += reward
        steps += 1
        assert not terminated and obs.shape == env.observation_space.shape
    assert steps == 12
    assert total < -1000  # a fault left alone costs energy not served at VOLL
    assert info["kpis"]["customers_off"] > 0


def test_actions_pass_the_guard(env: GridEnv) -> None:
    env.reset(seed=1, options={"fault_line": 7, "fault_step": 50})
    tie = int(np.flatnonzero(env.grid.switch.ids == 33)[0]) + 1  # toggle tie 33: a loop
    _obs, r, _t, _tr, info = env.step(tie)
    assert info["refused"] and any("radial" in x for x in info["refused"])
    assert r <= -env.costs.refusal_penalty
    dr = 1 + len(env.grid.switch) + 2  # DR level 1.0
    _obs, _r, _t, _tr, info = env.step(dr)
    assert not info["refused"] and env.world.dr_level == 1.0 and info["kpis"]["curtailed_mwh"] > 0


def test_step_before_reset_and_bad_action_are_clear_errors() -> None:
    e = GridEnv(load_grid("case33bw"), episode_steps=3)
    with pytest.raises(ValidationError, match="reset"):
        e.step(0)
    e.reset(seed=0)
    with pytest.raises(ValidationError, match="action"):
        e.step(-1)
    with pytest.raises(ValidationError, match="episode_steps"):
        GridEnv(load_grid("case33bw"), episode_steps=0)
    with pytest.raises(ValidationError, match=r"world.*'twin'"):
        GridEnv(load_grid("case33bw"), world="twin")


def test_the_field_world_is_the_default_and_episodes_reproduce() -> None:
    g = load_grid("case33bw")
    e = GridEnv(g, episode_steps=4)
    o1, _ = e.reset(seed=5)
    assert isinstance(e.world, FieldWorld)
    a = [e.step(0)[0] for _ in range(3)]
    o2, _ = e.reset(seed=5)
    b = [e.step(0)[0] for _ in range(3)]
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(np.array(a), np.array(b))
    s = GridEnv(g, episode_steps=4, world="sim")
    s.reset(seed=5)
    assert isinstance(s.world, SimWorld) and s.flexdr is None


def test_dr_on_the_field_world_is_a_household_event_and_costs_curtailment() -> None:
    e = GridEnv(load_grid("case33bw"), episode_steps=30, fault_prob=0.0)
    e.reset(seed=2)
    assert e.flexdr is not None and e.world is not None
    load0 = e.world.last.load_p_mw.sum()  # type: ignore[union-attr]
    full = 1 + len(e.grid.switch) + 2  # DR level 1.0
    _o, r, _t, _tr, info = e.step(full)
    assert not info["refused"] and e.flexdr.active is not None
    assert info["kpis"]["household_dr_mw"] > 0.01  # case33bw has no flexible loads: households
    assert info["kpis"]["curtailed_mwh"] > 0 and r < 0
    assert e.world.last.load_p_mw.sum() < load0 - 0.01  # type: ignore[union-attr]  # metered drop
    off = 1 + len(e.grid.switch)  # DR level 0: the event is released
    _o, _r, _t, _tr, info = e.step(off)
    assert e.flexdr.active is None and info["kpis"]["household_dr_mw"] == 0.0
    assert e.flexdr.records[-1].status == "released"


def test_observe_the_state_estimate_instead_of_the_sensors() -> None:
    g = load_grid("case33bw")
    raw = GridEnv(g, episode_steps=6, fault_prob=0.0)
    est = GridEnv(g, episode_steps=6, fault_prob=0.0, observe="estimate")
    o_raw, _ = raw.reset(seed=5)
    o_est, _ = est.reset(seed=5)
    nb = len(g.bus)
    assert est.estimate is not None and est.estimate.converged
    np.testing.assert_array_equal(o_est[:nb], est.estimate.v_pu.astype(np.float32))
    assert np.abs(o_est[:nb] - o_raw[:nb]).max() < 0.005  # exact sensors: the same state
    np.testing.assert_array_equal(o_est[nb:], o_raw[nb:])  # the rest is the same
    # a forged voltage sensor: the sensors' view carries it, the estimate removes it
    k18 = int(g.bus.index_of(18)[0])
    for env in (raw, est):
        w = env.world
        assert w is not None
        honest = w.observe

        def forged(honest=honest):  # type: ignore[no-untyped-def]
            o = honest()
            o.v_pu = o.v_pu.copy()
            o.v_pu[k18] += 0.06
            return o

        w.observe = forged  # type: ignore[method-assign]
    o_raw, *_ = raw.step(0)
    o_est, _, _, _, info = est.step(0)
    assert info["estimate"]["removed"] == ["V bus 18"]
    truth = o_raw[k18] - 0.06
    assert abs(o_est[k18] - truth) < 0.01 < abs(o_raw[k18] - truth)
    est.reset(seed=5, options={"fault_line": 2, "fault_step": 1})
    o, _, _, _, _ = est.step(0)  # the breaker trips: most of the feeder is dark
    assert est.estimate is not None
    dark = ~np.isfinite(est.estimate.v_pu)
    assert dark.sum() > nb // 2 and np.all(o[:nb][dark] == 0.0)
    with pytest.raises(ValidationError, match="observe"):
        GridEnv(g, observe="truth")
