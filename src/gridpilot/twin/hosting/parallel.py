"""The same study split over workers: node-phases in contiguous parts, each part a full
:func:`hosting_capacity` run on its worker (its own twin), results merged in node order.
``executor`` is anything with ``submit(fn, *args)`` returning a future with ``result()``:
a :class:`concurrent.futures.ThreadPoolExecutor` (the kernels release the GIL) or
``ProcessPoolExecutor``, or a ``dask.distributed.Client``."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from gridpilot.errors import ValidationError
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.twin.hosting.feeder import check_nodes, phase_nodes
from gridpilot.twin.hosting.options import HostingOptions, Scenario
from gridpilot.twin.hosting.study import HostingResult, hosting_capacity


def hosting_capacity_on(
    executor: Any,
    grid: ThreePhaseGrid,
    scenarios: list[Scenario],
    opts: HostingOptions | None = None,
    nodes: list[tuple[str, int]] | None = None,
    parts: int = 2,
) -> HostingResult:
    """:func:`hosting_capacity` of every node-phase, in ``parts`` tasks on ``executor``;
    returns the merged :class:`HostingResult` (``elapsed_s``: wall time of the whole)."""
    if parts < 1:
        raise ValidationError(f"parts must be >= 1, got {parts!r}")
    opts = opts or HostingOptions()
    opts.validate()
    t0 = time.perf_counter()
    nodes = list(nodes) if nodes is not None else phase_nodes(grid)
    check_nodes(grid, nodes)
    split = [list(p) for p in np.array_split(np.arange(len(nodes)), parts) if len(p)]
    futures = [
        executor.submit(hosting_capacity, grid, scenarios, opts, [nodes[i] for i in idx])
        for idx in split
    ]
    results = [f.result() for f in futures]
    meta = dict(results[0].meta) if results else {}
    return HostingResult(
        grid=grid.name,
        der=opts.der,
        nodes=[nd for r in results for nd in r.nodes],
        hc_kw=np.concatenate([r.hc_kw for r in results]),
        estimate_kw=np.concatenate([r.estimate_kw for r in results]),
        limit=[x for r in results for x in r.limit],
        scenario=[x for r in results for x in r.scenario],
        scenarios=list(scenarios),
        step_kw=opts.step_kw,
        max_kw=opts.max_kw,
        elapsed_s=time.perf_counter() - t0,
        rounds=sum(r.rounds for r in results),
        meta={**meta, "parts": len(results)},
    )
