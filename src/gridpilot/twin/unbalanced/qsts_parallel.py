"""QSTS split over workers: several runs (feeders, scenarios) or one long run cut into time
chunks, on any executor with ``submit(fn, *args)`` returning a future with ``result()``
(a ``dask.distributed.Client``, a ``concurrent.futures`` pool), as the hosting study does.

Time chunks are an approximation: each chunk after the first starts from the grid's
initial taps and capacitor states with idle control timers, then runs ``warmup_steps``
steps before its first recorded one so that the controls settle (the previous chunk's
last state is not known yet when it starts). Regulator and capacitor operations near a
chunk boundary can therefore differ from one long run; ``bench/qsts_dask.py`` measures it.
Voltage, loss and loading statistics are merged exactly (min, max, sums, concatenation).

Each worker runs the same twin as the one-process run (:func:`~.inverters.twin_for`): a grid
with an enabled InvControl runs as an :class:`~.inverters.InverterTwin`, its smart inverters
on their curves (the InvControls travel with the grid; ``controls`` replaces them, as
``InverterTwin(grid, controls=...)`` does, and ``inverters=False`` leaves them out on
purpose). The inverters have no state across steps besides the warm start of their control
iterations, so a chunk's warm-up re-settles them with the regulators and capacitors.
Anything else is refused, never ignored: an argument that is not a three-phase grid, or a
warm-up where the compiled engine cannot run (see :func:`~.qsts.run_qsts`).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from typing import Any

import numpy as np

from gridpilot.errors import ValidationError
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.model.threephase.inverters import InverterControl
from gridpilot.twin.unbalanced.qsts import QstsOptions
from gridpilot.twin.unbalanced.qsts_stats import QstsResult


def qsts_part(
    grid: ThreePhaseGrid,
    opts: QstsOptions,
    controls: list[InverterControl] | None = None,
    inverters: bool = True,
) -> QstsResult:
    """One QSTS run on a fresh twin of ``grid`` (what each worker runs): the twin a
    one-process study runs (:func:`~.inverters.twin_for`, the grid's smart inverters
    included unless ``inverters=False``)."""
    from gridpilot.twin.unbalanced.inverters import twin_for
    from gridpilot.twin.unbalanced.qsts import run_qsts

    _check_grid(grid)
    return run_qsts(twin_for(grid, controls=controls, inverters=inverters), opts)


def _check_grid(grid: object) -> None:
    if not isinstance(grid, ThreePhaseGrid):
        raise ValidationError(
            f"grid: a ThreePhaseGrid is carried to the workers (a twin is not: pass its grid "
            f"and, for its own inverter controls, controls=), got {type(grid).__name__}"
        )


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
        tap_series=_series(results, "tap_series"),
        cap_series=_series(results, "cap_series"),
        inverter_p_kw=_series(results, "inverter_p_kw"),
        inverter_q_kvar=_series(results, "inverter_q_kvar"),
    )


def _series(results: list[QstsResult], attr: str) -> dict[str, np.ndarray]:
    """Per-step series (``keep_taps``) of consecutive chunks joined; empty unless every
    chunk has the same ones."""
    first = getattr(results[0], attr)
    if not first or any(set(getattr(r, attr)) != set(first) for r in results):
        return {}
    return {k: np.concatenate([getattr(r, attr)[k] for r in results]) for k in first}


def qsts_on(  # noqa: PLR0913
    executor: Any,
    grid: ThreePhaseGrid,
    opts: QstsOptions,
    parts: int = 2,
    warmup_steps: int = 96,
    controls: list[InverterControl] | None = None,
    inverters: bool = True,
) -> QstsResult:
    """One long run as ``parts`` time chunks on ``executor``, merged (see module docstring);
    ``elapsed_s`` is the wall time of the whole. ``controls``/``inverters``: as
    :func:`qsts_part`."""
    _check_grid(grid)
    t0 = time.perf_counter()
    futures = [
        executor.submit(qsts_part, grid, o, controls, inverters)
        for o in time_chunks(opts, parts, warmup_steps)
    ]
    return merge([f.result() for f in futures], time.perf_counter() - t0)


def qsts_many(
    executor: Any, runs: list[tuple[ThreePhaseGrid, QstsOptions]], inverters: bool = True
) -> list[QstsResult]:
    """Independent runs (feeders, scenarios) on ``executor``, results in order (each with
    its grid's smart inverters unless ``inverters=False``)."""
    for g, _ in runs:
        _check_grid(g)
    futures = [executor.submit(qsts_part, g, o, None, inverters) for g, o in runs]
    return [f.result() for f in futures]
