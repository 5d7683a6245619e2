"""A documented, seeded rooftop-PV fleet with IEEE 1547-2018 smart inverters, for feeders
that have none (ieee8500): the same fleet in the CVR run and in its baseline.

Each chosen consumer load (``share`` of them, drawn with ``seed``) gets a PV system on its
own terminal (same phases, connection and voltage), rated ``kw`` drawn uniformly in
``kw_range`` (kW, rounded to 0.5), its inverter rated ``kva_ratio`` × kW; every PV follows
the ``pv_day`` shape (a clear-sky bell, 06:00-18:00, peak at noon) and one
:class:`InverterControl` puts them all on the Category B volt-var curve (default) or
``category`` A, reactive power given day and night.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from gridpilot.errors import ValidationError
from gridpilot.model.threephase import (
    InverterControl,
    InverterRating,
    Load,
    LoadShape,
    ThreePhaseGrid,
    voltvar_curve,
)


@dataclass(frozen=True)
class FleetOptions:
    """Share of loads with PV, kW range, inverter kVA / kW, seed, volt-var category, mode."""

    share: float = 0.4
    kw_range: tuple[float, float] = (4.0, 10.0)
    kva_ratio: float = 1.1
    seed: int = 17
    category: str = "B"
    mode: str = "voltvar"

    def validate(self) -> None:
        """Raise :class:`ValidationError` naming the bad field and value."""
        if not (0.0 < self.share <= 1.0):
            raise ValidationError(f"share must be within (0, 1], got {self.share!r}")
        lo, hi = self.kw_range
        if not (0.0 < lo <= hi):
            raise ValidationError(f"kw_range must be 0 < low <= high, got {self.kw_range!r}")
        if self.kva_ratio < 1.0:
            raise ValidationError(f"kva_ratio must be >= 1, got {self.kva_ratio!r}")


def pv_day(steps: int, resolution_s: float) -> np.ndarray:
    """Clear-sky PV output (pu of rating) at the end of each step: a bell 06:00-18:00."""
    t = (np.arange(steps) + 1) * resolution_s / 3600.0 % 24.0
    return np.clip(np.sin(np.pi * (t - 6.0) / 12.0), 0.0, None) ** 1.5


def with_pv_fleet(grid: ThreePhaseGrid, steps: int, resolution_s: float = 900.0,
                  opts: FleetOptions | None = None) -> ThreePhaseGrid:  # fmt: skip
    """The grid with the seeded PV fleet and its inverter control added (see module doc)."""
    o = opts or FleetOptions()
    o.validate()
    loads = [ld for ld in grid.loads if ld.kind == "load" and ld.enabled]
    if not loads:
        raise ValidationError(f"{grid.name}: no consumer load to put PV beside")
    rng = np.random.default_rng(o.seed)
    n = max(1, round(o.share * len(loads)))
    pick = sorted(rng.choice(len(loads), n, replace=False))
    kw = np.round(rng.uniform(*o.kw_range, n) * 2) / 2
    h = resolution_s / 3600.0
    shape = LoadShape("pv_day", pv_day(steps, resolution_s), (np.arange(steps) + 1) * h, None, h)
    pvs, ratings = [], []
    for i, p in zip(pick, kw, strict=True):
        ld = loads[i]
        name = f"fleet_{ld.name}"
        pvs.append(Load(name=name, terminal=ld.terminal, phases=ld.phases, conn=ld.conn,
                        kv=ld.kv, kw=-float(p), kvar=0.0, model=1, vminpu=0.9, vmaxpu=1.1,
                        yearly="pv_day", kind="pv"))  # fmt: skip
        ratings.append(InverterRating(name, float(p) * o.kva_ratio, 0.0, float(p)))
    ctl = InverterControl("fleet", ratings, mode=o.mode, voltvar=voltvar_curve(o.category))
    return dataclasses.replace(
        grid,
        loads=[*grid.loads, *pvs],
        loadshapes={**grid.loadshapes, "pv_day": shape},
        invcontrols=[*grid.invcontrols, ctl],
    )
