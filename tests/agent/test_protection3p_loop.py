"""The three-phase world's protection in the loop: lateral fuses, the head recloser with fuse
saving, FLISR from telemetry only, and FLISR's regulator tap commands executed through the
guard (issue #17, item 1 in the loop)."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.agent import Orchestrator, ThreePhaseWorld
from gridpilot.agent.actions import Action, Plan
from gridpilot.agent.flisr3p_policy import Flisr3pPolicy, _engine
from gridpilot.agent.guard import SafetyGuard
from gridpilot.agent.scenario_run import run_one
from gridpilot.agent.scenario_spec import ScenarioSpec
from gridpilot.agent.world3p import three_phase_grid
from gridpilot.control.flisr3p.results import check_state
from gridpilot.errors import ValidationError
from gridpilot.model import OperatingLimits

EVENING = 200 * 96 + 17 * 4  # a summer day, 17:00
LATERAL = "l35"  # a fused lateral of ieee123 (fuse_l35, 30 A T-link; buses 36-40 beyond it)
TRUNK = "l41"  # main feeder behind sw3: the head recloser (on sw1) locks out
ANSI_A = OperatingLimits(0.95, 1.05, 100.0)


@pytest.fixture(scope="module")
def g3():
    return three_phase_grid("ieee123")


def _world(g3, **kw) -> ThreePhaseWorld:
    return ThreePhaseWorld(g3, start_step=EVENING, noise=0.0, fleet=False, **kw)


def _beyond(world: ThreePhaseWorld, branch: str) -> set[int]:
    """View bus ids dead when ``branch`` alone is open (its lateral)."""
    s = world.field.solver
    dead = s.energised() & ~s.energised({branch: False})
    return {world.view.bus_id[b] for (b, _), d in zip(s.nodes, dead, strict=True) if d}


def test_a_fault_on_a_fused_lateral_blows_its_fuse_after_fuse_saving(g3) -> None:
    world = _world(g3)
    world.observe()
    world.advance()
    world.inject("fault", branch=LATERAL)
    obs = world.observe()
    # the truth: two fast recloser shots (fuse saving), then the fuse blows on the reclose
    assert world.field.device_open == {LATERAL: f"fuse_{LATERAL}"}
    acts = [(e["device"], e["action"]) for e in world.field.log[-1]["events"]]
    assert acts[0] == ("recloser_sw1", "trip (fast)") and acts[2] == ("recloser_sw1", "trip (fast)")
    assert acts[-1] == (f"fuse_{LATERAL}", "blown")
    # the telemetry: the recloser's operations, no lockout, no breaker trip
    kinds = [e["kind"] for e in obs.events]
    assert "breaker_trip" not in kinds
    rec = next(e for e in obs.events if e["kind"] == "recloser_operation")
    assert rec["trips"] == 2 and rec["lockout"] is False
    assert obs.switch_closed.tolist() == world.normal_closed.tolist()
    # the lateral is dark, the trunk energised
    dark = set(world.grid.bus.ids[~obs.energised].tolist())
    assert dark == _beyond(world, LATERAL) and 0 < len(dark) < 10
    assert LATERAL in world.open_branches()
    # the crew replaces the fuse with the repair
    world.advance()
    ev = world.inject("repair")
    assert ev["replaced"] == [f"fuse_{LATERAL}"]
    assert world.observe().energised.all()


def test_a_temporary_lateral_fault_is_gone_at_the_fast_reclose(g3) -> None:
    world = _world(g3)
    world.inject("fault", branch=LATERAL, phases="a", permanent=False)
    obs = world.observe()
    assert obs.energised.all() and not world.faulted_lines and not world.field.device_open
    rec = next(e for e in obs.events if e["kind"] == "recloser_operation")
    assert rec["trips"] == 1 and not rec["lockout"]
    assert world.field.log[-1]["fault"] == f"slg:a on {LATERAL}"


def test_a_main_feeder_fault_locks_the_head_recloser_out(g3) -> None:
    world = _world(g3)
    world.inject("fault", branch=TRUNK)
    obs = world.observe()
    sw1 = next(k for k, n in world.view.switch_branch.items() if n == "sw1")
    trip = next(e for e in obs.events if e["kind"] == "breaker_trip")
    assert trip["switch"] == sw1
    assert not obs.switch_closed[world.grid.switch.index_of([sw1])[0]]
    assert not world.field.device_open  # no fuse on the main feeder
    assert world.field.log[-1]["cleared_by"] == "recloser_sw1"
    assert (~obs.energised).sum() > 100


def test_bad_fault_and_tap_input_is_named(g3) -> None:
    world = _world(g3)
    with pytest.raises(ValidationError, match="r_ohm"):
        world.inject("fault", branch=LATERAL, r_ohm=-1)
    with pytest.raises(ValidationError, match="permanent"):
        world.inject("fault", branch=LATERAL, permanent="yes")
    with pytest.raises(ValidationError, match="regulator: no regulator 99"):
        world.set_tap(99, 1.0)
    with pytest.raises(ValidationError, match=r"within 0\.5-1\.5 pu, got 3\.0"):
        Action("tap", 0, 3.0)
    with pytest.raises(ValidationError, match="needs a target"):
        Action("tap", None, 1.0)


def test_a_tap_command_needs_the_three_phase_model() -> None:
    from gridpilot.model import load_grid

    g = load_grid("case33bw")
    guard = SafetyGuard(g)
    inj = {"load_p_mw": g.load["p_mw"].copy(), "load_q_mvar": g.load["q_mvar"].copy()}
    v = guard.check(Plan([Action("tap", 0, 1.0)], "t", "test"),
                    switch_closed=g.switch["closed"].copy(), injections=inj)  # fmt: skip
    assert not v.ok and "three-phase feeder model" in v.reasons[0]


def test_flisr_reads_a_blown_fuse_from_the_telemetry(g3) -> None:
    world = _world(g3)
    orch = Orchestrator(world)
    orch.run(1)
    orch.inject("fault", branch=LATERAL)
    orch.run(2)
    plans = [e for e in orch.events if e["kind"] == "action" and e.get("plan") and "fuse" in e.get("reason", "")]  # fmt: skip
    assert plans, [e["text"] for e in orch.events]
    assert (
        f"fuse(s) ['{LATERAL}']" in plans[0]["reason"] and "nothing to switch" in plans[0]["reason"]
    )
    assert "switch" not in plans[0]["text"].split(":", 1)[1]  # only the indicators reset
    assert not world.fpi.any()
    assert orch.last.switch_closed.tolist() == world.normal_closed.tolist()
    pol = next(p for p in orch.policies if isinstance(p, Flisr3pPolicy))
    assert pol.blown_fuses(_engine(world.grid3p, orch.limits), orch.context()) == [LATERAL]


def test_flisr_after_a_temporary_fault_only_resets_the_indicators(g3) -> None:
    world = _world(g3)
    orch = Orchestrator(world)
    orch.inject("fault", branch=LATERAL, permanent=False)
    orch.run(1)
    texts = [e["text"] for e in orch.events if e["kind"] == "protection"]
    assert any("trip(s), reclosed" in t for t in texts), texts  # the recloser's telemetry
    acts = [e for e in orch.events if e["kind"] == "action" and "flisr" in e["text"]]
    assert len(acts) == 1 and "temporary fault" in acts[0]["reason"]
    assert not world.fpi.any() and orch.last.energised.all()
    assert orch.counters["switch_ops"] == 0


def test_the_scenario_kpis_count_only_the_lateral() -> None:
    spec = ScenarioSpec("fault", "ieee123", hours=0.15, fleet=False,
                        params={"at_min": 2, "repair_h": 2, "branch": LATERAL})  # fmt: skip
    r = run_one(spec)
    k, dead = r.kpis, r.series["dead_buses"]
    assert dead[:2] == [0, 0]
    assert len(set(dead[2:])) == 1 and 0 < dead[-1] < 10  # the lateral's buses, the trunk on
    assert k["energy_not_served_mwh"] > 0  # unserved kW for 7 minutes
    # SAIDI: the lateral's customers for 7 min (a few % of the feeder's customers)
    assert 0 < k["saidi_min"] < 0.1 * 7
    assert 0 < k["saifi"] < 0.1  # 7 min: a sustained interruption of the lateral only
    assert k["maifi"] > 0.9  # the recloser's fast shots blinked the rest of the feeder


def test_flisr_tap_commands_are_executed_and_hold_the_band(g3) -> None:
    world = _world(g3, limits=ANSI_A)
    orch = Orchestrator(world, limits=ANSI_A)
    orch.run(1)
    orch.inject("fault", branch=TRUNK)
    orch.run(2)
    rows = [r for r in orch.audit.entries(kind="action") if r["actor"] == "policy:flisr"]
    assert rows, [e["text"] for e in orch.events]
    row = rows[-1]
    taps = [a for a in row["what"]["actions"] if a["kind"] == "tap"]
    cmds = row["data"]["flisr3p"]["tap_commands"]
    assert taps and cmds  # FLISR's plan lowers a regulator (creg4b) and holds it
    names = world.regulators
    assert {names[a["target"]]: a["value"] for a in taps} == pytest.approx(cmds)
    # through the guard: simulated per node-phase with the taps held
    assert "simulated per node-phase in the three-phase twin" in row["verdict"]["checks"]
    # executed in the world: held there, the regulator's local control off
    for name, tap in cmds.items():
        assert world.physics.held[name] == pytest.approx(tap)
        assert world.physics.taps[name] == pytest.approx(tap)
    # the free regulators' local controls follow the restoration a tap a minute (OpenDSS's
    # time mode: delay, then tapdelay to the next sample): the band holds a step later
    orch.run(1)
    res, live = world.phase_result(), world.live_nodes()
    assert not live.all()  # the faulted section stays dark
    v = res.v_pu[live]
    assert v.min() >= ANSI_A.v_min_pu and v.max() <= ANSI_A.v_max_pu
    # in FLISR's twin the restored state holds the band only with the taps
    eng = _engine(world.grid3p, ANSI_A)
    state = dict(eng.solver.normal)
    state.update({p["switch"]: p["action"] == "close" for p in row["data"]["flisr3p"]["plan"]})
    held = eng.solver.solve_settled(state, 1.0, cmds)
    free = eng.solver.solve_settled(state, 1.0)
    assert check_state(held, eng.limits, source_side=eng.source_side).ok
    assert not check_state(free, eng.limits, source_side=eng.source_side).ok
    # the crew's repair releases the hold
    orch.inject("repair")
    assert not world.physics.held
    assert orch.counters["tap_ops"] == len(taps)
    assert np.isfinite(v).all()


def test_the_guard_bounds_tap_commands_by_range_and_rate(g3) -> None:
    """A tap beyond the regulator winding's own range is refused (not silently clipped), and
    so is a ninth tap command to one regulator within the hour (wear and hunting)."""
    world = _world(g3)
    orch = Orchestrator(world)
    orch.run(1)
    name = world.regulators[0]
    lo, hi = world.physics.tap_range(name)
    assert (lo, hi) == (0.9, 1.1)  # ieee123's regulators: +-10 % in 32 steps
    v = orch._verdict(Plan([Action("tap", 0, 1.2)], "t", "test"))
    assert not v.ok and any(f"{name}: tap 1.2 pu outside its 0.9-1.1" in r for r in v.reasons)
    # the regulator's present tap (a command that changes nothing in the simulated state: the
    # guard simulates the tap it commands, and a lower one would load the head line more)
    ok = Plan([Action("tap", 0, world.physics.taps[name])], "t", "test")
    assert orch._verdict(ok).ok
    limit = orch.guard.limits.max_tap_ops_per_regulator_per_hour
    now = orch.last.t * world.step_s
    for _ in range(limit):
        orch.guard.commit(ok, now_s=now)
    v = orch._verdict(ok)
    assert not v.ok and any(f"more than {limit} tap commands" in r for r in v.reasons)
    orch.guard.commit(Plan([], "t", "test"), now_s=now + 3601.0)  # an hour on: allowed again
    assert not orch.guard._tap_ops


def test_a_blown_fuse_no_indicator_saw_is_still_named_once(g3) -> None:
    """Every fault indicator broken: nothing picks up, nothing locks out, but the lateral's
    buses are dark with every switch closed. FLISR names the fuse from the dark buses, once
    (not again every step while the lateral waits for the crew)."""
    world = _world(g3)
    world.fpi_failed[:] = True
    orch = Orchestrator(world)
    orch.run(1)
    orch.inject("fault", branch=LATERAL)
    orch.run(3)
    assert not world.fpi.any()
    plans = [e for e in orch.events if e["kind"] == "action" and "fuse" in e.get("reason", "")]
    assert len(plans) == 1, [e["text"] for e in orch.events]
    assert f"fuse(s) ['{LATERAL}']" in plans[0]["reason"]
    assert orch.last.switch_closed.tolist() == world.normal_closed.tolist()


def test_every_guard_check_sees_the_held_taps(g3) -> None:
    """A tap command moves the guard's balanced twin after the plan, and once executed (held in
    the field) both the balanced and the node-phase checks start from it until the repair."""
    world = _world(g3)
    orch = Orchestrator(world, policies=[])
    orch.run(1)
    guard, closed = orch.guard, orch.last.switch_closed
    inj = world.controlled(world.demand())
    reg = world.regulators.index("creg1a")  # the head regulator: it lifts the whole feeder
    t = orch.grid.transformer
    k = int(
        t.index_of(next(i for i, m in world.view.transformer_members.items() if m == ["reg1a"]))[0]
    )
    now = 1.0 + int(t["tap_pos"][k]) * 0.00625
    plan = Plan([Action("tap", reg, now + 4 * 0.00625)], "raise reg1", "test")
    v = guard.check(plan, switch_closed=closed, injections=inj)
    assert v.ok, v.reasons
    # the balanced twin simulates the plan's tap: four steps of 0.625 % lift the voltages
    assert v.after["vmax_pu"] > v.before["vmax_pu"] + 0.015
    npf = v.after["node_phase"]
    assert npf["vmax_node_phase_pu"] > npf["vmax_node_phase_pu_before"] + 0.01
    assert orch.submit(plan, "test")["status"] == "done"  # guarded, executed, committed
    assert world.physics.held["creg1a"] == pytest.approx(now + 4 * 0.00625)
    assert int(world.grid.transformer["tap_pos"][k]) == int(t["tap_pos"][k]) + 4  # the view too
    # a later plan without taps: its before state is the held one, in both checks
    reset = Plan([Action("reset_fpi")], "reset", "test")
    v2 = guard.check(reset, switch_closed=closed, injections=inj)
    assert v2.before["vmax_pu"] == pytest.approx(v.after["vmax_pu"], abs=1e-6)
    _, info = guard.phase.check(closed, closed, inj, inj, (0.9, 1.1), 0.002)
    assert info["vmax_node_phase_pu_before"] == pytest.approx(npf["vmax_node_phase_pu"], abs=2e-3)
    # the crew's report releases the hold: the checks are back on the free regulators
    orch.inject("repair")
    orch.step()
    assert not guard.phase.held and not world.physics.held
    v3 = guard.check(reset, switch_closed=closed, injections=inj)
    assert v3.before["vmax_pu"] == pytest.approx(v.before["vmax_pu"], abs=1e-6)
