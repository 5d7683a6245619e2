"""Three-phase state estimation: exact with perfect sensors, observability named, bad data
removed, delayed meters, the Jacobian against finite differences, the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from gridpilot.errors import ValidationError
from gridpilot.estimation.robust import RemovedMeasurement
from gridpilot.estimation.unbalanced import (
    Case,
    RobustEstimate,
    SensorSpec,
    TruthOptions,
    UnbalancedEstimator,
    UnobservableError,
    build_linear_network,
    build_measurements,
    detectability,
    estimate_robust,
    run_case,
    state_errors,
    true_state,
)
from gridpilot.estimation.unbalanced.model import LinearNetwork
from gridpilot.estimation.unbalanced.sparse import (
    SparseNetwork,
    build_network,
    build_sparse_network,
)
from gridpilot.estimation.unbalanced.sparse_wls import SparseEstimator, estimator_for
from gridpilot.estimation.unbalanced.study import TrueState, default_gross_errors, with_gross_errors
from gridpilot.model import load_grid
from gridpilot.twin.unbalanced import UnbalancedTwin

PERFECT = SensorSpec(meter_coverage=1.0, noise=False, meter_delay_s=0.0)


@lru_cache(maxsize=4)
def _setup(name: str, delay_s: float = 0.0) -> tuple[TrueState, LinearNetwork]:
    twin = UnbalancedTwin(load_grid(name))
    ts = true_state(twin, delay_s, TruthOptions(hour=7.5, seed=0))
    return ts, build_linear_network(twin)


@pytest.mark.parametrize("name", ["ieee13", "ieee34", "ieee123"])
def test_perfect_measurements_reproduce_the_true_state(name: str) -> None:
    ts, lin = _setup(name)
    assert np.max(np.abs(lin.a_v @ ts.truth.z_now - ts.v_now) / lin.vbase_v) < 1e-6
    m = build_measurements(lin, ts.truth, PERFECT)
    res = UnbalancedEstimator(lin).estimate(m)
    err = state_errors(res, ts.v_now, int(lin.src[0]))
    assert err["v_err_max_pu"] < 1e-6, err
    assert err["angle_err_max_deg"] < 1e-4, err
    assert res.chi2 < 1e-6


def test_regulators_and_laterals_are_in_the_sensor_set() -> None:
    ts, lin = _setup("ieee123")
    m = build_measurements(lin, ts.truth, SensorSpec(meter_delay_s=0.0))
    counts = m.count_by_source()
    assert counts["head"] == 9  # V, P, Q per phase
    assert counts["reg"] == 2 * len(lin.regs) and len(lin.regs) == 9  # reg1 3-ph + 6 single
    phases = {lin.nodes[a][1] for a in lin.load_a}
    assert phases == {1, 2, 3}
    n_branches = counts["meter"] // 3 + counts["pseudo"] // 2  # V, P, Q per meter; P, Q pseudo
    assert n_branches == lin.m


def test_too_few_sensors_name_the_unobserved_loads() -> None:
    ts, lin = _setup("ieee13")
    m = build_measurements(lin, ts.truth, SensorSpec(meter_coverage=0.0, pseudo=False))
    with pytest.raises(UnobservableError) as exc:
        UnbalancedEstimator(lin).estimate(m)
    assert "not observable" in str(exc.value)
    assert any(s.startswith("load.") for s in exc.value.states)
    assert isinstance(exc.value, ValidationError)


def test_gross_errors_on_head_regulator_and_meters_are_removed() -> None:
    ts, lin = _setup("ieee123")
    m = build_measurements(lin, ts.truth, SensorSpec(meter_delay_s=0.0, seed=1))
    se = UnbalancedEstimator(lin)
    clean = se.estimate(m)
    gross = default_gross_errors(m)
    assert {g.label.split(" ")[0] for g in gross} == {"head", "reg", "meter"}
    rep = estimate_robust(se, with_gross_errors(m, gross))
    src0 = int(lin.src[0])
    first = state_errors(rep.first, ts.v_now, src0)["v_err_max_pu"]
    final = state_errors(rep.result, ts.v_now, src0)["v_err_max_pu"]
    base = state_errors(clean, ts.v_now, src0)["v_err_max_pu"]
    assert set(rep.removed_labels) == {g.label for g in gross}, rep.removed_labels
    assert isinstance(rep, RobustEstimate)  # the same type as the balanced estimator's
    assert all(isinstance(r, RemovedMeasurement) for r in rep.removed)
    assert {r.source for r in rep.removed} == {"head", "reg", "meter"}
    assert all(r.normalised_residual > 3.0 and r.row >= 0 for r in rep.removed)
    assert len(rep.chi2_history) == len(rep.removed) + 1
    assert first > 2 * base  # the gross errors did hurt
    assert final < base + 0.001  # and removing them restores the clean estimate
    assert not rep.note


def test_clean_measurements_remove_nothing_and_pass_chi_square() -> None:
    ts, lin = _setup("ieee123")
    for seed in (1, 2, 3):
        m = build_measurements(lin, ts.truth, SensorSpec(meter_delay_s=0.0, seed=seed))
        rep = estimate_robust(UnbalancedEstimator(lin), m)
        assert rep.removed_labels == [] and not rep.result.bad_data_suspected


def test_detectability_is_the_size_the_test_flags() -> None:
    ts, lin = _setup("ieee34")
    m = build_measurements(lin, ts.truth, SensorSpec(meter_delay_s=0.0, noise=False, seed=2))
    se = UnbalancedEstimator(lin)
    det = detectability(se.estimate(m))
    i = m.labels.index(next(x for x in m.labels if x.startswith("reg V")))
    assert np.isfinite(det[i])
    from gridpilot.estimation.unbalanced.lnr import normalised_residuals

    for scale, flagged in ((1.2, True), (0.8, False)):
        bad = m.copy()
        bad.value[i] += scale * det[i]
        rn = normalised_residuals(se.estimate(bad))
        assert bool(rn[i] > 3.0) is flagged, (scale, rn[i])


@pytest.mark.parametrize("seed", range(4))
def test_seeded_cases_stay_accurate_and_gross_errors_are_removed(seed: int) -> None:
    g = load_grid("ieee34")
    spec = SensorSpec(seed=seed)
    truth = TruthOptions(seed=seed, load_sigma=0.3)
    fresh = run_case(g, Case("fresh", replace(spec, meter_delay_s=0.0)), truth)
    bad = run_case(g, Case("fresh+bad", replace(spec, meter_delay_s=0.0), gross=True), truth)
    assert fresh["v_err_max_pu"] < 0.01 and fresh["angle_err_max_deg"] < 1.0
    # head and regulator errors are always identified; with several gross errors on
    # nearly critical meter rows the largest normalised residual may blame a neighbour
    # (smearing; the bench counts exact identifications), the estimate stays close
    assert set(bad["injected"][:2]) <= set(bad["removed"]), bad["removed"]
    # the removed rows take their information with them (the largest customer's P falls
    # back to its profile), so the estimate is not as good as the clean one, but it is
    # within 1 % and far better than the contaminated one
    assert bad["v_err_max_pu"] < 0.01
    assert bad["first_v_err_max_pu"] > 3 * bad["v_err_max_pu"]


def test_delayed_meters_read_the_earlier_state() -> None:
    ts, lin = _setup("ieee123", 900.0)
    m = build_measurements(lin, ts.truth, SensorSpec(noise=False, meter_coverage=1.0))
    assert m.delayed.sum() == sum(1 for s in m.source if s == "meter")
    rows = np.flatnonzero(m.delayed)
    now = m.subset(rows).evaluate(ts.truth.z_now)
    assert np.allclose(m.value[rows], m.subset(rows).evaluate(ts.truth.z_meter))
    assert np.max(np.abs(m.value[rows] - now)) > 1.0  # the loads moved (kW) in 15 min
    res = UnbalancedEstimator(lin).estimate(m)
    assert state_errors(res, ts.v_now, int(lin.src[0]))["v_err_max_pu"] > 1e-4


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_jacobian_matches_finite_differences(seed: int) -> None:
    ts, lin = _setup("ieee13")
    m = build_measurements(lin, ts.truth, SensorSpec(meter_delay_s=0.0))
    rng = np.random.default_rng(seed)
    z = ts.truth.z_now * (1 + 0.1 * (rng.standard_normal(lin.p) + 1j * rng.standard_normal(lin.p)))
    jac = m.jacobian(z)
    h = 1e-6 * np.abs(z)
    k = int(rng.integers(lin.p))
    for col, dz in ((k, h[k]), (lin.p + k, 1j * h[k])):
        zp, zm = z.copy(), z.copy()
        zp[k] += dz
        zm[k] -= dz
        fd = (m.evaluate(zp) - m.evaluate(zm)) / (2 * h[k])
        assert np.allclose(jac[:, col], fd, rtol=1e-5, atol=1e-7 * np.abs(fd).max())


def test_bad_sensor_spec_names_the_field() -> None:
    ts, lin = _setup("ieee13")
    with pytest.raises(ValidationError, match="meter_coverage"):
        build_measurements(lin, ts.truth, SensorSpec(meter_coverage=1.5))
    with pytest.raises(ValidationError, match="pseudo_sigma_frac"):
        build_measurements(lin, ts.truth, SensorSpec(pseudo_sigma_frac=0.0))


def _invoke(*args: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from gridpilot.cli import _register, app

    _register()
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.output


def test_cli_estimate_writes_every_node_phase(tmp_path) -> None:
    out = tmp_path / "nodes.csv"
    code, text = _invoke("estimate", "ieee13", "--delay", "0", "--out", str(out), "--json")
    assert code == 0, text
    s = json.loads(text)
    import pandas as pd

    df = pd.read_csv(out)
    assert len(df) == s["out_rows"] == s["node_phases"] == 41
    assert abs(df["v_err_pu"]).max() == pytest.approx(s["v_err_max_pu"], rel=1e-9)
    assert set(df["phase"]) == {1, 2, 3}
    code, text = _invoke("estimate", "ieee13", "--out", str(tmp_path / "nodes.txt"))
    assert code == 2 and "--out" in text


def test_cli_estimate_json_and_bad_input() -> None:
    code, out = _invoke("estimate", "ieee13", "--bad-data", "--json")
    assert code == 0, out
    s = json.loads(out)
    assert s["grid"] == "ieee13" and s["case"] == "delayed+bad"
    assert s["v_err_max_pu"] < 0.02 and s["injected"]
    for args, word in (
        (("ieee13", "--coverage", "1.5"), "--coverage"),
        (("ieee13", "--delay", "soon"), "--delay"),
        (("case33bw",), "three-phase"),
        (("ieee13", "--hour", "25"), "hour"),
    ):
        code, out = _invoke("estimate", *args)
        assert code == 2 and word in out and "Traceback" not in out, out


def test_a_feeder_too_large_for_the_dense_map_is_refused_by_name(monkeypatch) -> None:
    from gridpilot.estimation.unbalanced import model

    monkeypatch.setattr(model, "_DENSE_LIMIT", 100)
    twin = UnbalancedTwin(load_grid("ieee13"))
    with pytest.raises(ValidationError, match=r"ieee13: 41 node-phases × \d+ states"):
        build_linear_network(twin)


# --- the sparse model (ieee8500-sized feeders), checked against the dense one -------------


@lru_cache(maxsize=2)
def _sparse_setup(name: str) -> tuple[TrueState, LinearNetwork, SparseNetwork]:
    twin = UnbalancedTwin(load_grid(name))
    ts = true_state(twin, 900.0, TruthOptions(hour=7.5, seed=0))
    return ts, build_linear_network(twin), build_sparse_network(twin)


@pytest.mark.parametrize("name", ["ieee13", "ieee123"])
def test_sparse_rows_are_the_dense_rows_of_a(name: str) -> None:
    ts, dense, sparse = _sparse_setup(name)
    spec = SensorSpec(seed=1, delay_sigma_frac=0.25, align_delayed=True)
    md = build_measurements(dense, ts.truth, spec)
    ms = build_measurements(sparse, ts.truth, spec)
    assert ms.labels == md.labels and sp.issparse(ms.u) and not sp.issparse(md.u)
    scale = np.abs(md.u).max()
    assert np.max(np.abs(sparse.as_dense_rows(ms.u) - md.u)) < 1e-8 * scale
    assert np.max(np.abs(sparse.as_dense_rows(ms.w) - md.w)) < 1e-8 * np.abs(md.w).max()
    v = sparse.voltages(ts.truth.z_now)
    assert np.max(np.abs(v - dense.voltages(ts.truth.z_now)) / dense.vbase_v) < 1e-8
    # the delayed |V| rows' σ uses A's load columns (transposed solves here)
    assert np.allclose(ms.sigma, md.sigma, rtol=1e-9)
    assert np.allclose(ms.value, md.value, rtol=1e-7, atol=1e-6)


@pytest.mark.parametrize("name", ["ieee13", "ieee123"])
def test_sparse_estimator_equals_the_dense_one(name: str) -> None:
    ts, dense, sparse = _sparse_setup(name)
    spec = SensorSpec(seed=2, meter_delay_s=0.0)
    md = build_measurements(dense, ts.truth, spec)
    ms = build_measurements(sparse, ts.truth, spec)
    ms.value, ms.sigma = md.value.copy(), md.sigma.copy()  # the same readings
    de, se = UnbalancedEstimator(dense), SparseEstimator(sparse)
    assert se.n_free == de.free.size
    # one Gauss-Newton step from the same point: the same direction
    z = de.flat_start()
    z[dense.m] = abs(z[dense.m])
    st_d, st_s = de._linearise(md, z), se._linearise(ms, z)
    dd = st_d.direction((md.value - st_d.h) / md.sigma)
    ds = st_s.direction((ms.value - st_s.h) / ms.sigma)
    assert np.max(np.abs(dd - ds)) < 1e-6 * np.max(np.abs(dd))
    # and the same estimate (both stop at the estimator's tolerance: ~1e-7 pu apart)
    rd, rs = de.estimate(md), se.estimate(ms)
    assert np.max(np.abs(rd.v - rs.v) / dense.vbase_v) < 1e-6
    assert rs.chi2 == pytest.approx(rd.chi2, rel=1e-6) and rs.dof == rd.dof
    # K_ii at the same state: the sparse solves against the dense SVD
    k_d = de._linearise(md, rs.z).k_diag()
    assert np.max(np.abs(se._linearise(ms, rs.z).k_diag() - k_d)) < 1e-6


def test_sparse_path_removes_the_same_gross_errors() -> None:
    ts, dense, sparse = _sparse_setup("ieee123")
    spec = SensorSpec(seed=1, meter_delay_s=0.0)
    md = build_measurements(dense, ts.truth, spec)
    bad = with_gross_errors(md, default_gross_errors(md))
    ms = build_measurements(sparse, ts.truth, spec)
    ms.value, ms.sigma = bad.value.copy(), bad.sigma.copy()
    rep_d = estimate_robust(UnbalancedEstimator(dense), bad)
    rep_s = estimate_robust(SparseEstimator(sparse), ms)
    assert rep_s.removed_labels == rep_d.removed_labels and rep_d.removed_labels
    assert np.max(np.abs(rep_s.result.v - rep_d.result.v) / dense.vbase_v) < 1e-6


def test_sparse_lnr_solves_only_the_candidates(monkeypatch) -> None:
    """The sparse path computes K_ii only for the ``candidates`` largest weighted residuals,
    overall and per group (one multi-column solve per test), and removes the same rows as
    with the full diagonal, the nearly critical meter P (the 108th weighted residual) too."""
    from gridpilot.estimation.unbalanced import sparse_wls

    ts, _, sparse = _sparse_setup("ieee123")
    m = build_measurements(sparse, ts.truth, SensorSpec(seed=1, meter_delay_s=0.0))
    bad = with_gross_errors(m, default_gross_errors(m))
    solved: list[int] = []
    k_rows = sparse_wls._SparseStep.k_rows

    def counting(self: sparse_wls._SparseStep, rows: np.ndarray) -> np.ndarray:
        solved.append(len(rows))
        return k_rows(self, rows)

    monkeypatch.setattr(sparse_wls._SparseStep, "k_rows", counting)
    full = estimate_robust(SparseEstimator(sparse), bad, candidates=None)
    assert solved[0] == bad.size and min(solved) > 5  # every row, every test
    solved.clear()
    rep = estimate_robust(SparseEstimator(sparse), bad, candidates=5)
    assert rep.removed_labels == full.removed_labels and len(rep.removed) >= 2
    assert [r.row for r in rep.removed] == [r.row for r in full.removed]
    groups = len(
        {(s, k) for s, k in zip(bad.source, bad.kind.tolist(), strict=True) if s != "pseudo"}
    )
    assert len(solved) == len(rep.removed) + 1  # one multi-column solve per test
    assert all(5 <= n <= 5 * (groups + 1) < bad.size / 4 for n in solved)
    assert np.max(np.abs(rep.result.v - full.result.v) / sparse.vbase_v) < 1e-9
    with pytest.raises(ValidationError, match="candidates"):
        estimate_robust(SparseEstimator(sparse), bad, candidates=0)


def test_sparse_unobservable_loads_are_named() -> None:
    ts, _, sparse = _sparse_setup("ieee13")
    m = build_measurements(sparse, ts.truth, SensorSpec(meter_coverage=0.0, pseudo=False))
    with pytest.raises(UnobservableError) as exc:
        SparseEstimator(sparse).estimate(m)
    assert "not observable" in str(exc.value)
    assert exc.value.states and all(s.startswith("load.") for s in exc.value.states)


def test_build_network_takes_the_sparse_model_beyond_the_dense_limit(monkeypatch) -> None:
    from gridpilot.estimation.unbalanced import model, sparse

    twin = UnbalancedTwin(load_grid("ieee13"))
    assert isinstance(build_network(twin), LinearNetwork)
    monkeypatch.setattr(model, "_DENSE_LIMIT", 100)
    lin = build_network(twin)
    assert isinstance(lin, SparseNetwork)
    assert isinstance(estimator_for(lin), SparseEstimator)
    monkeypatch.setattr(sparse, "SPARSE_LIMIT", 50)
    with pytest.raises(ValidationError, match=r"ieee13: 41 node-phases \+ \d+ load branches"):
        build_network(twin)
    with pytest.raises(ValidationError, match="too large for the three-phase estimator"):
        run_case(load_grid("ieee13"), Case("fresh", SensorSpec()), TruthOptions())
    code, out = _invoke("estimate", "ieee13", "--delay", "0")
    assert code == 2 and "ieee13" in out and "too large" in out and "Traceback" not in out, out


def test_ieee8500_takes_the_sparse_model_and_its_size_is_accepted() -> None:
    from gridpilot.estimation.unbalanced.model import dense_fits
    from gridpilot.estimation.unbalanced.sparse import check_network_size

    twin = UnbalancedTwin(load_grid("ieee8500"))
    assert not dense_fits(twin)  # 8,531 × 2,357 > 5 M: the dense map is refused
    check_network_size(twin)  # but the sparse model takes it
    assert twin.net.n + twin.loads.m > 10_000
