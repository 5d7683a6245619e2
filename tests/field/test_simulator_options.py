"""The field simulator's settings as one parameter object (issue #15)."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.errors import ValidationError
from gridpilot.field import FleetConfig
from gridpilot.field.simulator import FieldSimulator, SimulatorOptions
from gridpilot.model import load_grid


def test_options_object_and_keywords_give_the_same_simulator() -> None:
    g = load_grid("case33bw")
    fleet = FleetConfig(n_devices=500)
    opts = SimulatorOptions(seed=4, sensor_bus_ids="all", meter_interval_s=300)
    a = FieldSimulator(g, fleet, opts)
    b = FieldSimulator(g, fleet, seed=4, sensor_bus_ids="all", meter_interval_s=300)
    c = FieldSimulator(g, fleet, SimulatorOptions(seed=9), seed=4, sensor_bus_ids="all")
    for sim in (a, b, c):
        sim.step(60)
    assert a.meter_interval_s == b.meter_interval_s == 300 and c.meter_interval_s == 900
    assert np.array_equal(a.sensor_bus_ids, b.sensor_bus_ids)
    assert np.allclose(a.truth()["load_p_mw"], b.truth()["load_p_mw"])
    assert np.allclose(a.truth()["load_p_mw"], c.truth()["load_p_mw"])  # seed 4 overrides 9
    with pytest.raises(ValidationError, match="meter_interval_s"):
        SimulatorOptions(meter_interval_s=0)
    with pytest.raises(ValidationError, match="meter_interval_s"):
        FieldSimulator(g, fleet, meter_interval_s=-5)
