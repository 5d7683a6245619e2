"""QSTS over Dask: 2 local worker processes against one process, same runs, one script.

Two workloads, both through ``gridpilot.twin.unbalanced.qsts_parallel`` (any executor with
``submit``; here a ``dask.distributed`` LocalCluster of 2 single-threaded workers):

* ``scenarios``: independent runs (the feeder under several load scalings), serial in this
  process, then one task per run on the cluster; results must be identical.
* ``time_chunks``: one long run cut into 2 time chunks, the second starting ``--warmup``
  steps early from the grid's initial taps (the approximation, see the module): wall time
  against the serial run, and the tap/capacitor operation counts and voltage extremes of
  both (``ops_gap``: how far the approximation moves the counts).

The cluster start and a warm-up task per worker (numba cache load) are timed apart.
``--pv SHARE`` adds the seeded PV fleet (``control.cvr_fleet``: SHARE of the loads, Category B
volt-var InvControl): every run, serial or on a worker, is then an ``InverterTwin``
(``inverters`` in the rows counts the controlled PV; ``kvar_max`` the largest reactive power
the chunked run's inverters gave, 0 where they were ignored).

    .venv/bin/python bench/qsts_dask.py --grid ieee123 --steps 2880 --json
    .venv/bin/python bench/qsts_dask.py --grid ieee123 --steps 2880 --pv 0.4 --json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import Any

import numpy as np

from gridpilot.control.cvr_fleet import FleetOptions, with_pv_fleet
from gridpilot.model.importers.opendss import DssSession, grid_from_session
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.model.threephase.builtin import feeder_master
from gridpilot.twin.unbalanced.qsts import QstsOptions
from gridpilot.twin.unbalanced.qsts_parallel import qsts_many, qsts_on, qsts_part
from gridpilot.twin.unbalanced.reference import add_shape, reset_taps


class _Serial:
    """An executor that runs each task at once in this process."""

    class _Done:
        def __init__(self, value: Any) -> None:
            self.value = value

        def result(self) -> Any:
            return self.value

    def submit(self, fn: Any, *args: Any) -> _Done:
        return self._Done(fn(*args))


def _grid(
    name: str, steps: int, minutes: float, scale: float = 1.0, pv: float = 0.0
) -> ThreePhaseGrid:
    """The feeder with the bench's synthetic shape (daily + noise) on every load (and the
    PV fleet with its volt-var InvControl on a share ``pv`` of them)."""
    t = np.arange(steps) * minutes / 60.0
    rng = np.random.default_rng(1)
    mult = scale * (0.55 + 0.35 * np.sin(2 * np.pi * (t - 8) / 24) ** 2)
    mult = mult + 0.06 * rng.standard_normal(steps)
    s = DssSession()
    s.compile(feeder_master(name))
    reset_taps(s)
    add_shape(s, "bench", mult, minutes)
    g = grid_from_session(s, name)
    return with_pv_fleet(g, steps, minutes * 60.0, FleetOptions(share=pv)) if pv > 0 else g


def _ops(r: Any) -> int:
    return int(sum(r.tap_ops.values()) + sum(r.cap_ops.values()))


def main(argv: list[str] | None = None) -> None:
    """Run both workloads serially and on 2 Dask workers; print one JSON row each."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default="ieee123")
    ap.add_argument("--steps", type=int, default=2880)
    ap.add_argument("--resolution", type=float, default=15.0, help="minutes")
    ap.add_argument("--warmup", type=int, default=96, help="warm-up steps of later chunks")
    ap.add_argument("--pv", type=float, default=0.0, help="share of loads with volt-var PV")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from dask.distributed import Client, LocalCluster

    from gridpilot.agent.scenarios import WORKER_ENV

    opts = QstsOptions(steps=args.steps, resolution_s=args.resolution * 60.0)
    grids = [
        _grid(args.grid, args.steps, args.resolution, k, args.pv) for k in (0.8, 1.0, 1.2, 1.4)
    ]
    n_inv = sum(len(c.inverters) for c in grids[0].invcontrols)
    if n_inv:  # the chunked run keeps its per-step series: the inverters' kvar
        opts = dataclasses.replace(opts, keep_taps=True)
    serial = _Serial()
    qsts_part(grids[0], dataclasses.replace(opts, steps=2))  # warm this process
    t0 = time.perf_counter()
    one = qsts_many(serial, [(g, opts) for g in grids])
    t_serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    whole = qsts_part(grids[1], opts)
    t_whole = time.perf_counter() - t0
    t0 = time.perf_counter()
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, env=WORKER_ENV
    )
    client = Client(cluster)
    try:
        warm = [client.submit(qsts_part, grids[0], dataclasses.replace(opts, steps=2), pure=False)
                for _ in range(2)]  # fmt: skip
        client.gather(warm)
        t_start = time.perf_counter() - t0
        t0 = time.perf_counter()
        many = qsts_many(client, [(g, opts) for g in grids])
        t_many = time.perf_counter() - t0
        split = qsts_on(client, grids[1], opts, parts=2, warmup_steps=args.warmup)
    finally:
        client.close()
        cluster.close()
    rows = [
        {
            "workload": "scenarios", "grid": args.grid, "runs": len(grids), "steps": args.steps,
            "inverters": n_inv,
            "one_process_s": round(t_serial, 3), "dask_2_workers_s": round(t_many, 3),
            "speedup": round(t_serial / t_many, 2), "cluster_start_s": round(t_start, 2),
            "identical": all(a.tap_ops == b.tap_ops and np.array_equal(a.vmin_pu, b.vmin_pu)
                             for a, b in zip(one, many, strict=True)),
        },
        {
            "workload": "time_chunks", "grid": args.grid, "steps": args.steps, "inverters": n_inv,
            "kvar_max": round(max((float(np.abs(q).max()) for q in split.inverter_q_kvar.values()),
                                  default=0.0), 2),
            "warmup_steps": args.warmup, "one_process_s": round(t_whole, 3),
            "dask_2_workers_s": round(split.elapsed_s, 3),
            "speedup": round(t_whole / split.elapsed_s, 2),
            "ops_one_process": _ops(whole), "ops_chunked": _ops(split),
            "ops_gap_pct": round(100 * abs(_ops(split) - _ops(whole)) / max(_ops(whole), 1), 2),
            "extremes_max_gap_pu": float(max(np.abs(split.vmin_pu - whole.vmin_pu).max(),
                                             np.abs(split.vmax_pu - whole.vmax_pu).max())),
            "losses_gap_kwh": round(abs(float(split.losses_kw.sum() - whole.losses_kw.sum()))
                                    * args.resolution / 60.0, 3),
        },
    ]  # fmt: skip
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
