"""The hosting-capacity study: per critical hour, settle the feeder's controls, estimate
every candidate's limit from sensitivities, then find it exactly with batched solves."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gridpilot.errors import ValidationError
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.twin.hosting.checks import base_exempt, flag_names
from gridpilot.twin.hosting.feeder import Feeder, phase_nodes
from gridpilot.twin.hosting.newton import Chord
from gridpilot.twin.hosting.options import HostingOptions, Scenario
from gridpilot.twin.hosting.search import Base, search
from gridpilot.twin.hosting.sensitivity import estimate_kw

log = logging.getLogger(__name__)
BASE_MAX_ITER = 200  # the critical hour's own power flow (ieee8500 at peak load: > 30)


@dataclass
class HostingResult:
    """Hosting capacity per node-phase (kW of DER rating, multiples of ``step_kw``), the
    check that stops it one step higher and in which critical hour, and the first-pass
    estimate; ``elapsed_s`` the study's wall time."""

    grid: str
    der: str
    nodes: list[tuple[str, int]]
    hc_kw: np.ndarray
    estimate_kw: np.ndarray
    limit: list[str]
    scenario: list[str]
    scenarios: list[Scenario]
    step_kw: float
    max_kw: float
    elapsed_s: float
    rounds: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """One row per node-phase: bus, phase, hc_kw, limit, scenario, estimate_kw."""
        return pd.DataFrame(
            {
                "bus": [b for b, _ in self.nodes],
                "phase": [k for _, k in self.nodes],
                "hc_kw": self.hc_kw,
                "limit": self.limit,
                "scenario": self.scenario,
                "estimate_kw": np.round(self.estimate_kw, 1),
            }
        )

    def summary(self) -> dict[str, Any]:
        """The study in numbers (JSON-ready)."""
        lim = pd.Series(self.limit).value_counts().to_dict()
        return {
            "grid": self.grid,
            "der": self.der,
            "nodes": len(self.nodes),
            "hc_kw_min": float(self.hc_kw.min(initial=0)),
            "hc_kw_median": float(np.median(self.hc_kw)) if len(self.hc_kw) else 0.0,
            "hc_kw_max": float(self.hc_kw.max(initial=0)),
            "limits": {str(k): int(v) for k, v in lim.items()},
            "scenarios": [s.__dict__ for s in self.scenarios],
            "step_kw": self.step_kw,
            "max_kw": self.max_kw,
            "rounds": self.rounds,
            **self.meta,
            "elapsed_s": round(self.elapsed_s, 3),
        }


def settle_base(fd: Feeder, sc: Scenario) -> Base:
    """The feeder at a critical hour: from the grid's own taps and capacitor states,
    OpenDSS's static controls settle them with no added DER; they stay frozen there for the
    study of that hour."""
    fd.reset_controls()
    opts = fd.twin.opts  # the study's columns stop early; the hour itself must converge
    fd.twin.opts = dataclasses.replace(opts, max_iter=BASE_MAX_ITER)
    try:
        res = fd.twin.powerflow(control_mode="static", load_mult=sc.load_mult)
    finally:
        fd.twin.opts = opts
    s = fd.twin.base_powers(sc.load_mult)
    fd.twin.recentre(res.v, s[:, 0])
    chord = Chord(fd.twin, res.v, s)
    return Base(s=s, v=res.v, measure=fd.measure(res.v[:, None]), der_pu=sc.der_pu, chord=chord)


def hosting_capacity(
    grid: ThreePhaseGrid,
    scenarios: list[Scenario],
    opts: HostingOptions | None = None,
    nodes: list[tuple[str, int]] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> HostingResult:
    """Hosting capacity (kW) of every node-phase in ``nodes`` (default: all phases 1-3 of
    energised buses) for ``opts.der`` at each critical hour; the smallest over the hours.

    Raises :class:`ValidationError` for a node-phase the grid lacks or a limit outside
    0-2 pu."""
    opts = opts or HostingOptions()
    opts.validate()
    if not scenarios:
        raise ValidationError("hosting capacity needs at least one critical scenario")
    for sc in scenarios:
        if not (0 < sc.der_pu <= 1.5) or not (0 <= sc.load_mult <= 10):
            raise ValidationError(
                f"scenario {sc.label!r}: der_pu must be in (0, 1.5] and load_mult in [0, 10], "
                f"got {sc.der_pu!r}, {sc.load_mult!r}"
            )
    t0 = time.perf_counter()
    nodes = list(nodes) if nodes is not None else phase_nodes(grid)
    fd = Feeder(grid, nodes)
    n = len(nodes)
    hc = np.full(n, np.inf)
    est_all = np.full(n, np.inf)
    limit = [""] * n
    which = [""] * n
    rounds = 0
    total = len(scenarios) * max(1, -(-n // opts.chunk))
    done = 0
    exempt: dict[str, dict[str, int]] = {}
    for sc in scenarios:
        base = settle_base(fd, sc)
        exempt[sc.label] = base_exempt(base.measure, opts)
        for c0 in range(0, n, opts.chunk):
            cols = np.arange(c0, min(c0 + opts.chunk, n))
            est, dv_per_w = estimate_kw(fd, base.v, cols, sc.der_pu, opts, base.chord)
            lo, flags, r = search(fd, base, cols, est, opts, dv_per_w, hc[cols])
            rounds += r
            for j, c in enumerate(cols):
                est_all[c] = min(est_all[c], est[j])
                if lo[j] < hc[c]:
                    hc[c] = lo[j]
                    limit[c] = flag_names(int(flags[j])) or "max_kw"
                    which[c] = sc.label
            done += 1
            if progress:
                progress(done, total)
    return HostingResult(grid.name, opts.der, nodes, hc, est_all, limit, which, list(scenarios),
                         opts.step_kw, opts.max_kw, time.perf_counter() - t0, rounds,
                         {"base_violations_left_out": exempt})  # fmt: skip
