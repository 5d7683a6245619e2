"""Self-healing in the loop on a three-phase world: the unbalanced FLISR as the loop's fault
response, its plan through the guard and the world (issue #17, item 1 in the loop)."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.agent import Orchestrator, ThreePhaseWorld
from gridpilot.agent.flisr3p_policy import Flisr3pPolicy
from gridpilot.agent.policies import FlisrPolicy
from gridpilot.agent.world3p import three_phase_grid

EVENING = 200 * 96 + 17 * 4


@pytest.fixture(scope="module")
def healed():
    world = ThreePhaseWorld(three_phase_grid("ieee123"), start_step=EVENING, noise=0.0)
    orch = Orchestrator(world)
    orch.run(2)
    orch.inject("fault", branch="l60")
    orch.step()
    dark = int((~orch.last.energised).sum())
    orch.run(2)
    return world, orch, dark


def test_the_three_phase_world_gets_the_unbalanced_flisr() -> None:
    world = ThreePhaseWorld(three_phase_grid("ieee123"), start_step=EVENING, fleet=False)
    names = [type(p).__name__ for p in Orchestrator(world).policies]
    assert "Flisr3pPolicy" in names and "FlisrPolicy" not in names
    # policies given explicitly are kept as they are
    assert isinstance(Orchestrator(world, policies=[FlisrPolicy()]).policies[0], FlisrPolicy)


def test_the_loop_restores_through_a_tie_per_node_phase(healed) -> None:
    world, orch, dark = healed
    plans = [
        e
        for e in orch.events
        if e["kind"] == "action" and "three-phase FLISR" in e.get("reason", "")
    ]
    assert plans, [e["text"] for e in orch.events if e["kind"] in ("refused", "action")]
    assert (
        "restore over ['sw7']" in plans[0]["reason"] or "restore over ['sw8']" in plans[0]["reason"]
    )
    after = int((~orch.last.energised).sum())
    assert 0 < after < dark  # the faulted section stays dark, the rest is back
    # the faulted line's buses are dead, and every live node-phase within the guard's band
    ends = next(b for b in world.grid3p.branches if b.name.lower() == "l60")
    res, live = world.phase_result(), world.live_nodes()
    for i, (b, _) in enumerate(res.nodes):
        if b in (ends.t1.bus, ends.t2.bus):
            assert not live[i]
    v = res.v_pu[live]
    assert v.min() >= orch.limits.v_min_pu - orch.limits.tolerance_pu
    assert v.max() <= orch.limits.v_max_pu + orch.limits.tolerance_pu


def test_the_policy_reads_indications_only(healed) -> None:
    world, orch, _ = healed
    pol = next(p for p in orch.policies if isinstance(p, Flisr3pPolicy))
    assert set(pol.switch_id) == set(world.view.switch_branch.values())
    assert np.all(world.fpi == False)  # noqa: E712 - reset by the plan
