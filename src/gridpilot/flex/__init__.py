"""Flexibility: device fleet, VPP aggregation and disaggregation, scheduling, demand response.

On three-phase grids (``ieee13``, ``ieee123``, ``ieee8500``): a phase-aware DER fleet
(:func:`place_fleet`), the per-phase schedule and phase balancing (:func:`plan_phases`), and
the frequency/market adapters on the same fleet (:func:`frequency_response`,
:func:`clear_by_phase`); see docs/flex.md.

>>> from gridpilot.model import load_grid
>>> from gridpilot.flex import generate_fleet, plan
>>> grid = load_grid("simbench:1-MV-rural--0-sw")
>>> fleet = generate_fleet(grid, days=2, start_step=960 - 96)
>>> plan(grid, fleet, 96, t0=960).summary()["peak_reduction_pct"]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridpilot._lazy import lazy_exports

# public names by submodule; imported on first use (see gridpilot/_lazy.py)
_EXPORTS: dict[str, tuple[str, ...]] = {
    "aggregate": (
        "CLASSES",
        "BusAggregate",
        "Dispatch",
        "Envelope",
        "aggregate",
        "disaggregate",
        "disaggregate_q",
        "envelope",
        "inverter_q_capability",
    ),
    "ahead": ("AheadPlan", "plan_ahead"),
    "dr": (
        "DR_CLASSES",
        "Event",
        "EventPlan",
        "OptOut",
        "Program",
        "Report",
        "dispatch_event",
        "event_setpoints",
        "participants",
        "schedule_setpoints",
        "select_devices",
        "shed_potential",
        "shed_potential_by_bus",
    ),
    "field_adapter": ("fleet_from_field",),
    "fleet": ("Batteries", "EVSessions", "Fleet", "PVInverters", "WaterHeaters", "generate_fleet"),
    "network": ("NetworkModel", "build_network"),
    "phase_adapters": (
        "PhaseOrders",
        "clear_by_phase",
        "frequency_response",
        "phase_headroom",
        "phase_orders",
    ),
    "phase_fleet": ("PhaseFleet", "PlaceConfig", "place_fleet"),
    "phase_network": ("PhaseNetwork", "feeder_phases"),
    "phase_plan": ("PhasePlan", "PhasePlanConfig", "plan_phases"),
    "phase_records": ("fleet_from_records",),
    "schedule": (
        "CaseMetrics",
        "Plan",
        "PlanConfig",
        "WindowInput",
        "WindowPlan",
        "evaluate",
        "plan",
        "plan_window",
        "solve_window",
        "uncontrolled_dispatch",
    ),
    "signals": ("Signals", "default_signals"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
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
    from gridpilot.flex.phase_adapters import (
        PhaseOrders,
        clear_by_phase,
        frequency_response,
        phase_headroom,
        phase_orders,
    )
    from gridpilot.flex.phase_fleet import PhaseFleet, PlaceConfig, place_fleet
    from gridpilot.flex.phase_network import PhaseNetwork, feeder_phases
    from gridpilot.flex.phase_plan import PhasePlan, PhasePlanConfig, plan_phases
    from gridpilot.flex.phase_records import fleet_from_records
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
