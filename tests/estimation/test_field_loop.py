"""The loop field -> readings -> measurements -> state estimation, against the field's truth."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.estimation import StateEstimator, estimate_robust, measurements_from_meters
from gridpilot.field import FieldSimulator, FleetConfig


@pytest.fixture(scope="module")
def field(case33):
    sim = FieldSimulator(case33, FleetConfig(seed=5), meter_interval_s=900, seed=5, engine="pgm")
    for _ in range(30):  # to 07:30, morning peak
        sim.step(900)
        r = sim.readings()
    return sim, r


def _meas(sim, r, **kw):
    f = sim.fleet
    m = r.meters
    s = r.sensors
    return measurements_from_meters(
        sim.grid,
        sim.grid.load.ids[f.meter_load[m.meter]],
        m.p_kw,
        m.q_kvar,
        m.v_pu,
        meter_scale=f.meter_scale[m.meter],
        source_p_mw=s["source_p_mw"],
        source_q_mvar=s["source_q_mvar"],
        source_v_pu=s["source_v_pu"],
        line_ids=sim.sensor_line_ids,
        line_p_mw=s["line_p_mw"],
        line_q_mvar=s["line_q_mvar"],
        **kw,
    )


def test_estimate_from_field_readings_matches_truth(field) -> None:
    sim, r = field
    m = _meas(sim, r)
    assert m.v_pu.size == len(sim.grid.bus)  # every bus has meters (or the source sensor)
    res = StateEstimator(sim.grid).estimate(m)
    assert res.converged
    assert res.max_error_pu(sim.truth()["v_pu"]) < 0.005
    assert not res.bad_data_suspected
    # aggregated meter powers are close to the loads' true powers (1 % meter noise averages out)
    lp = m.p_mw[: len(sim.grid.load)]
    assert np.allclose(lp, sim.truth()["load_p_mw"], rtol=0.02, atol=1e-4)


def test_biased_feeder_sensor_is_removed(field) -> None:
    sim, r = field
    m = _meas(sim, r)
    j = int(np.flatnonzero(m.p_kind == 3)[0])  # the source's P
    m.p_mw[j] *= 1.3
    rep = estimate_robust(StateEstimator(sim.grid), m)
    assert rep.first.bad_data_suspected
    assert rep.removed_labels == ["P source 1"]
    assert not rep.result.bad_data_suspected
    assert rep.result.max_error_pu(sim.truth()["v_pu"]) < 0.005
