"""The loop on the IEEE 8500-node feeder (issue #17): a few steps of the three-phase world,
its node-phase alarms, and a fault answered by the unbalanced FLISR through the guard."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.agent import Orchestrator, ThreePhaseWorld
from gridpilot.agent.world3p import three_phase_grid
from gridpilot.estimation import PowerSensorKind
from gridpilot.twin import is_radial

pytestmark = pytest.mark.slow  # the feeder's import and first compile take ~10 s

EVENING = 200 * 96 + 17 * 4  # a summer day, 17:00
FAULT = "ln6108142-1"  # the trunk line just behind switch v9111_48332_sw


@pytest.fixture(scope="module")
def loop():
    world = ThreePhaseWorld(
        three_phase_grid("ieee8500"), start_step=EVENING, noise=0.0, fleet=False
    )
    orch = Orchestrator(world)
    orch.run(1)
    alarms = dict(world.alarms)
    orch.inject("fault", branch=FAULT)
    orch.step()
    dark = int((~orch.last.energised).sum())
    orch.run(1)
    return world, orch, alarms, dark


def test_the_view_is_radial_with_its_capacitor_lines_merged(loop) -> None:
    world, *_ = loop
    g = world.view.grid
    assert is_radial(g, world.normal_closed)
    # ieee8500 connects each capacitor through three one-phase lines: one view line
    merged = world.view.merged_lines
    assert {"cap_1b", "cap_1c"} <= set(merged)
    lines = world.view.branch_line()
    assert lines["cap_1a"] == lines["cap_1b"] == lines["cap_1c"] == merged["cap_1b"]


def test_alarms_are_per_node_phase(loop) -> None:
    world, orch, alarms, _ = loop
    assert "phase_undervoltage" in alarms  # the evening peak: secondaries below 0.95 pu
    nodes = alarms["phase_undervoltage"]["nodes"]
    bus, phase = nodes[0].rsplit(".", 1)
    assert phase in ("1", "2") and bus in world.view.bus_id  # a split-phase secondary's leg
    assert any(e["kind"] == "alarm" and "node-phase" in e["text"] for e in orch.events)


def test_a_fault_gets_the_unbalanced_flisr_through_the_guard(loop) -> None:
    world, orch, _, dark = loop
    rows = [r for r in orch.audit.entries(kind="action") if r["actor"] == "policy:flisr"]
    assert rows, [e["text"] for e in orch.events if e["kind"] in ("refused", "protection")]
    row = rows[-1]
    assert row["why"].startswith("three-phase FLISR")
    assert "simulated per node-phase in the three-phase twin" in row["verdict"]["checks"]
    assert not [e for e in orch.events if e["kind"] == "refused" and "flisr" in e["text"]]
    after = int((~orch.last.energised).sum())
    assert dark > 4000  # the head recloser locked out: the whole feeder dark
    assert 0 < after < dark / 2  # isolated and reclosed: the faulted section only
    ends = world.view.branch_line()[FAULT]
    assert ends in row["data"]["faulted_lines"]


def test_the_first_estimate_removes_nothing(loop) -> None:
    """Clean telemetry at the evening peak: the first estimate flags no bad data. Before the
    view's measurement model (bench/se8500_capacitor.py), J 84.9 > 32.0 and a capacitor's
    entry was removed ("P load 1184"; "P load 1187" earlier): single-phase buses' voltages
    read at the class sigma, the head flow's Q sigma 1 % of a compensated, small |Q|."""
    _, orch, *_ = loop
    first = [e for e in orch.events if e["kind"] == "bad_data" and e["t"] == 0]
    assert orch.counters["se_runs"] >= 1 and first == []
    # the head flow's sigma is of its apparent power (a meter's class), P and Q alike
    s = orch.estimator.sensors
    m = orch.estimator.measurements(orch.last)
    f = m.p_kind == PowerSensorKind.LINE_FROM
    want = s.flow_rel_sigma * np.hypot(m.p_mw[f], m.q_mvar[f])
    assert f.any() and s.flow_sigma_of_s
    np.testing.assert_allclose(m.p_sigma_mw[f], want)
    np.testing.assert_allclose(m.q_sigma_mvar[f], want)
