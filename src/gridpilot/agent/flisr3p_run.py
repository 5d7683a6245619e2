"""Self-healing on a three-phase feeder, end to end: the fault in the twin, the field's
protection acting on it, the control room's FLISR deciding from what protection reports.

Wired into ``gridpilot flisr`` for three-phase grids by :func:`register` (the control
package's CLI cannot import the field: they sit side by side).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import typer

from gridpilot.agent.fieldprot3p import feeder_protection
from gridpilot.control.flisr3p import Flisr3pEngine, Indications3p
from gridpilot.field.protection3p import ProtectionScheme, simulate_protection
from gridpilot.model.limits import OperatingLimits
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.twin.unbalanced.faults import Fault, fault_branch, fault_study
from gridpilot.twin.unbalanced.topology import normalise_ties

log = logging.getLogger(__name__)


def build_flisr3p(
    grid: ThreePhaseGrid, limits: OperatingLimits | None = None
) -> tuple[Flisr3pEngine, ProtectionScheme]:
    """The feeder's protection scheme (sized from the pre-fault state) and a FLISR engine
    that can represent its devices opening."""
    g = normalise_ties(grid)
    scheme = feeder_protection(g)  # the world's scheme too (gridpilot.agent.fieldprot3p)
    return Flisr3pEngine(g, limits, protection=scheme.branches()), scheme


def respond_to_fault(
    eng: Flisr3pEngine, scheme: ProtectionScheme, fault: Fault
) -> tuple[dict[str, Any], bool]:
    """Fault study, protection, FLISR: a plain-JSON report and whether the plan is verified."""
    fault_branch(eng.grid, fault)
    t0 = time.perf_counter()
    study = fault_study(eng.solver, fault, prefault=eng.prefault)
    out = simulate_protection(scheme, study)
    rec = scheme.recloser
    lockout = rec is not None and out.cleared_by == rec.name
    res = eng.respond(Indications3p(out.fpi, tuple(out.opened), lockout=lockout))
    return {
        "grid": eng.grid.name,
        "fault": fault.describe(),
        "permanent": fault.permanent,
        "fault_current_a": study.summary()["i_fault_a"],
        "protection": out.summary(),
        "flisr": res.summary(),
        "total_ms": round((time.perf_counter() - t0) * 1e3, 1),
    }, res.verified


def run_flisr3p(
    grid: ThreePhaseGrid, fault: Fault, limits: OperatingLimits | None = None
) -> tuple[dict[str, Any], bool]:
    """:func:`build_flisr3p` then :func:`respond_to_fault`."""
    fault_branch(normalise_ties(grid), fault)  # a bad fault is named before the long build
    eng, scheme = build_flisr3p(grid, limits)
    return respond_to_fault(eng, scheme, fault)


def register(app: typer.Typer) -> None:
    """Wire :func:`run_flisr3p` into ``gridpilot flisr`` for three-phase grids (no command
    of its own)."""
    from gridpilot.control import cli as control_cli

    control_cli.FLISR3P_RUNNER.clear()
    control_cli.FLISR3P_RUNNER.append(run_flisr3p)
