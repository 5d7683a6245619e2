"""State estimation on case33bw: accuracy with 1 % noise, bad data found and removed, errors."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.errors import ValidationError
from gridpilot.estimation import (
    Measurements,
    PowerSensorKind,
    RobustEstimate,
    StateEstimator,
    estimate_robust,
    measurements_from_powerflow,
)
from gridpilot.estimation.robust import RemovedMeasurement
from gridpilot.twin import Twin


def _meas(grid, pf, seed: int) -> Measurements:
    noisy, _ = measurements_from_powerflow(
        grid,
        pf,
        v_bus_ids=grid.bus.ids,
        line_from_ids=[1, 18, 22, 25],
        rng=np.random.default_rng(seed),
    )
    return noisy


def test_exact_measurements_reproduce_the_power_flow(setup) -> None:
    grid, pf, se = setup
    _, true = measurements_from_powerflow(grid, pf, v_bus_ids=grid.bus.ids)
    res = se.estimate(true)
    assert res.converged
    assert res.max_error_pu(pf.v_pu) < 1e-8
    assert res.chi2 < 1e-6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_percent_noise_within_5_milli_pu(setup, seed: int) -> None:
    grid, pf, se = setup
    res = se.estimate(_meas(grid, pf, seed))
    assert res.converged
    assert res.max_error_pu(pf.v_pu) < 0.005
    assert not res.bad_data_suspected  # clean data passes the chi-square test (these seeds)
    assert res.dof == _meas(grid, pf, seed).n_scalar - (2 * len(grid.bus) - 1)


def test_hat_matrix_trace_equals_number_of_states(setup) -> None:
    grid, pf, se = setup
    m = _meas(grid, pf, 0)
    k = se.diag_sensitivity(m)
    assert k.shape == (m.n_scalar,)
    assert np.all((k >= 0) & (k <= 1))
    # trace(K) = number of state variables (2n - 1) for WLS
    assert abs(k.sum() - (2 * len(grid.bus) - 1)) < 1.0


@pytest.mark.parametrize("seed", [0, 3])
def test_gross_voltage_error_identified_and_removed(setup, seed: int) -> None:
    grid, pf, se = setup
    m = _meas(grid, pf, seed)
    m.v_pu[17] += 0.08  # bus 18 reads 8 % high
    rep = estimate_robust(se, m)
    assert isinstance(rep, RobustEstimate)  # the same type as the three-phase estimator's
    assert rep.first.bad_data_suspected
    assert rep.removed_labels[0] == "V bus 18"
    bad = rep.removed[0]
    assert isinstance(bad, RemovedMeasurement) and bad.row == 17 and bad.source == ""
    assert bad.normalised_residual > 3.0 and bad.residual > 0.0  # read 8 % high
    assert len(rep.chi2_history) == len(rep.removed) + 1
    assert rep.chi2_history[0] == rep.first.chi2 and rep.chi2_history[-1] == rep.result.chi2
    assert not rep.result.bad_data_suspected
    assert rep.result.max_error_pu(pf.v_pu) < 0.005
    assert rep.measurements.v_pu.size == m.v_pu.size - 1


def test_gross_flow_error_identified(setup) -> None:
    grid, pf, se = setup
    m = _meas(grid, pf, 1)
    j = int(np.flatnonzero((m.p_kind == PowerSensorKind.LINE_FROM) & (m.p_element_id == 22))[0])
    m.p_mw[j] += 25 * m.p_sigma_mw[j]
    rep = estimate_robust(se, m)
    assert rep.removed_labels[0] == "P line_from 22"
    assert not rep.result.bad_data_suspected


def test_clean_data_removes_nothing(setup) -> None:
    grid, pf, se = setup
    rep = estimate_robust(se, _meas(grid, pf, 0))
    assert rep.removed == []


def test_bus_injection_sensors_equivalent_to_load_sensors(setup) -> None:
    grid, pf, se = setup
    _, true = measurements_from_powerflow(grid, pf, v_bus_ids=grid.bus.ids)
    load = true.p_kind == PowerSensorKind.LOAD
    bus_ids = grid.load["bus"][grid.load.index_of(true.p_element_id[load])]
    m = Measurements(
        true.v_bus_id,
        true.v_pu,
        true.v_sigma_pu,
        np.where(load, PowerSensorKind.BUS, true.p_kind),
        np.where(load, 0, true.p_element_id),
        true.p_mw,
        true.q_mvar,
        true.p_sigma_mw,
        true.q_sigma_mvar,
    )
    m.p_element_id[load] = bus_ids
    res = se.estimate(m)
    assert res.max_error_pu(pf.v_pu) < 1e-6


def test_bad_input_named(setup) -> None:
    _grid, _pf, se = setup
    with pytest.raises(ValidationError, match="unknown bus"):
        se.estimate(Measurements(v_bus_id=[999], v_pu=[1.0], v_sigma_pu=[0.01]))
    with pytest.raises(ValidationError, match="sigmas must be positive"):
        Measurements(v_bus_id=[1], v_pu=[1.0], v_sigma_pu=[0.0])
    with pytest.raises(ValidationError, match="NaN"):
        Measurements(v_bus_id=[1], v_pu=[np.nan], v_sigma_pu=[0.01])
    with pytest.raises(ValidationError, match="voltage sensor"):
        se.estimate(
            Measurements(
                p_kind=[0],
                p_element_id=[2],
                p_mw=[0.1],
                q_mvar=[0.0],
                p_sigma_mw=[0.01],
                q_sigma_mvar=[0.01],
            )
        )
    with pytest.raises(ValidationError, match="unknown load"):
        se.estimate(
            Measurements(
                v_bus_id=[1],
                v_pu=[1.0],
                v_sigma_pu=[0.01],
                p_kind=[0],
                p_element_id=[77],
                p_mw=[0.1],
                q_mvar=[0.0],
                p_sigma_mw=[0.01],
                q_sigma_mvar=[0.01],
            )
        )


def test_unobservable_reports_not_converged(setup) -> None:
    _grid, _pf, se = setup
    res = se.estimate(Measurements(v_bus_id=[1], v_pu=[1.0], v_sigma_pu=[0.01]))
    # one voltage and nothing else: PGM either refuses (not converged) or returns a flat profile;
    # either way the result says so honestly (no silent garbage)
    assert (not res.converged) or res.dof < 0


def test_grid_with_transformers_generators_and_storage() -> None:
    from gridpilot.model import load_grid

    g = load_grid("cigre-mv")
    pf = Twin(g).powerflow()
    noisy, _ = measurements_from_powerflow(g, pf, v_bus_ids=g.bus.ids, rng=np.random.default_rng(0))
    assert {PowerSensorKind.GENERATOR, PowerSensorKind.STORAGE} <= set(noisy.p_kind.tolist())
    se = StateEstimator(g)
    res = se.estimate(noisy)
    assert res.converged and res.max_error_pu(pf.v_pu) < 0.005 and not res.bad_data_suspected
    noisy.v_pu[5] += 0.08
    rep = estimate_robust(se, noisy)
    assert rep.removed_labels == [f"V bus {g.bus.ids[5]}"]


def test_chi2_limit_is_the_chi_square_quantile(setup) -> None:
    from scipy.stats import chi2

    grid, pf, se = setup
    res = se.estimate(_meas(grid, pf, 0))
    assert res.dof > 1
    assert res.chi2_limit == pytest.approx(chi2.ppf(1 - se.alpha, res.dof), rel=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gross_voltage_error_at_every_bus(setup, seed: int) -> None:
    """+0.08 pu at any bus: never an error from inside power-grid-model (bus 19 with seed 0
    and bus 2 with seed 1 used to raise PowerGridBatchError); either the bad reading is the
    one removed and the result passes, or the report says why it could not be."""
    grid, pf, se = setup
    clean = _meas(grid, pf, seed)
    missed = []
    for b in range(len(grid.bus)):
        m = clean.copy()
        m.v_pu[b] += 0.08
        rep = estimate_robust(se, m)  # a non-Gridpilot exception fails the test
        assert rep.result.converged
        if rep.removed_labels[:1] == [f"V bus {grid.bus.ids[b]}"]:
            assert rep.result.max_error_pu(pf.v_pu) < 0.01
        else:
            missed.append(int(grid.bus.ids[b]))
            assert rep.note or not rep.result.bad_data_suspected, (b, rep.removed_labels)
    assert len(missed) <= 2, missed  # identified at (almost) every bus


def test_unidentifiable_bad_data_is_reported(setup, monkeypatch) -> None:
    grid, pf, se = setup
    m = _meas(grid, pf, 0)
    m.v_pu[17] += 0.08
    monkeypatch.setattr(
        se, "residual_sensitivity", lambda m, rows: np.full((len(rows), len(rows)), np.nan)
    )
    rep = estimate_robust(se, m)
    assert rep.removed == [] and rep.result.bad_data_suspected
    assert "could not be computed" in rep.note and "V bus 18" in rep.note
