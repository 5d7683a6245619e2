"""The three-phase world: time through the load shapes, physics per node-phase, switching,
alarms per node-phase, and the loop running on it (issue #17, items 6 and 7)."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.agent import Orchestrator, ThreePhaseWorld
from gridpilot.agent.world3p import three_phase_grid
from gridpilot.agent.worldtypes import AlarmingWorld, PhaseAwareWorld, World
from gridpilot.errors import UnknownComponentError, ValidationError
from gridpilot.model import OperatingLimits
from gridpilot.model.threephase.balanced import balanced_view, positive_sequence_z
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.islands import energised_subgrid, live_buses

EVENING = 200 * 96 + 17 * 4  # a summer day, 17:00
NIGHT = 200 * 96 + 4 * 4  # the same day, 04:00


@pytest.fixture(scope="module")
def g3():
    return three_phase_grid("ieee123")


@pytest.fixture
def world(g3):
    return ThreePhaseWorld(g3, start_step=EVENING, noise=0.0)


def test_world_is_a_phase_aware_alarming_world(world) -> None:
    assert isinstance(world, World)
    assert isinstance(world, PhaseAwareWorld)
    assert isinstance(world, AlarmingWorld)
    assert world.phase_result() is None  # nothing solved yet


def test_observation_is_the_unbalanced_physics(world, g3) -> None:
    obs = world.observe()
    res = world.phase_result()
    assert obs.converged and obs.energised.all()
    assert len(res.nodes) == len(world.grid3p.nodes())  # ties normalised: no *_open buses
    v = res.v_pu
    assert v.min() > 0.9 and v.max() < 1.1
    # telemetry per view bus: the node-phase of that bus furthest from 1 pu
    for k, nodes in enumerate(world._bus_nodes):
        if nodes.size:
            dev = v[nodes] - 1.0
            assert obs.v_pu[k] == pytest.approx(v[nodes][np.argmax(np.abs(dev))])
    # power balance: the head supplies the served loads and devices plus the losses
    inj = world.controlled(world.demand())
    dem = obs.load_p_mw.sum() + obs.ev_p_mw.sum() + obs.flex_p_mw.sum() + obs.storage_p_mw.sum()
    dem -= obs.gen_p_mw.sum()
    assert obs.losses_kw > 0
    assert obs.source_p_mw == pytest.approx(dem + obs.losses_kw / 1e3, rel=0.03)
    assert inj["load_p_mw"].sum() == pytest.approx(obs.load_p_mw.sum())


def test_time_follows_the_feeders_load_shape(g3) -> None:
    day = ThreePhaseWorld(g3, start_step=EVENING, noise=0.0, fleet=False)
    night = ThreePhaseWorld(g3, start_step=NIGHT, noise=0.0, fleet=False)
    p_day, p_night = day.observe().load_p_mw.sum(), night.observe().load_p_mw.sum()
    shape = g3.loadshapes["default"]
    ratio = shape.at(np.array([4.0]))[0] / shape.at(np.array([17.0]))[0]
    assert p_night / p_day == pytest.approx(ratio, rel=0.02)
    assert p_day == pytest.approx(
        sum(ld.kw for ld in g3.loads) / 1e3 * shape.at(np.array([17.0]))[0], rel=0.02
    )


def test_noise_moves_each_load(g3) -> None:
    a = ThreePhaseWorld(g3, start_step=EVENING, noise=0.05, seed=1)
    b = ThreePhaseWorld(g3, start_step=EVENING, noise=0.0)
    assert a.observe().source_p_mw != pytest.approx(b.observe().source_p_mw, rel=1e-4)


def test_regulators_act_in_time(world) -> None:
    """Settled at the start (off neutral); a regulator pushed 4 taps up and released comes
    back one tap a step: OpenDSS's time mode at 60 s steps (the first tap after its delay,
    each next one ``tapdelay`` later, so at the next sample)."""
    world.observe()
    world.advance()
    assert any(abs(t - 1.0) > 1e-6 for t in world.physics.taps.values())
    name = world.regulators[0]
    settled = world.physics.taps[name]
    world.set_tap(0, settled + 4 * 0.00625)
    world.observe()
    world.advance()
    world.physics.held.clear()  # released: its local control on again
    ops = world.physics.tap_ops
    taps = []
    for _ in range(4):
        world.observe()
        world.advance()
        taps.append(round((world.physics.taps[name] - settled) / 0.00625))
    assert taps[:3] == [4, 3, 2]  # armed at the first sample, then one tap a step
    assert world.physics.tap_ops - ops >= 3
    v = world.phase_result().v_pu
    assert v.max() < 1.06 and v.min() > 0.94


def test_opening_a_switch_darkens_its_section_per_node_phase(world, g3) -> None:
    world.observe()
    sid = next(k for k, b in world.view.switch_branch.items() if b == "sw3")
    world.set_switch(sid, False)
    obs = world.observe()
    g = world.grid3p  # ties normalised (open)
    dead = {b for b, _ in g.nodes()} - live_buses(g, ["sw3"])
    assert dead  # sw3 feeds a lateral
    names = world.view.bus_name
    assert {names[k] for k in np.flatnonzero(~obs.energised)} == dead
    res, live = world.phase_result(), world.live_nodes()
    for i, (b, _) in enumerate(res.nodes):
        assert live[i] == (b not in dead)
        if b in dead:
            assert res.v_pu[i] == 0.0
    assert obs.load_p_mw.sum() < world.controlled(world.demand())["load_p_mw"].sum()
    world.set_switch(sid, True)
    assert world.observe().energised.all()


def test_alarms_name_node_phases(g3) -> None:
    tight = ThreePhaseWorld(g3, start_step=EVENING, limits=OperatingLimits(0.999, 1.001))
    tight.observe()
    al = tight.alarms
    assert "phase_undervoltage" in al or "phase_overvoltage" in al
    nodes = [n for a in al.values() for n in a["nodes"]]
    assert nodes and all(n.rsplit(".", 1)[1] in ("1", "2", "3") for n in nodes)
    wide = ThreePhaseWorld(g3, start_step=EVENING, limits=OperatingLimits(0.5, 1.5))
    wide.observe()
    assert wide.alarms == {}


def test_fault_on_a_missing_phase_is_named(world, g3) -> None:
    one = next(b for b in g3.branches if b.kind == "line" and b.phases == 1)
    have = one.t1.nodes[0]
    other = next(p for p in "abc" if "abc".index(p) + 1 != have)
    with pytest.raises(ValidationError, match=one.name):
        world.inject("fault", branch=one.name, phases=other)
    with pytest.raises(ValidationError, match="branch"):
        world.inject("fault", branch="no-such-line")
    ev = world.inject("fault", branch=one.name, phases="abc"[have - 1])
    assert ev["phases"] == [have]


def test_balanced_view_keeps_the_topology(g3) -> None:
    view = balanced_view(g3)
    g = view.grid
    assert len(g.line) == sum(b.enabled for b in g3.branches)
    assert sorted(view.switch_branch.values()) == sorted(
        b.name.lower() for b in g3.branches if b.kind == "switch"
    )
    assert int((g.switch["kind"] == 0).sum()) >= 1  # the feeder-head switch is a breaker
    z = np.array([[2 + 2j, 1 + 1j, 1 + 1j], [1 + 1j, 2 + 2j, 1 + 1j], [1 + 1j, 1 + 1j, 2 + 2j]])
    b = next(b for b in g3.branches if b.phases == 3)
    b2 = type(b)(**{**b.__dict__, "z_ohm": z})
    assert positive_sequence_z(b2) == pytest.approx(1 + 1j)
    from gridpilot.twin import Twin

    bal = Twin(g, engine="pgm").powerflow()
    unb = UnbalancedTwin(g3).powerflow(control_mode="off")
    assert bal.converged
    assert bal.losses_kw == pytest.approx(unb.losses_kw, rel=0.25)


def test_the_ties_are_open_switches_of_the_world_and_its_view(world) -> None:
    sw = world.grid.switch
    names = world.view.switch_branch
    ties = {names[int(i)] for i, c in zip(sw.ids, sw["closed"], strict=True) if not c}
    assert ties == {"sw7", "sw8"} == set(world.grid3p.meta["ties"])
    assert not any(b.endswith("_open") for b in world.view.bus_name)
    assert world.open_branches() == frozenset(ties)
    obs = world.observe()
    assert obs.energised.all() and obs.converged
    # closing a tie meshes the feeder: still solved, every node-phase live
    world.set_switch(next(k for k, b in names.items() if b == "sw7"), True)
    assert world.observe().converged and world.live_nodes().all()


def test_energised_subgrid(g3) -> None:
    en = energised_subgrid(g3, ["SW3"])
    assert en.dead and en.live.isdisjoint(en.dead)
    assert all(ld.terminal.bus in en.live for ld in en.grid.loads if ld.enabled)
    assert any(not ld.enabled for ld in en.grid.loads)  # the dead ones, disabled
    assert UnbalancedTwin(en.grid).powerflow().v_pu.min() > 0.5
    with pytest.raises(UnknownComponentError):
        energised_subgrid(g3, ["nope"])


def test_the_loop_runs_and_heals_on_ieee123(g3) -> None:
    world = ThreePhaseWorld(g3, start_step=EVENING)
    orch = Orchestrator(world)
    orch.run(2)
    orch.inject("fault", line=world.view.branch_line()["l60"])
    orch.step()
    dark_after_trip = int((~orch.last.energised).sum())
    orch.run(3)
    assert dark_after_trip > 0
    assert int((~orch.last.energised).sum()) < dark_after_trip  # FLISR restored a part
    assert orch.counters["steps"] == 6
    kinds = [e["kind"] for e in orch.events]
    assert "policy_error" not in kinds


def test_guard_checks_switching_plans_per_node_phase(g3) -> None:
    from gridpilot.agent.actions import Action, Plan

    world = ThreePhaseWorld(g3, start_step=NIGHT, noise=0.0)  # no head overload at night
    orch = Orchestrator(world, policies=[])
    sid = next(k for k, b in world.view.switch_branch.items() if b == "sw3")
    world.set_switch(sid, False)
    orch.run(2)
    plan = Plan(source="test", actions=[Action("switch", sid, 1.0)], reason="close sw3")
    closed = orch.last.switch_closed
    inj = world.controlled(world.demand())
    v = orch.guard.check(plan, switch_closed=closed, injections=inj)
    assert v.ok, v.reasons
    assert "simulated per node-phase in the three-phase twin" in v.checks
    npf = v.after["node_phase"]
    assert npf["vmin_node_phase"].rsplit(".", 1)[1] in ("1", "2", "3")
    assert 0.9 < npf["vmin_node_phase_pu"] <= npf["vmax_node_phase_pu"] < 1.1
    # a band the re-energised lateral's node-phases cannot meet: refused, naming one
    reasons, _ = orch.guard.phase.check(
        closed, ~np.zeros_like(closed), inj, inj, (0.999, 1.001), 0.0
    )
    assert reasons and any("node-phase" in r for r in reasons)


def test_customer_meters_report_signed_rows_per_phase(g3) -> None:
    world = ThreePhaseWorld(g3, start_step=EVENING)
    orch = Orchestrator(world, meters=True)
    n_meters = world.meters.feeder_load.size
    assert n_meters == sum(ld.kind == "load" and ld.enabled for ld in g3.loads)
    orch.run(16)  # one 15-minute interval
    assert orch.counters["meter_rows"] == n_meters
    assert orch.counters["meter_frames_rejected"] == 0
    assert not {"non_technical_loss", "theft_suspected"} & set(orch.alarms)


def test_tampered_meters_report_less(g3) -> None:
    world = ThreePhaseWorld(g3, start_step=EVENING)
    world.inject_theft([0, 5], 0.5)
    for _ in range(15):
        world.observe()
        world.advance()
    m = world.meters
    assert m.e_true[0] > 0
    assert m.e_rep[[0, 5]] == pytest.approx(0.5 * m.e_true[[0, 5]])
    assert m.e_rep[1] == pytest.approx(m.e_true[1])
    with pytest.raises(ValidationError, match="factor"):
        world.inject_theft([1], 1.5)


def test_the_views_regulators_start_at_the_feeders_taps(g3) -> None:
    world = ThreePhaseWorld(g3, start_step=EVENING)
    t = world.grid.transformer
    assert int(np.abs(t["tap_pos"]).sum()) > 0  # ieee123's regulators boost at the evening peak
    reg1 = next(k for k, m in world.view.transformer_members.items() if m == ["reg1a"])
    tap = world.physics.taps["creg1a"]
    pos = int(t["tap_pos"][int(t.index_of(reg1)[0])])
    assert pos == round((tap - 1.0) / 0.00625)
    orch = Orchestrator(world)
    orch.run(6)
    assert orch.counters["bad_data_removed"] == 0  # the loop's model agrees with the telemetry


def test_demo_fleet_sits_on_three_phase_primary_buses(g3) -> None:
    from gridpilot.agent.world3p import fleet_buses

    view = balanced_view(g3)
    cand = fleet_buses(view, g3)
    phases: dict[str, set[int]] = {}
    for b, n in g3.nodes():
        phases.setdefault(b, set()).add(n)
    assert cand.size > 10
    for bid in cand:
        name = view.bus_name[int(bid) - 1]
        assert {1, 2, 3} <= phases[name]
        assert g3.bus_kv_ln[name] > 1.0
    world = ThreePhaseWorld(g3, start_step=EVENING)
    for table in ("generator", "storage", "ev_charger", "flex_load"):
        assert set(world.grid[table]["bus"].tolist()) <= set(cand.tolist())


def _ieee13_with_time_capcontrol():
    from gridpilot.model.importers.opendss import DssSession, grid_from_session
    from gridpilot.model.threephase.builtin import feeder_master

    s = DssSession()
    s.compile(feeder_master("ieee13"))
    s.command("edit capacitor.cap2 states=[0]")
    s.command(
        "new capcontrol.day capacitor=cap2 element=line.684611 terminal=1 type=time"
        " onsetting=8 offsetting=20 delay=30 delayoff=30"
    )
    return grid_from_session(s, "ieee13")


def test_capacitor_controls_act_on_the_worlds_clock() -> None:
    """A feeder with a CapControl builds a world (it once failed at start-up), and a time-type
    control closes its bank by day and leaves it open at night, on the world's own clock."""
    g = _ieee13_with_time_capcontrol()
    states = {}
    for label, start in (("day", 200 * 96 + 12 * 4), ("night", 200 * 96 + 2 * 4)):
        w = ThreePhaseWorld(g, start_step=start, noise=0.0, fleet=False)
        for _ in range(3):
            w.observe()
            w.advance()
        hour = int(str(w.time)[11:13])
        states[label] = (hour, w.physics.caps["cap2"])
    assert 8 <= states["day"][0] < 20 and states["day"][1] == [1], states
    assert not 8 <= states["night"][0] < 20 and states["night"][1] == [0], states


def test_the_loops_estimate_passes_the_chi_square_test(g3) -> None:
    """At the evening peak the view's estimate from clean telemetry flags nothing. Before the
    view's measurement model (sensors' model error, see ``view_sensors``), J 42 > 18.5 and bad
    data was suspected at a load whose removal leaves no estimate (kept, a critical
    measurement); before that, every step ended with 'state estimation did not converge'."""
    w = ThreePhaseWorld(g3, start_step=EVENING)
    o = Orchestrator(w)
    est = o.estimator.estimate(w.observe())
    assert est.converged and not est.removed and est.note == ""
    assert est.chi2 <= est.chi2_limit
    assert 0.9 < est.vmin_pu <= est.vmax_pu < 1.1
    o.run(2)
    assert not any("did not converge" in e["text"] for e in o.events)


def test_ieee123_lines_are_rated_from_their_conductors(g3) -> None:
    """The IEEE 123 script gives no normamps: OpenDSS's 400 A placeholder is no rating. The
    lines get their conductor's ampacity, the switches that of the lines in series."""
    from gridpilot.model.importers.opendss import DssSession
    from gridpilot.model.threephase.builtin import feeder_master

    sess = DssSession()
    sess.compile(feeder_master("ieee123"))
    sess.circuit.Lines.Name = "l115"
    assert (sess.circuit.Lines.NormAmps, sess.circuit.Lines.EmergAmps) == (400.0, 600.0)
    amps = {b.name.lower(): b.norm_amps for b in g3.branches}
    assert amps["l115"] == amps["l7"] == 530.0  # configuration 1: 336,400 26/7 ACSR
    assert amps["l1"] == 230.0  # configuration 10: 1/0 ACSR
    assert amps["sw1"] == amps["sw3"] == 530.0  # in series with the trunk
    assert amps["sw8"] == 230.0  # the one-phase tie onto bus 94's 1/0 lateral
    assert amps["l61"] == 400.0  # configuration 12 (1/0 AA cable): no figure, left as it is


def test_rate_lines_keeps_a_scripts_own_ratings() -> None:
    from gridpilot.model.importers.opendss import DssSession
    from gridpilot.model.threephase.builtin import rate_lines

    sess = DssSession()
    for cmd in (
        "new circuit.t basekv=12.47 bus1=a",
        "new linecode.c1 nphases=3 r1=0.1 x1=0.3 units=km",
        "new linecode.c2 nphases=3 r1=0.1 x1=0.3 units=km normamps=300 emergamps=350",
        "new line.x bus1=a bus2=b linecode=c1 length=1",
        "new line.y bus1=b bus2=c linecode=c2 length=1",
        "new line.s bus1=c bus2=d switch=yes",
    ):
        sess.command(cmd)
    rated = rate_lines(sess.circuit, {"c1": 530.0, "c2": 530.0})
    assert rated == {"x": 530.0, "s": 300.0}  # y keeps its own; s as the line in series
    sess.circuit.Lines.Name = "y"
    assert sess.circuit.Lines.NormAmps == 300.0


def test_the_loop_relieves_the_trunk_at_the_demo_start(g3) -> None:
    """The demo's start (10 June 16:00, the feeder at its full load): the trunk's phase A is
    above its 530 A; the loop sees the worst phase in its view and relieves it."""
    from gridpilot.agent.cli import DEMO_START_STEP

    world = ThreePhaseWorld(g3, start_step=DEMO_START_STEP, noise=0.0)
    l7 = world.view.branch_line()["l7"]
    k = int(world.grid.line.index_of(l7)[0])
    assert world.unbalance[k] > 1.1  # phase A carries well above the mean of the phases
    assert world.grid.line["max_i_ka"][k] == pytest.approx(0.530 / world.unbalance[k])
    orch = Orchestrator(world)
    orch.run(3)
    first, last = orch.obs_history[0], orch.last
    assert first.max_loading_pct > 105.0  # before the loop acts
    assert last.max_loading_pct <= 100.0


def test_a_switched_capacitor_in_a_dead_section_is_no_error(g3) -> None:
    """A capacitor whose state changed (its control switched it) and whose section then goes
    dark: the dark section's twin has no stamp for it (ieee8500's capbank1c behind a fault)."""
    world = ThreePhaseWorld(g3, start_step=NIGHT, noise=0.0, fleet=False)
    s = world.field.solver
    pos = {n: i for i, n in enumerate(s.nodes)}
    sid = next(
        k for k, b in world.view.switch_branch.items()
        if not s.energised({b: False})[pos[("92", 3)]]
    )  # fmt: skip
    world.physics.caps["c92c"] = [0]  # switched off since the full state was compiled
    world.set_switch(sid, False)
    obs = world.observe()
    assert obs.converged and not obs.energised[world.view.bus_name.index("92")]
