"""The Dask paths of the QSTS (``qsts_parallel``) run the grid's smart inverters as the
one-process run does (an ``InverterTwin`` per worker), or refuse clearly."""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from gridpilot.control.cvr_cli import day_shape
from gridpilot.control.cvr_fleet import FleetOptions, with_pv_fleet
from gridpilot.errors import ValidationError
from gridpilot.model.importers.opendss import DssSession, grid_from_session
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.model.threephase.builtin import feeder_master
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.inverters import InverterTwin, twin_for
from gridpilot.twin.unbalanced.qsts import QstsOptions, run_qsts
from gridpilot.twin.unbalanced.qsts_parallel import qsts_many, qsts_on, qsts_part
from gridpilot.twin.unbalanced.reference import add_shape, reset_taps

STEPS = 96  # one day of 15 min: the second chunk starts at noon, the PV at its peak
FLEET = FleetOptions(share=1.0, kw_range=(40.0, 120.0), mode="vv_vw")


@pytest.fixture(scope="module")
def grid() -> ThreePhaseGrid:
    s = DssSession()
    s.compile(feeder_master("ieee13"))
    reset_taps(s)
    add_shape(s, "day", day_shape(STEPS, 15.0), 15.0)
    return with_pv_fleet(grid_from_session(s, "ieee13"), STEPS, opts=FLEET)


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def _opts() -> QstsOptions:
    return QstsOptions(steps=STEPS, resolution_s=900.0, keep_taps=True)


def test_time_chunks_on_dask_run_the_inverters_as_one_process(grid: ThreePhaseGrid, client: Any
                                                               ) -> None:  # fmt: skip
    whole = run_qsts(InverterTwin(grid), _opts())
    plain = run_qsts(UnbalancedTwin(grid), _opts())  # what the workers ran before: Q = 0
    # 8 h of warm-up: the regulators settle where the long run has them (6 h leaves reg2 one
    # tap apart at noon, with or without inverters: the time-chunk approximation)
    split = qsts_on(client, grid, _opts(), parts=2, warmup_steps=32)
    assert split.steps == STEPS and split.warmup_steps == 32
    assert split.tap_ops == whole.tap_ops and sum(whole.tap_ops.values()) > 0
    assert split.cap_ops == whole.cap_ops
    np.testing.assert_allclose(split.vmin_pu, whole.vmin_pu, rtol=0, atol=1e-4)
    np.testing.assert_allclose(split.vmax_pu, whole.vmax_pu, rtol=0, atol=1e-4)
    # the comparison has power: without the inverters the extremes move well beyond that
    gap = max(
        np.abs(plain.vmin_pu - whole.vmin_pu).max(), np.abs(plain.vmax_pu - whole.vmax_pu).max()
    )
    assert gap > 5e-3
    assert list(split.inverter_q_kvar) == list(whole.inverter_q_kvar)
    q_split = np.array(list(split.inverter_q_kvar.values()))
    q_whole = np.array(list(whole.inverter_q_kvar.values()))
    assert q_split.shape == (len(grid.invcontrols[0].inverters), STEPS)
    assert np.max(np.abs(q_whole)) > 5.0  # volt-var acts
    # the first chunk is the one-process run; the second re-settled during its warm-up
    half = STEPS // 2
    np.testing.assert_array_equal(q_split[:, :half], q_whole[:, :half])
    kvar = 5e-3 * max(r.kva for r in grid.invcontrols[0].inverters)
    np.testing.assert_allclose(q_split, q_whole, rtol=0, atol=kvar)
    np.testing.assert_allclose(split.losses_kw, whole.losses_kw, rtol=1e-3, atol=0.05)


def test_independent_runs_carry_inverters_and_their_options(grid: ThreePhaseGrid) -> None:
    g2 = dataclasses.replace(grid, name="ieee13_b")
    ctl = [dataclasses.replace(c, mode="voltvar") for c in grid.invcontrols]
    with ThreadPoolExecutor(2) as ex:
        many = qsts_many(ex, [(grid, _opts()), (g2, _opts())])
        off = qsts_many(ex, [(grid, _opts())], inverters=False)
        own = qsts_on(ex, grid, _opts(), parts=1, controls=ctl)
    ref = run_qsts(InverterTwin(grid), _opts())
    for r in many:
        assert r.tap_ops == ref.tap_ops
        np.testing.assert_array_equal(r.vmax_pu, ref.vmax_pu)
    assert off[0].inverter_q_kvar == {}  # left out on request
    np.testing.assert_array_equal(off[0].vmax_pu, run_qsts(UnbalancedTwin(grid), _opts()).vmax_pu)
    vv = run_qsts(InverterTwin(grid, controls=ctl), _opts())
    np.testing.assert_array_equal(own.vmax_pu, vv.vmax_pu)


def test_the_grid_with_its_inverters_survives_the_trip_to_a_worker(grid: ThreePhaseGrid) -> None:
    back = pickle.loads(pickle.dumps(grid))
    tw = twin_for(back)
    assert isinstance(tw, InverterTwin) and tw.inv.names == InverterTwin(grid).inv.names
    assert back.invcontrols[0].voltvar == grid.invcontrols[0].voltvar


def test_what_cannot_be_carried_is_refused(grid: ThreePhaseGrid) -> None:
    with ThreadPoolExecutor(1) as ex, pytest.raises(ValidationError, match="ThreePhaseGrid"):
        qsts_on(ex, InverterTwin(grid), _opts())  # type: ignore[arg-type]
    py = dataclasses.replace(_opts(), engine="python", warmup_steps=4)
    with pytest.raises(ValidationError, match="warmup_steps=4 needs the compiled"):
        qsts_part(grid, py)
