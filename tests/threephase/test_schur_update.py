"""The low-rank update of the Schur inverse after control actions (schur_update.py)
against the exact inverse: single- and three-phase regulators, capacitor steps, several
stamps at once, a long run of updates, the exact fallbacks."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.model import load_grid
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.fastctl import Stamps, restamp
from gridpilot.twin.unbalanced.qsts_fast import engine
from gridpilot.twin.unbalanced.schur import SchurLU, publish, schur_solve
from gridpilot.twin.unbalanced.schur_update import REFRESH, schur_exact, update_schur


def _exact(st: Stamps, f: SchurLU) -> np.ndarray:
    """The exact inverse at the present stamps, ``f`` left as it was."""
    keep, yl, nup = f.sinv.copy(), st.yl.copy(), int(f.nup[0])
    schur_exact(st, f)
    out = f.sinv.copy()
    f.sinv[:, :], st.yl[:, :, :], f.nup[0] = keep, yl, nup
    publish(f)
    return out


def _move(st: Stamps, e: int, rng: np.random.Generator) -> None:
    """A random tap step (transformer) or step toggle (capacitor) of stamp ``e``."""
    if st.kind[e] == 0:
        w = int(rng.integers(0, st.wind[e, : st.nc[e]].max() + 1))
        st.taps[e, w] = np.clip(st.taps[e, w] + 0.00625 * rng.choice([-1, 1]), 0.9, 1.1)
    else:
        k = int(rng.integers(0, st.nsteps[e]))
        st.state[e, k] = 1 - st.state[e, k]
    restamp(st, e)


@pytest.fixture(scope="module", params=["ieee123", "ieee8500"])
def eng(request: pytest.FixtureRequest) -> tuple[Stamps, SchurLU]:
    e = engine(UnbalancedTwin(load_grid(request.param)))
    return e.st, e.f


def _close(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_each_stamp_alone_matches_the_exact_inverse(eng: tuple[Stamps, SchurLU]) -> None:
    st, f = eng
    rng = np.random.default_rng(0)
    schur_exact(st, f)
    for e in range(len(st.kind)):
        _move(st, e, rng)
        update_schur(st, f)
        assert _close(f.sinv, _exact(st, f)) < 1e-11, f"stamp {e}"
        assert np.array_equal(st.yl, st.y)  # the inverse holds every stamp as it is


def test_a_long_run_of_mixed_updates_stays_exact_and_refreshes(
    eng: tuple[Stamps, SchurLU],
) -> None:
    st, f = eng
    rng = np.random.default_rng(1)
    schur_exact(st, f)
    worst, refreshed = 0.0, False
    for _ in range(3 * REFRESH):
        for e in rng.choice(len(st.kind), size=int(rng.integers(1, 3)), replace=False):
            _move(st, int(e), rng)
        before = int(f.nup[0])
        update_schur(st, f)
        refreshed |= before > 0 and int(f.nup[0]) == 0
        assert int(f.nup[0]) <= REFRESH
        worst = max(worst, _close(f.sinv, _exact(st, f)))
    assert worst < 1e-10
    assert refreshed


def test_the_solve_reads_the_present_inverse_after_every_update(
    eng: tuple[Stamps, SchurLU],
) -> None:
    """The solve's Schur part reads ``sinv`` as published in vector lanes (schur.publish):
    after each low-rank or exact update it is ``sinv·z`` of the present inverse."""
    st, f = eng
    rng = np.random.default_rng(4)
    schur_exact(st, f)
    n = len(f.nk) + len(f.kn)
    rhs = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    out = np.zeros(n, complex)
    for _ in range(REFRESH + 4):
        _move(st, int(rng.integers(0, len(st.kind))), rng)
        update_schur(st, f)
        schur_solve(f, rhs, out)
        want = f.sinv @ f.zk[: len(f.kq)]
        assert _close(out[f.kn], want) < 1e-13


def test_no_change_leaves_the_inverse_and_many_nodes_take_the_exact_path(
    eng: tuple[Stamps, SchurLU],
) -> None:
    st, f = eng
    schur_exact(st, f)
    f.sinv[0, 0] += 1.0  # a marker: an update with nothing changed must not touch sinv
    update_schur(st, f)
    assert f.nup[0] == 0
    f.sinv[0, 0] -= 1.0
    rng = np.random.default_rng(2)
    for e in range(len(st.kind)):  # every stamp at once: over half of K, the exact inverse
        _move(st, e, rng)
    update_schur(st, f)
    assert f.nup[0] == 0
    np.testing.assert_array_equal(f.sinv, _exact(st, f))
