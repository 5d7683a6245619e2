"""The loop's state estimation on a three-phase world: the balanced view's measurement model
(voltage sensors' model error, flow sensors' sigma of their apparent power). Clean telemetry
passes the chi-square test and nothing is removed; a forged voltage still is."""

from __future__ import annotations

import dataclasses

import pytest

from gridpilot.agent import Orchestrator, ThreePhaseWorld
from gridpilot.agent.estimating import VIEW_V_SIGMA_PU, LoopEstimator, SensorSet, view_sensors
from gridpilot.agent.world3p import three_phase_grid
from gridpilot.errors import ValidationError

EVENING = 200 * 96 + 17 * 4  # a summer day, 17:00


@pytest.fixture(scope="module")
def g13():
    return three_phase_grid("ieee13")


def _phases(g3, name: str) -> int:
    return len({n for b, n in g3.nodes() if b == name and 1 <= n <= 3})


def test_view_sensors_carry_the_views_model_error(g13) -> None:
    w = ThreePhaseWorld(g13, start_step=EVENING, noise=0.0, fleet=False)
    s = view_sensors(w.grid, w.view, g13)
    src = set(w.grid.source["bus"].tolist())
    assert len(s.v_model_sigma_pu) == len(s.v_bus_ids) and s.flow_sigma_of_s
    kinds = set()
    for bid, ms in zip(s.v_bus_ids, s.v_model_sigma_pu, strict=True):
        n = _phases(g13, w.view.bus_name[int(w.grid.bus.index_of(bid)[0])])
        want = 0.0 if bid in src else VIEW_V_SIGMA_PU[3 if n == 3 else 1]
        assert ms == want, (bid, n, ms)
        kinds.add(n)
    assert {1, 3} <= kinds  # ieee13's sensor set: one-phase and three-phase buses
    sig = LoopEstimator(w.grid, s).measurements(w.observe()).v_sigma_pu
    assert sig.min() == s.v_sigma_pu and sig.max() > 4 * s.v_sigma_pu
    # a balanced grid's default set is as before: no model error, flows' sigma of P and Q
    assert SensorSet((1,), ()).v_sigmas().tolist() == [SensorSet((1,), ()).v_sigma_pu]


def test_clean_telemetry_passes_and_a_forged_voltage_is_removed(g13) -> None:
    """Before, the balanced view read each single-phase bus's voltage at the class sigma
    (0.005 pu): clean telemetry failed the chi-square test (ieee13, noise off: J 36 > 11.3) and bad
    data was suspected at a load meter. Now nothing is flagged, and a sensor forged 0.1 pu
    high on the two-phase bus 646 is still identified and removed."""
    w = ThreePhaseWorld(g13, start_step=EVENING)
    o = Orchestrator(w)
    o.run(5)
    est = o.estimate
    assert est is not None and est.converged
    assert est.removed == [] and est.note == "" and est.chi2 <= est.chi2_limit
    assert o.counters["bad_data_removed"] == 0
    assert o.link is not None
    b646 = w.view.bus_id["646"]
    o.link.tamper_voltage(b646, 0.10)
    o.run(5)
    assert o.estimate is not None and o.estimate.removed == [f"V bus {b646}"]
    assert o.estimate.chi2 <= o.estimate.chi2_limit


def test_a_model_sigma_per_voltage_sensor_is_checked(g13) -> None:
    w = ThreePhaseWorld(g13, start_step=EVENING, noise=0.0, fleet=False)
    with pytest.raises(ValidationError, match=r"v_model_sigma_pu.*one per voltage sensor"):
        LoopEstimator(w.grid, SensorSet((1, 2), (), v_model_sigma_pu=(0.01,)))
    with pytest.raises(ValidationError, match=r"v_model_sigma_pu.*-0\.1"):
        LoopEstimator(w.grid, SensorSet((1,), (), v_model_sigma_pu=(-0.1,)))


def test_a_detected_error_the_set_cannot_place_is_kept_and_said(g13) -> None:
    """The source bus's voltage forged 0.1 pu high: the chi-square test fails, but the
    largest normalised residual falls on a measurement without which there is no estimate
    (ieee13's view has few redundant measurements): kept, and the note says so."""
    w = ThreePhaseWorld(g13, start_step=EVENING, noise=0.0, fleet=False)
    le = LoopEstimator(w.grid, view_sensors(w.grid, w.view, g13))
    obs = w.observe()
    v = obs.v_pu.copy()
    v[int(w.grid.bus.index_of(w.view.bus_id["sourcebus"])[0])] += 0.10
    est = le.estimate(dataclasses.replace(obs, v_pu=v))
    assert est.converged and est.removed == [] and est.chi2 > est.chi2_limit
    assert "kept, a critical measurement" in est.note
    assert le.estimate(obs).note == ""  # the same observation unforged: nothing suspected
