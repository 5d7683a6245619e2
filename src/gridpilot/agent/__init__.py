"""The orchestrator: the agent loop that watches the grid and acts on it, safely and on the record.

>>> from gridpilot.agent import Orchestrator, SimWorld, demo_grid
>>> orch = Orchestrator(SimWorld(demo_grid()), mode="autonomous")
>>> orch.inject("fault", line=7); orch.run(5)

The loop: observe (field telemetry) -> estimate -> forecast -> decide (pluggable policies) ->
:class:`SafetyGuard` (limits, never energise a fault, simulated in the twin) -> act, or
propose and wait for an operator -> :class:`AuditLog` (hash-chained SQLite).
:class:`GridEnv` is a Gymnasium-style environment over the same world and KPIs.
"""

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

__all__ = [
    "ACTION_KINDS",
    "FIELD_WORLD_FLEET",
    "MODES",
    "SCENARIOS",
    "Action",
    "AuditLog",
    "Context",
    "ContingencyResult",
    "DREventRecord",
    "FieldWorld",
    "FlexDR",
    "FlexPlanPolicy",
    "FlisrPolicy",
    "FrequencyPolicy",
    "GridEnv",
    "GuardLimits",
    "LinkReport",
    "LoopEstimate",
    "LoopEstimator",
    "MeterPath",
    "MeterStepReport",
    "N1Report",
    "Observation",
    "Orchestrator",
    "Plan",
    "Policy",
    "Proposal",
    "RenewableDropPolicy",
    "SafetyGuard",
    "ScenarioReport",
    "ScenarioSpec",
    "SensorSet",
    "SimWorld",
    "StepReport",
    "TelemetryLink",
    "Verdict",
    "VoltagePolicy",
    "batch_eval",
    "default_policies",
    "default_sensors",
    "demo_grid",
    "loop_switches",
    "n1_sweep",
    "run_many",
    "run_one",
    "run_realtime",
    "run_scenario",
    "write_n1_report",
    "write_report",
]
