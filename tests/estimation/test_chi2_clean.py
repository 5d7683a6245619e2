"""The chi-square test on clean data: it passes about 1 - alpha of the time and J's mean is
its degrees of freedom (case69: zero-injection buses; a small synthetic feeder: generators at
load buses, line flows, Newton-Raphson needing its continuation; ZIP loads)."""

from __future__ import annotations

import numpy as np
import pytest
from power_grid_model import CalculationMethod

from gridpilot.estimation import StateEstimator, measurements_from_powerflow
from gridpilot.model import load_balanced_grid
from gridpilot.twin import Twin

SEEDS = 40


def _clean_runs(grid, seeds: range, flows: bool) -> tuple[np.ndarray, list]:
    """J per seed and the estimates (voltage at every bus, every load and the source)."""
    pf = Twin(grid).powerflow()
    se = StateEstimator(grid)
    out = []
    for s in seeds:
        m, _ = measurements_from_powerflow(
            grid,
            pf,
            v_bus_ids=grid.bus.ids,
            line_from_ids=grid.line.ids if flows else None,
            rng=np.random.default_rng(s),
        )
        out.append(se.estimate(m))
    return np.array([r.chi2 for r in out]), out


def _assert_chi_square_calibrated(j: np.ndarray, res: list, alpha: float) -> None:
    dof = res[0].dof
    passed = float(np.mean([not r.bad_data_suspected for r in res]))
    # binomial: with alpha 0.01 over 40 seeds, below 0.9 is far outside chance
    assert passed >= 1.0 - alpha - 0.09, (passed, float(j.mean()), dof)
    # mean of a chi-square(dof) over n seeds: sd sqrt(2 dof / n)
    assert abs(float(j.mean()) - dof) < 4.0 * np.sqrt(2.0 * dof / j.size), (float(j.mean()), dof)
    assert all(r.converged and r.meta["method"] == "newton_raphson" for r in res)


@pytest.fixture(scope="module")
def case69():
    return load_balanced_grid("case69", "chi-square test")


@pytest.mark.parametrize("flows", [False, True])
def test_case69_clean_data_passes_the_chi_square_test(case69, flows: bool) -> None:
    # 20 of 69 buses have no load (zero-injection constraints: PGM fits 40 states fewer);
    # with a flow sensor on every line Newton-Raphson diverges from its cold start on most seeds
    j, res = _clean_runs(case69, range(SEEDS), flows)
    _assert_chi_square_calibrated(j, res, 0.01)


def test_small_synthetic_feeder_clean_data_passes() -> None:
    g = load_balanced_grid("synthetic:300", "chi-square test")
    j, res = _clean_runs(g, range(12), flows=True)
    assert any("continuation_solves" in r.meta for r in res)  # the case the continuation is for
    _assert_chi_square_calibrated(j, res, 0.01)


def test_zip_loads_clean_data_passes() -> None:
    g = load_balanced_grid("case69", "chi-square test")
    g.load["i_share"][:] = 0.3
    g.load["z_share"][:] = 0.4
    pf = Twin(g).powerflow()
    _, exact = measurements_from_powerflow(g, pf, v_bus_ids=g.bus.ids)
    assert StateEstimator(g).estimate(exact).chi2 < 1e-6  # the generator's truth is the model's
    j, res = _clean_runs(g, range(SEEDS), flows=False)
    _assert_chi_square_calibrated(j, res, 0.01)


def test_dof_is_measurements_less_hat_matrix_trace(case69) -> None:
    # trace(K) is the number of states the WLS fits; J's degrees of freedom m - trace(K)
    pf = Twin(case69).powerflow()
    se = StateEstimator(case69)
    m, _ = measurements_from_powerflow(
        case69, pf, v_bus_ids=case69.bus.ids, rng=np.random.default_rng(0)
    )
    res = se.estimate(m)
    k = se.diag_sensitivity(m)
    assert abs(m.n_scalar - k.sum() - res.dof) < 1.0
    assert res.dof > m.n_scalar - (2 * len(case69.bus) - 1)  # the zero-injection buses count


def test_continuation_reaches_the_newton_raphson_minimum(case69) -> None:
    pf = Twin(case69).powerflow()
    se = StateEstimator(case69)
    for seed in range(6):
        m, _ = measurements_from_powerflow(
            case69, pf, v_bus_ids=case69.bus.ids, rng=np.random.default_rng(seed)
        )
        res = se.estimate(m)
        if "continuation_solves" in res.meta:
            continue
        # a seed where the cold start converges: the continuation from the iterative-linear
        # estimate must land on the same minimum
        vs, pw, src, u_rated = se._sensors(m)
        il = se._model(vs, pw).calculate_state_estimation(
            symmetric=True, calculation_method=CalculationMethod.iterative_linear
        )
        cont = se._continued(vs, pw, il)
        assert cont is not None
        r = se._residuals(cont[0], m, src, u_rated)
        assert float(np.sum((r / res.sigma) ** 2)) == pytest.approx(res.chi2, rel=1e-4)
        return
    pytest.fail("no seed converged from the cold start")
