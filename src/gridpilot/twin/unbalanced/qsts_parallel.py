"""QSTS split over workers: several runs (feeders, scenarios) or one long run cut into time
chunks, on any executor with ``submit(fn, *args)`` returning a future with ``result()``
(a ``dask.distributed.Client``, a ``concurrent.futures`` pool), as the hosting study does.

Time chunks are an approximation: each chunk after the first starts from the grid's
initial taps and capacitor states with idle control timers, then runs ``warmup_steps``
steps before its first recorded one so that the controls settle (the previous chunk's
last state is not known yet when it starts). Regulator and capacitor operations near a
chunk boundary can therefore differ from one long run; ``bench/qsts_dask.py`` measures it.
Voltage, loss and loading statistics are merged exactly (min, max, sums, concatenation).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from typing import Any

import numpy as np

from gridpilot.errors import ValidationError
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.twin.unbalanced.qsts import QstsOptions
from gridpilot.twin.unbalanced.qsts_stats import QstsResult


def qsts_part(grid: ThreePhaseGrid, opts: QstsOptions) -> QstsResult:
    """One QSTS run on a fresh twin of ``grid`` (what each worker runs)."""
    from gridpilot.twin.unbalanced.qsts import run_qsts
    from gridpilot.twin.unbalanced.twin import UnbalancedTwin

    return run_qsts(UnbalancedTwin(grid), opts)


def time_chunks(opts: QstsOptions, parts: int, warmup_steps: int) -> list[QstsOptions]:
    """``opts`` cut into ``parts`` consecutive runs; each after the first starts
    ``warmup_steps`` earlier (not recorded) to settle its controls."""
    if parts < 1 or warmup_steps < 0:
        raise ValidationError(
            f"parts must be >= 1 and warmup_steps >= 0, got {parts!r}, {warmup_steps!r}"
        )
    bounds = np.linspace(0, opts.steps, min(parts, opts.steps) + 1).round().astype(int)
    out = []
    for a, b in itertools.pairwise(bounds):
        out.append(
            dataclasses.replace(
                opts,
                steps=int(b - a),
                start_h=opts.start_h + a * opts.resolution_s / 3600.0,
                warmup_steps=min(warmup_steps, int(a)) if a else 0,
            )
        )
    return out


def merge(results: list[QstsResult], elapsed_s: float) -> QstsResult:
    """Consecutive chunks of one run as one result (extremes, sums, concatenations)."""
    if not results:
        raise ValidationError("merge: no results")
    r0 = results[0]

    def total(attr: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in results:
            for k, n in getattr(r, attr).items():
                out[k] = out.get(k, 0) + n
        return out

    return dataclasses.replace(
        r0,
        steps=sum(r.steps for r in results),
        vmin_pu=np.min([r.vmin_pu for r in results], axis=0),
        vmax_pu=np.max([r.vmax_pu for r in results], axis=0),
        hours_outside_a=np.sum([r.hours_outside_a for r in results], axis=0),
        vuf_max_pct=np.max([r.vuf_max_pct for r in results], axis=0),
        vuf_hours_above_2pct=np.sum([r.vuf_hours_above_2pct for r in results], axis=0),
        losses_kw=np.concatenate([r.losses_kw for r in results]),
        tap_ops=total("tap_ops"),
        cap_ops=total("cap_ops"),
        overload_hours=np.sum([r.overload_hours for r in results], axis=0),
        max_loading=np.max([r.max_loading for r in results], axis=0),
        elapsed_s=elapsed_s,
        factorisations=sum(r.factorisations for r in results),
        iterations=sum(r.iterations for r in results),
        setup_s=max(r.setup_s for r in results),
        warmup_steps=sum(r.warmup_steps for r in results),
        tap_series={},
        cap_series={},
    )


def qsts_on(
    executor: Any, grid: ThreePhaseGrid, opts: QstsOptions, parts: int = 2, warmup_steps: int = 96
) -> QstsResult:
    """One long run as ``parts`` time chunks on ``executor``, merged (see module docstring);
    ``elapsed_s`` is the wall time of the whole."""
    t0 = time.perf_counter()
    futures = [executor.submit(qsts_part, grid, o) for o in time_chunks(opts, parts, warmup_steps)]
    return merge([f.result() for f in futures], time.perf_counter() - t0)


def qsts_many(executor: Any, runs: list[tuple[ThreePhaseGrid, QstsOptions]]) -> list[QstsResult]:
    """Independent runs (feeders, scenarios) on ``executor``, results in order."""
    futures = [executor.submit(qsts_part, g, o) for g, o in runs]
    return [f.result() for f in futures]
