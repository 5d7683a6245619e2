"""Per-device set points of a DR event (gridpilot.flex.event_setpoints)."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.errors import UnknownComponentError, ValidationError
from gridpilot.flex import (
    Event,
    OptOut,
    Program,
    dispatch_event,
    event_setpoints,
    generate_fleet,
    shed_potential,
)

SHED = Program("shed")


@pytest.fixture(scope="module")
def fleet(case33):
    return generate_fleet(case33, days=2, seed=3)


def _limits_ok(fleet, plan) -> None:
    """Every set point inside its device's hard limits."""
    b = fleet.batteries
    k = np.searchsorted(b.id, plan.device_ids["battery"])
    assert np.all(np.abs(plan.p_mw["battery"]) <= b.p_max_mw[k] + 1e-12)
    w = fleet.water_heaters
    k = np.searchsorted(w.id, plan.device_ids["water_heater"])
    p = plan.p_mw["water_heater"]
    assert np.all(p >= -1e-12) and np.all(p <= w.p_rated_mw[k] + 1e-12)
    e = fleet.ev
    pmax = np.zeros(int(e.ev.max()) + 1)
    pmax[e.ev] = e.p_max_mw
    v2g = np.zeros(pmax.size, bool)
    v2g[e.ev] = e.v2g
    p = plan.p_mw["ev"]
    cars = plan.device_ids["ev"]
    assert np.all(np.abs(p) <= pmax[cars] + 1e-12)
    assert np.all(p[:, ~v2g[cars]] >= -1e-12)  # only V2G cars discharge
    assert plan.limit_violations == 0  # state of charge / comfort band along the way


def test_feasible_target_is_met_within_limits(fleet):
    e = Event("s1", SHED, 74, 4, target_mw=0.3)
    plan = event_setpoints(fleet, e, 70)
    assert plan.target_met is True
    assert np.allclose(plan.reduction_mw, 0.3, atol=1e-3)
    assert plan.short_mw.max() < 1e-3
    # the set points add up to the expected reduction against each device's own baseline
    tot = sum((plan.baseline_mw[c] - plan.p_mw[c]).sum(axis=1) for c in plan.p_mw)
    assert np.allclose(tot, plan.reduction_mw, atol=1e-9)
    _limits_ok(fleet, plan)
    # the same dispatch as dispatch_event (they share it)
    rep = dispatch_event(fleet, e, 70, 10)
    assert np.allclose(rep.reduction_mw[rep.in_event], plan.reduction_mw, atol=1e-9)
    s = plan.summary()
    assert s["participants"]["water_heater"] == len(fleet.water_heaters)
    assert s["participants"]["ev"] == np.unique(fleet.ev.ev).size


def test_infeasible_target_is_reported_short(fleet):
    room = shed_potential(fleet, 74, 4)
    e = Event("s2", SHED, 74, 4, target_mw=float(room.max()) * 3)
    plan = event_setpoints(fleet, e, 74)
    assert plan.target_met is False
    assert np.all(plan.short_mw > 0)
    # everyone at their floor: the reduction is the whole room
    assert np.allclose(plan.reduction_mw, plan.room_mw, rtol=1e-6)
    assert np.allclose(plan.room_mw, room, rtol=1e-6)
    for c in plan.p_mw:
        assert np.allclose(plan.p_mw[c], plan.floor_mw[c], atol=1e-9)
    _limits_ok(fleet, plan)


def test_opted_out_and_untargeted_devices_are_left_alone(fleet):
    wh = fleet.water_heaters.id[:6].tolist()
    bus = int(fleet.batteries.bus[0])
    e = Event("s3", SHED, 76, 2, target_mw=0.01, devices={"water_heater": wh}, buses=[bus])
    outs = [OptOut("s3", "water_heater", wh[0]), OptOut("other", "water_heater", wh[1])]
    plan = event_setpoints(fleet, e, 76, outs)
    assert wh[0] not in plan.device_ids["water_heater"].tolist()
    assert wh[1] in plan.device_ids["water_heater"].tolist()
    assert plan.opted_out["water_heater"].tolist() == [wh[0]]
    at_bus = fleet.batteries.id[fleet.batteries.bus == bus]
    assert sorted(plan.device_ids["battery"].tolist()) == sorted(at_bus.tolist())
    assert set(plan.device_ids["ev"].tolist()) == set(fleet.ev.ev[fleet.ev.bus == bus].tolist())


def test_bad_input_is_a_clear_error(fleet):
    with pytest.raises(UnknownComponentError, match="battery device 424242"):
        event_setpoints(
            fleet, Event("b1", SHED, 74, 4, target_mw=0.1, devices={"battery": [424242]}), 70
        )
    with pytest.raises(UnknownComponentError, match="bus 999"):
        event_setpoints(fleet, Event("b2", SHED, 74, 4, target_mw=0.1, buses=[999]), 70)
    with pytest.raises(ValidationError, match="outside"):
        event_setpoints(fleet, Event("b3", SHED, 60, 4, target_mw=0.1), 70)
    with pytest.raises(UnknownComponentError, match="opt-out"):
        event_setpoints(
            fleet,
            Event("b4", SHED, 74, 4, target_mw=0.1),
            70,
            [OptOut("b4", "ev", 10**6)],
        )
    with pytest.raises(ValidationError, match="steps"):
        shed_potential(fleet, 74, 0)


def test_a_battery_baseline_of_its_own_shrinks_its_room(fleet):
    import copy

    own = copy.deepcopy(fleet)
    own.batteries.p_base_mw = -0.5 * own.batteries.p_max_mw  # self-consumption discharge
    e = Event("s5", SHED, 74, 1, target_mw=1e3, devices={"battery": fleet.batteries.id.tolist()})
    idle = event_setpoints(fleet, e, 74)
    busy = event_setpoints(own, e, 74)
    k = np.searchsorted(own.batteries.id, busy.device_ids["battery"])
    assert np.allclose(busy.baseline_mw["battery"][0], own.batteries.p_base_mw[k])
    assert np.allclose(idle.baseline_mw["battery"][0], 0.0)
    # the same floor (full discharge), so half the room
    assert np.allclose(busy.p_mw["battery"], idle.p_mw["battery"])
    assert busy.reduction_mw[0] == pytest.approx(0.5 * idle.reduction_mw[0], rel=1e-6)
