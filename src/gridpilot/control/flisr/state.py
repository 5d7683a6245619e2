"""The engine's internal records: pre-fault state, a restoration region, a restoration case
and what restoring produced (shared by the engine's steps; not public)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridpilot.control.radialpf import RadialRegion
from gridpilot.control.sections import SectionState
from gridpilot.control.upstream import Upstream


@dataclass
class Prefault:
    """A pre-fault switch state: its section tree, bus voltages (pu, 0 when dead), extremes,
    transformer loadings (%), the radial sweep's calibration margins against the twin (pu, %)
    and, built on demand, the upstream model and each section's source section."""

    st: SectionState
    v_pu: np.ndarray
    vmin_pu: float
    vmax_pu: float
    max_loading_pct: float
    trafo_loading_pct: np.ndarray
    margin_v_pu: float = 0.0
    margin_loading_pct: float = 0.0
    v_complex: np.ndarray | None = None  # pre-fault bus voltages, complex pu (0 when dead)
    closed: np.ndarray | None = None  # the pre-fault switch states
    upstream: Upstream | None = None  # linear model of the grid seen from a feeder head
    source_of: np.ndarray | None = None  # per section: the source section feeding it (-1 none)


@dataclass
class Region:
    """An island's region compiled for the radial sweep: buses, branches and roots (positions),
    root voltages (pu), the switches on region branches, the transformers feeding each root and
    their loading (%) before restoring, the compiled model and branches in service."""

    buses: np.ndarray
    branches: np.ndarray
    roots: np.ndarray
    v_root: np.ndarray
    pair_sw: np.ndarray  # switch positions on region branches
    pair_br: np.ndarray  # local branch index of each
    bus_sections: np.ndarray
    root_trafo: list[np.ndarray]  # transformer positions feeding each root (LV side)
    root_trafo_pct: np.ndarray  # their loading (%) in the state before restoring the region
    model: RadialRegion  # the region compiled for the radial sweep
    in_service: np.ndarray  # region branches in service


@dataclass
class Case:
    """What a restoration search works from (fixed over re-planning)."""

    interrupted: np.ndarray
    iso: np.ndarray
    locked: np.ndarray
    pre: Prefault
    limits: tuple[float, float, float]


@dataclass
class Restoration:
    """Switch states after restoring, the switches opened/closed, shed sections, and the
    sweep's minimum voltage / maximum loading of each restored region."""

    work: np.ndarray
    opens: list[int]
    closes: list[int]
    shed: list[int]
    vmin: list[float]
    load: list[float]
