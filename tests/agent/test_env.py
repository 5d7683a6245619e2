from __future__ import annotations

import numpy as np
import pytest

from gridpilot.agent import GridEnv
from gridpilot.errors import ValidationError
from gridpilot.model import load_grid


@pytest.fixture(scope="module")
def env() -> GridEnv:
    return GridEnv(load_grid("case33bw"), episode_steps=12)


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
