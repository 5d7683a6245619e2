"""Branch conductor currents four rows at a time (:mod:`gridpilot.twin.unbalanced.branchcur`)
against the row-by-row complex sum, bit for bit."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import njit

from gridpilot.model.builtin import load_grid
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.branchcur import BranchGroups, branch_groups
from gridpilot.twin.unbalanced.lanes import lane_i2


@njit(cache=True)
def _all(br: BranchGroups, v: np.ndarray) -> None:
    vf = v.view(np.float64)
    for g in range(len(br.row0)):
        lane_i2(vf, br.col, br.yr, br.yi, br.i2, br.start[g], br.start[g + 1], br.row0[g])


def _rowwise(m: sp.csr_matrix, v: np.ndarray) -> np.ndarray:
    """|I|² of each row summed term by term in CSR order, as the scalar loop did."""
    out = np.zeros(m.shape[0])
    for r in range(m.shape[0]):
        i = 0j
        for k in range(m.indptr[r], m.indptr[r + 1]):
            i += complex(m.data[k]) * complex(v[m.indices[k]])
        out[r] = i.real * i.real + i.imag * i.imag
    return out


def _grouped_rows(rng: np.random.Generator, n: int) -> sp.csr_matrix:
    """Rows in runs sharing their columns: 3, 1, 2, 6 (a group of 4, then 2), 4, an empty
    row, a row of its own columns, then 3 again."""
    rows: list[tuple[np.ndarray, np.ndarray]] = []
    for run, width in ((3, 6), (1, 2), (2, 4), (6, 6), (4, 8), (1, 0), (1, 3), (3, 6)):
        cols = np.sort(rng.choice(n, width, replace=False))
        for _ in range(run):
            vals = rng.standard_normal(width) + 1j * rng.standard_normal(width)
            rows.append((cols, vals))
    indptr = np.concatenate([[0], np.cumsum([len(c) for c, _ in rows])])
    return sp.csr_matrix((np.concatenate([x for _, x in rows]), np.concatenate([c for c, _ in rows]),
                          indptr), shape=(len(rows), n))  # fmt: skip


def test_groups_share_columns_hold_at_most_four_rows_and_match_rowwise_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    n = 30
    m = _grouped_rows(rng, n)
    br = branch_groups(m.indptr, m.indices, m.data)
    sizes = np.diff(np.append(br.row0, m.shape[0])).tolist()
    assert sizes == [3, 1, 2, 4, 2, 4, 1, 1, 3]
    v = (rng.uniform(0.9, 1.1, n) * 7200) * np.exp(1j * rng.uniform(-np.pi, np.pi, n))
    _all(br, v)
    want = _rowwise(m, v)
    assert np.array_equal(br.i2[: m.shape[0]], want)
    assert want[m.shape[0] - 5] == 0.0  # the empty row


def test_ieee123_conductor_currents_equal_the_rowwise_sum() -> None:
    tw = UnbalancedTwin(load_grid("ieee123"))
    m = tw.net.branch_rows
    assert m is not None
    br = branch_groups(m.indptr, m.indices, m.data)
    assert len(br.row0) < m.shape[0] // 2  # three-phase lines: three rows in one group
    v = tw.powerflow().v
    _all(br, v)
    want = _rowwise(m, v)
    assert np.array_equal(br.i2[: m.shape[0]], want)
    assert np.allclose(np.sqrt(want), np.abs(m @ v), rtol=1e-12)
