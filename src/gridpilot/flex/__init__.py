"""Flexibility: device fleet, VPP aggregation and disaggregation, scheduling, demand response.

>>> from gridpilot.model import load_grid
>>> from gridpilot.flex import generate_fleet, plan
>>> grid = load_grid("simbench:1-MV-rural--0-sw")
>>> fleet = generate_fleet(grid, days=2, start_step=960 - 96)
>>> plan(grid, fleet, 96, t0=960).summary()["peak_reduction_pct"]
"""

from gridpilot.flex.aggregate import (
    CLASSES,
    BusAggregate,
    Dispatch,
    Envelope,
    aggregate,
    disaggregate,
    disaggregate_q,
    envelope,
    inverter_q_capability,
)
from gridpilot.flex.ahead import AheadPlan, plan_ahead
from gridpilot.flex.dr import (
    DR_CLASSES,
    Event,
    EventPlan,
    OptOut,
    Program,
    Report,
    dispatch_event,
    event_setpoints,
    participants,
    schedule_setpoints,
    select_devices,
    shed_potential,
    shed_potential_by_bus,
)
from gridpilot.flex.field_adapter import fleet_from_field
from gridpilot.flex.fleet import (
    Batteries,
    EVSessions,
    Fleet,
    PVInverters,
    WaterHeaters,
    generate_fleet,
)
from gridpilot.flex.network import NetworkModel, build_network
from gridpilot.flex.schedule import (
    CaseMetrics,
    Plan,
    PlanConfig,
    WindowInput,
    WindowPlan,
    evaluate,
    plan,
    plan_window,
    solve_window,
    uncontrolled_dispatch,
)
from gridpilot.flex.signals import Signals, default_signals

__all__ = [
    "CLASSES",
    "DR_CLASSES",
    "AheadPlan",
    "Batteries",
    "BusAggregate",
    "CaseMetrics",
    "Dispatch",
    "EVSessions",
    "Envelope",
    "Event",
    "EventPlan",
    "Fleet",
    "NetworkModel",
    "OptOut",
    "PVInverters",
    "Plan",
    "PlanConfig",
    "Program",
    "Report",
    "Signals",
    "WaterHeaters",
    "WindowInput",
    "WindowPlan",
    "aggregate",
    "build_network",
    "default_signals",
    "disaggregate",
    "disaggregate_q",
    "dispatch_event",
    "envelope",
    "evaluate",
    "event_setpoints",
    "fleet_from_field",
    "generate_fleet",
    "inverter_q_capability",
    "participants",
    "plan",
    "plan_ahead",
    "plan_window",
    "schedule_setpoints",
    "select_devices",
    "shed_potential",
    "shed_potential_by_bus",
    "solve_window",
    "uncontrolled_dispatch",
]
