"""The compiled loop's load kernels against the reference ``loads.load_current``: the
constant-PQ band precomputed per engine, the SIMD excess currents, the scatter into the
right-hand side (rows reset at their first branch end) and the statistics' gathers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from gridpilot.twin.unbalanced.branchcur import branch_groups
from gridpilot.twin.unbalanced.faststats import StatArr, _rec_loading, record
from gridpilot.twin.unbalanced.faststep import _rhs
from gridpilot.twin.unbalanced.loads import (
    VLOW_PU,
    LoadBranches,
    branch_voltages,
    load_arr,
    load_currents,
    pq_bands,
    pq_excess,
    pq_in_band,
)

MODELS = (1, 2, 4, 5, 8)


def _branches(rng: np.random.Generator, m: int, n: int, grounded: bool) -> LoadBranches:
    """``m`` load branches of every model over ``n`` nodes; some share rows, some are
    delta (both ends on nodes), some have ``vminpu`` below ``vlowpu``."""
    a = rng.integers(0, n, m)
    b = np.full(m, -1) if grounded else np.where(rng.random(m) < 0.4, rng.integers(0, n, m), -1)
    b = np.where(b == a, -1, b)
    zipv = rng.random((m, 7))
    zipv[:, :3] /= zipv[:, :3].sum(axis=1, keepdims=True)
    zipv[:, 3:6] /= zipv[:, 3:6].sum(axis=1, keepdims=True)
    zipv[:, 6] = rng.choice([0.0, 0.3], m)
    return LoadBranches(
        a=a.astype(np.int64),
        b=b.astype(np.int64),
        vbase_v=rng.choice([120.0, 277.0, 7200.0], m),
        s_va=(rng.uniform(1e3, 5e4, m) + 1j * rng.uniform(-1e4, 2e4, m)),
        model=np.resize(np.array(MODELS, np.int64), m),
        vmin_pu=rng.choice([0.3, 0.88, 0.95], m),
        vmax_pu=rng.choice([1.05, 1.1], m),
        zip=zipv,
        cvr=rng.uniform(0.0, 2.0, (m, 2)),
        load_of=np.arange(m),
        names=[f"load.l{q}" for q in range(m)],
    )


def _voltages(rng: np.random.Generator, lb: LoadBranches, k: int) -> np.ndarray:
    """Branch voltages (m, k): spread over 0 … 1.3 pu, and many within a few 1e-9 of the
    band limits (both sides of the 1e-9 margin and of the limit itself)."""
    m = lb.m
    pu = rng.uniform(0.0, 1.3, (m, k))
    lims = np.stack([np.maximum(lb.vmin_pu, VLOW_PU), lb.vmax_pu, lb.vmin_pu], axis=1)
    near = lims[np.arange(m)[:, None], rng.integers(0, 3, (m, k))]
    eps = rng.choice([-2e-9, -5e-10, -1e-12, 0.0, 1e-12, 5e-10, 2e-9], (m, k))
    pu = np.where(rng.random((m, k)) < 0.6, near * (1.0 + eps), pu)
    ang = rng.uniform(-np.pi, np.pi, (m, k))
    x = pu * lb.vbase_v[:, None] * np.exp(1j * ang)
    x[0, 0] = 0.0  # a dead branch
    return x


def _excess_ref(lb: LoadBranches, yeq: np.ndarray, x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``load_current − Yeq·V`` per branch, the product in scalar Python (numpy's SIMD
    complex product may fuse a multiply-add: other bits)."""
    i = load_currents(lb, x[:, None], s[:, None])[:, 0]
    return np.array([complex(i[q]) - complex(yeq[q]) * complex(x[q]) for q in range(lb.m)])


def _reference_rhs(lb: LoadBranches, yeq: np.ndarray, isrc: np.ndarray, x: np.ndarray,
                   s: np.ndarray) -> np.ndarray:  # fmt: skip
    comp = _excess_ref(lb, yeq, x, s)
    rhs = isrc.copy()
    for q in range(lb.m):
        rhs[lb.a[q]] -= comp[q]
        if lb.b[q] >= 0:
            rhs[lb.b[q]] += comp[q]
    return rhs


def _stats(isrc: np.ndarray) -> StatArr:
    n = len(isrc)
    e = np.zeros(0)
    return StatArr(np.ones(n), e, e, e, np.zeros((0, 3), np.int64), e, e,
                   branch_groups(np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0)), e,
                   e, e, np.zeros(0, np.int64), np.zeros((0, 0), complex), isrc, np.ones(n))  # fmt: skip


def test_bands_are_those_of_pq_in_band_and_empty_for_other_models() -> None:
    rng = np.random.default_rng(0)
    lb = _branches(rng, 200, 50, False)
    lo2, hi2 = pq_bands(lb.vbase_v, lb.model, lb.vmin_pu, lb.vmax_pu)
    x = _voltages(rng, lb, 8)
    v2 = x.real**2 + x.imag**2
    for q in range(lb.m):
        for k in range(x.shape[1]):
            inside = lo2[q] < v2[q, k] < hi2[q]
            want = lb.model[q] == 1 and pq_in_band(v2[q, k], lb.vbase_v[q], lb.vmin_pu[q], lb.vmax_pu[q])  # fmt: skip
            assert inside == want, (q, k)
    assert np.all(np.isinf(lo2[lb.model != 1])) and np.all(np.isfinite(lo2[lb.model == 1]))


def test_simd_excess_is_load_current_bit_for_bit_and_nan_outside_the_band() -> None:
    rng = np.random.default_rng(1)
    lb = _branches(rng, 400, 80, False)
    ld = load_arr(lb, lb.yeq(), 80)
    x = _voltages(rng, lb, 6)
    out = np.empty(lb.m, complex)
    fast = 0
    for k in range(x.shape[1]):
        xk = np.ascontiguousarray(x[:, k])
        pq_excess(ld.lo2, ld.hi2, xk, lb.s_va, ld.yeq, out)
        ref = _excess_ref(lb, ld.yeq, xk, lb.s_va)
        hit = ~np.isnan(out.real)
        v2 = xk.real**2 + xk.imag**2
        assert np.array_equal(hit, (v2 > ld.lo2) & (v2 < ld.hi2))
        assert np.array_equal(out[hit].view(float), ref[hit].view(float))
        fast += hit.sum()
    assert 0 < fast < x.size  # both paths taken


@pytest.mark.parametrize("grounded", [False, True])
def test_rhs_matches_the_reference_for_every_model_near_the_limits(grounded: bool) -> None:
    rng = np.random.default_rng(2 + grounded)
    n = 120
    lb = _branches(rng, 300 if not grounded else 100, n, grounded)
    if grounded:  # each branch alone on its row: the one-store scatter
        lb.a = rng.permutation(n)[: lb.m].astype(np.int64)
    ld = load_arr(lb, lb.yeq(), n)
    assert bool(ld.sole[0]) == grounded
    isrc = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    sa = _stats(isrc)
    x = _voltages(rng, lb, 5)
    rhs = np.empty(n, complex)
    for k in range(x.shape[1]):
        xk = np.ascontiguousarray(x[:, k])
        s = lb.s_va * rng.uniform(0.5, 1.5)
        ref = _reference_rhs(lb, ld.yeq, isrc, xk, s)
        _rhs(ld, sa, xk, s, rhs, True)
        assert np.array_equal(rhs.view(float), ref.view(float), equal_nan=True)
        rhs[ld.a] = 1e30  # the rows loads touch are reset by the next call
        _rhs(ld, sa, xk, s, rhs, False)
        assert np.array_equal(rhs.view(float), ref.view(float), equal_nan=True)


def test_first_touch_flags_follow_the_order_of_addition() -> None:
    lb = _branches(np.random.default_rng(4), 6, 4, False)
    lb.a = np.array([0, 1, 0, 2, 3, 1], np.int64)
    lb.b = np.array([1, -1, 2, -1, 0, 3], np.int64)
    ld = load_arr(lb, lb.yeq(), 4)
    want = [[1, 1], [0, 0], [0, 1], [0, 0], [1, 0], [0, 0]]
    assert ld.first.astype(int).tolist() == want
    assert not ld.sole[0]


def test_negative_phase_end_wraps_as_numpy_indexing_would() -> None:
    lb = _branches(np.random.default_rng(5), 3, 10, True)
    lb.a = np.array([-1, 2, 5], np.int64)
    ld = load_arr(lb, lb.yeq(), 10)
    assert ld.a.tolist() == [9, 2, 5]
    v = np.arange(10) + 1j
    out = np.empty(3, complex)
    branch_voltages(ld, v, out)
    assert np.array_equal(out, v[lb.a])


def test_loading_statistics_match_the_sparse_product() -> None:
    rng = np.random.default_rng(6)
    n, rows = 60, 40
    y = sp.random(rows, n, density=0.1, format="csr", random_state=7) * (1 + 2j)
    v = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    i = np.abs(y @ v)
    rating = np.full(rows, np.median(i))
    e = np.zeros(0)
    over, top = np.zeros(rows, np.int64), np.zeros(rows)
    sa = StatArr(np.ones(n), e, e, e, np.zeros((0, 3), np.int64), e, e,
                 branch_groups(y.indptr, y.indices, y.data), rating, over, top, np.zeros(0, np.int64), np.zeros((0, 0), complex),
                 np.zeros(n, complex), np.ones(n))  # fmt: skip
    _rec_loading(sa, v)
    assert np.allclose(top, i / rating, rtol=1e-14)
    assert over.tolist() == (i > rating).astype(int).tolist()


def test_record_losses_use_the_exact_power_inside_the_band() -> None:
    rng = np.random.default_rng(8)
    n = 50
    lb = _branches(rng, 60, n, False)
    ld = load_arr(lb, lb.yeq(), n)
    v = (rng.uniform(0.6, 1.2, n) * 277.0) * np.exp(1j * rng.uniform(-np.pi, np.pi, n))
    sa = StatArr(np.full(n, 277.0), np.full(n, np.inf), np.full(n, -1.0), np.zeros(n, np.int64),
                 np.zeros((0, 3), np.int64), np.zeros(0), np.zeros(0, np.int64),
                 branch_groups(np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0)), np.zeros(0),
                 np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64),
                 np.zeros((0, 0), complex), np.zeros(n, complex), np.full(n, 1 / 277.0**2))  # fmt: skip
    x = np.empty(lb.m, complex)
    p = record(sa, ld, lb.s_va, v, x)
    xr = v[lb.a] - np.where(lb.b >= 0, v[np.maximum(lb.b, 0)], 0.0)
    assert np.array_equal(x, xr)
    want = -np.sum(xr * np.conj(load_currents(lb, xr[:, None], lb.s_va[:, None])[:, 0]))
    assert p == pytest.approx(want.real / 1e3, rel=1e-12)
    assert np.allclose(sa.vmin, np.abs(v) / 277.0, rtol=1e-15)


@pytest.mark.parametrize("grounded", [False, True])
def test_branch_voltages_are_the_difference_of_their_ends_bit_for_bit(grounded: bool) -> None:
    rng = np.random.default_rng(9)
    n = 40
    lb = _branches(rng, 30, n, grounded)
    if grounded:
        lb.a = rng.permutation(n)[: lb.m].astype(np.int64)
    ld = load_arr(lb, lb.yeq(), n)
    assert bool(ld.sole[0]) == grounded
    v = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    v[:4] = [complex(-0.0, -0.0), complex(0.0, -0.0), complex(-0.0, 0.0), np.nan]
    out = np.empty(lb.m, complex)
    branch_voltages(ld, v, out)
    want = [
        complex(v[a]) - (complex(v[b]) if b >= 0 else 0j) for a, b in zip(lb.a, lb.b, strict=True)
    ]
    assert np.array_equal(out.view(float), np.array(want).view(float), equal_nan=True)
