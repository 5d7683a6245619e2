"""Four rows in vector lanes (:mod:`gridpilot.twin.unbalanced.lanes`): the grouped layouts
and the sums and subtractions, bit for bit against the scalar loops they replace."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from numba import njit

from gridpilot.twin.unbalanced.lanes import (
    LANES,
    equal_groups,
    four_groups,
    grouped,
    lane_sub,
    lane_sum,
    layout,
)


@njit(cache=True)
def _run(start: np.ndarray, col: np.ndarray, yr: np.ndarray, yi: np.ndarray,
         row0: np.ndarray, v: np.ndarray, out: np.ndarray, sub: bool) -> None:  # fmt: skip
    vf = v.view(np.float64)
    for g in range(len(row0)):
        if sub:
            lane_sub(vf, col, yr, yi, out, start[g], start[g + 1], row0[g])
        else:
            lane_sum(vf, col, yr, yi, out, start[g], start[g + 1], row0[g])


def _matrix(rng: np.random.Generator, rows: int, n: int) -> sp.csr_matrix:
    """Random rows, some repeated column sets (three-phase elements), an empty row."""
    m = sp.random(rows, n, density=0.2, format="csr", random_state=int(rng.integers(1 << 30)))
    m = m.astype(complex).tolil()
    m[3] = m[2]
    m[4] = m[2] * (1 - 1j)
    m[7] = 0
    out = sp.csr_matrix(m, dtype=complex)
    out.data = out.data * (1 + 2j) + rng.standard_normal(out.nnz)
    out.sum_duplicates()
    return out


@pytest.mark.parametrize("grouping", ["equal", "four"])
def test_sums_and_subtractions_equal_the_scalar_loops_bit_for_bit(grouping: str) -> None:
    rng = np.random.default_rng(5)
    rows, n = 23, 17
    m = _matrix(rng, rows, n)
    groups = equal_groups(m.indptr, m.indices) if grouping == "equal" else four_groups(rows)
    assert all(1 <= k <= LANES for _, k in groups)
    assert [r for r, _ in groups] == sorted({r for r, _ in groups})
    start, col, yr, yi, row0 = grouped(m.indptr, m.indices, m.data, [groups])
    v = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    x0 = rng.standard_normal(rows) + 1j * rng.standard_normal(rows)
    want_sum, want_sub = np.zeros(rows, complex), x0.copy()
    for r in range(rows):
        acc = 0j
        for k in range(m.indptr[r], m.indptr[r + 1]):
            acc += complex(m.data[k]) * complex(v[m.indices[k]])
            want_sub[r] -= complex(m.data[k]) * complex(v[m.indices[k]])
        want_sum[r] = acc
    out = np.zeros(rows + LANES, complex)
    _run(start, col, yr, yi, row0, v, out, False)
    assert np.array_equal(out[:rows], want_sum)
    out = np.concatenate([x0, np.zeros(LANES, complex)])
    _run(start, col, yr, yi, row0, v, out, True)
    assert np.array_equal(out[:rows], want_sub)
    assert out[7] == x0[7]  # the empty row keeps its start value


def test_equal_groups_keep_rows_with_one_column_set_together() -> None:
    m = _matrix(np.random.default_rng(6), 12, 9)
    groups = equal_groups(m.indptr, m.indices)
    assert (2, 3) in groups  # rows 2, 3 and 4 share their columns
    assert sum(k for _, k in groups) == 12


def test_the_grouping_with_fewest_slots_is_kept() -> None:
    m = _matrix(np.random.default_rng(7), 23, 17)
    options = [equal_groups(m.indptr, m.indices), four_groups(23)]
    slots = [len(layout(m.indptr, m.indices, m.data, g)[1]) for g in options]
    assert slots[0] != slots[1]
    start, col, _, _, row0 = grouped(m.indptr, m.indices, m.data, options)
    assert len(col) == start[-1] == min(slots)
    assert row0.tolist() == [r for r, _ in options[int(np.argmin(slots))]]
