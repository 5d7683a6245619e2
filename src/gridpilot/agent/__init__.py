"""The orchestrator: the agent loop that watches the grid and acts on it, safely and on the record.

>>> from gridpilot.agent import Orchestrator, SimWorld, demo_grid
>>> orch = Orchestrator(SimWorld(demo_grid()), mode="autonomous")
>>> orch.inject("fault", line=7); orch.run(5)

The loop: observe (field telemetry) -> estimate -> forecast -> decide (pluggable policies) ->
:class:`SafetyGuard` (limits, never energise a fault, simulated in the twin) -> act, or
propose and wait for an operator -> :class:`AuditLog` (hash-chained SQLite).
:class:`GridEnv` is a Gymnasium-style environment over the same world and KPIs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridpilot._lazy import lazy_exports

# public names by submodule; imported on first use (see gridpilot/_lazy.py)
_EXPORTS: dict[str, tuple[str, ...]] = {
    "actions": ("Action", "Plan"),
    "audit": ("AuditLog",),
    "contingency": ("n1_sweep",),
    "env": ("GridEnv",),
    "fieldworld": ("FieldWorld",),
    "fleet": ("demo_grid",),
    "flexlink": ("FlexDR",),
    "flexplan": ("FlexPlanPolicy",),
    "guard": ("GuardLimits", "SafetyGuard"),
    "orchestrator": ("Orchestrator", "run_realtime"),
    "policies": (
        "Context",
        "FlisrPolicy",
        "FrequencyPolicy",
        "Policy",
        "RenewableDropPolicy",
        "VoltagePolicy",
    ),
    "scenarios": ("ScenarioSpec", "run_one", "run_scenario"),
    "world": ("Observation", "SimWorld"),
    "world3p": ("ThreePhaseWorld",),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from gridpilot.agent.actions import Action, Plan
    from gridpilot.agent.audit import AuditLog
    from gridpilot.agent.contingency import n1_sweep
    from gridpilot.agent.env import GridEnv
    from gridpilot.agent.fieldworld import FieldWorld
    from gridpilot.agent.fleet import demo_grid
    from gridpilot.agent.flexlink import FlexDR
    from gridpilot.agent.flexplan import FlexPlanPolicy
    from gridpilot.agent.guard import GuardLimits, SafetyGuard
    from gridpilot.agent.orchestrator import Orchestrator, run_realtime
    from gridpilot.agent.policies import (
        Context,
        FlisrPolicy,
        FrequencyPolicy,
        Policy,
        RenewableDropPolicy,
        VoltagePolicy,
    )
    from gridpilot.agent.scenarios import ScenarioSpec, run_one, run_scenario
    from gridpilot.agent.world import Observation, SimWorld
    from gridpilot.agent.world3p import ThreePhaseWorld
