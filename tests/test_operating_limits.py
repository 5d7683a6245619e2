"""One set of operating limits (#15 item 3): validated once, taken by FLISR, the guard, volt/var,
flex and the market, and served by the API."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from gridpilot.errors import InfeasibleError, ValidationError
from gridpilot.model.limits import OperatingLimits, canonical_limit_names


@pytest.mark.parametrize(
    ("kw", "field", "value"),
    [
        ({"v_min_pu": 0.0}, "v_min_pu", "0.0"),
        ({"v_min_pu": -0.9}, "v_min_pu", "-0.9"),
        ({"v_max_pu": 2.5}, "v_max_pu", "2.5"),
        ({"v_min_pu": 1.06}, "v_max_pu", "1.05"),
        ({"loading_max_pct": 0.0}, "loading_max_pct", "0.0"),
        ({"loading_max_pct": 1000.5}, "loading_max_pct", "1000.5"),
        ({"loading_max_pct": float("nan")}, "loading_max_pct", "nan"),
        ({"v_max_pu": "high"}, "v_max_pu", "high"),
    ],
)
def test_bad_limits_name_the_field_and_the_value(kw, field, value) -> None:
    with pytest.raises(ValidationError) as exc:
        OperatingLimits(**kw)
    issue = exc.value.issues[0]
    assert issue.field == field and value in str(exc.value) and field in str(exc.value)


def test_old_spellings_map_to_the_one_name() -> None:
    assert canonical_limit_names({"vmin_pu": 0.9, "line_limit_pct": 80}) == {
        "v_min_pu": 0.9,
        "loading_max_pct": 80,
    }
    assert OperatingLimits.of(max_loading_pct=120.0).loading_max_pct == 120.0
    with pytest.raises(ValidationError, match="given twice"):
        canonical_limit_names({"max_loading_pct": 90, "loading_max_pct": 80})
    with pytest.raises(ValidationError, match="v_nom"):
        canonical_limit_names({"v_nom": 1.0})


def test_every_area_takes_the_same_limits_and_the_api_serves_them(case33) -> None:
    from gridpilot.agent import GuardLimits, Orchestrator, SafetyGuard, SimWorld, demo_grid
    from gridpilot.api import KeyStore, create_app
    from gridpilot.control.flisr import FlisrEngine, Limits
    from gridpilot.control.voltvar import optimise_q
    from gridpilot.flex.plan_config import PlanConfig
    from gridpilot.market.network import GridSensitivity
    from gridpilot.market.simulate import SimulationOptions

    lim = OperatingLimits(v_min_pu=0.92, v_max_pu=1.07, loading_max_pct=90.0)
    assert SafetyGuard(case33, limits=lim).limits.operating == lim
    eng = FlisrEngine(case33, lim, verify="radial")
    assert isinstance(eng.limits, Limits) and eng.limits.operating == lim
    assert PlanConfig.from_limits(lim).limits == lim
    assert SimulationOptions(limits=lim).limits is lim
    sens = GridSensitivity.from_grid(case33, limits=lim)
    base = GridSensitivity.from_grid(case33)
    assert (sens.v_min_pu, sens.v_max_pu) == (0.92, 1.07)
    assert np.allclose(sens._s_max, 0.9 * base._s_max)
    # volt/var holds the band it is given: a band no inverter can hold is refused by name
    pv = case33.copy()
    pv.add("generator", id=[1, 2, 3], bus=[18, 25, 33], kind=0, p_mw=[1.6, 1.2, 1.6])
    with pytest.raises(InfeasibleError, match=r"\[0.999, 1.001\]"):
        optimise_q(pv, 96 * 170 + 48, limits=OperatingLimits(0.999, 1.001))
    # the API serves the orchestrator's one set of limits
    orch = Orchestrator(SimWorld(demo_grid("case33bw")), limits=GuardLimits.from_limits(lim))
    assert orch.guard.limits.operating == lim
    keys = KeyStore.generate()
    c = TestClient(create_app(orch, keys))
    got = c.get("/api/limits", headers={"X-API-Key": keys.issued["viewer"]}).json()
    assert {k: got[k] for k in lim.as_dict()} == lim.as_dict()
