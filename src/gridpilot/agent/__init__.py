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
    "actions": ("ACTION_KINDS", "Action", "Plan"),
    "audit": ("AuditLog",),
    "contingency": ("ContingencyResult", "N1Report", "n1_sweep", "write_n1_report"),
    "env": ("GridEnv",),
    "estimating": ("LoopEstimate", "LoopEstimator", "SensorSet", "default_sensors"),
    "fieldworld": ("FIELD_WORLD_FLEET", "FieldWorld"),
    "fleet": ("demo_grid",),
    "flexlink": ("DREventRecord", "FlexDR"),
    "flexplan": ("FlexPlanPolicy",),
    "guard": ("GuardLimits", "SafetyGuard", "Verdict"),
    "meters": ("MeterPath", "MeterStepReport"),
    "orchestrator": ("MODES", "Orchestrator", "Proposal", "StepReport", "run_realtime"),
    "policies": (
        "Context",
        "FlisrPolicy",
        "FrequencyPolicy",
        "Policy",
        "RenewableDropPolicy",
        "VoltagePolicy",
        "batch_eval",
        "default_policies",
        "loop_switches",
    ),
    "scenarios": (
        "SCENARIOS",
        "ScenarioReport",
        "ScenarioSpec",
        "run_many",
        "run_one",
        "run_scenario",
        "write_report",
    ),
    "telemetry_link": ("LinkReport", "TelemetryLink"),
    "world": ("Observation", "SimWorld"),
    "world3p": ("ThreePhaseWorld",),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from gridpilot.agent.actions import ACTION_KINDS, Action, Plan
    from gridpilot.agent.audit import AuditLog
    from gridpilot.agent.contingency import ContingencyResult, N1Report, n1_sweep, write_n1_report
    from gridpilot.agent.env import GridEnv
    from gridpilot.agent.estimating import LoopEstimate, LoopEstimator, SensorSet, default_sensors
    from gridpilot.agent.fieldworld import FIELD_WORLD_FLEET, FieldWorld
    from gridpilot.agent.fleet import demo_grid
    from gridpilot.agent.flexlink import DREventRecord, FlexDR
    from gridpilot.agent.flexplan import FlexPlanPolicy
    from gridpilot.agent.guard import GuardLimits, SafetyGuard, Verdict
    from gridpilot.agent.meters import MeterPath, MeterStepReport
    from gridpilot.agent.orchestrator import MODES, Orchestrator, Proposal, StepReport, run_realtime
    from gridpilot.agent.policies import (
        Context,
        FlisrPolicy,
        FrequencyPolicy,
        Policy,
        RenewableDropPolicy,
        VoltagePolicy,
        batch_eval,
        default_policies,
        loop_switches,
    )
    from gridpilot.agent.scenarios import (
        SCENARIOS,
        ScenarioReport,
        ScenarioSpec,
        run_many,
        run_one,
        run_scenario,
        write_report,
    )
    from gridpilot.agent.telemetry_link import LinkReport, TelemetryLink
    from gridpilot.agent.world import Observation, SimWorld
    from gridpilot.agent.world3p import ThreePhaseWorld
