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
    "aggregate": ("aggregate", "disaggregate", "disaggregate_q", "envelope"),
    "ahead": ("AheadPlan", "plan_ahead"),
    "dr": (
        "Event",
        "EventPlan",
        "OptOut",
        "Program",
        "dispatch_event",
        "event_setpoints",
        "schedule_setpoints",
        "select_devices",
        "shed_potential",
        "shed_potential_by_bus",
    ),
    "field_adapter": ("fleet_from_field",),
    "fleet": ("Batteries", "EVSessions", "Fleet", "PVInverters", "WaterHeaters", "generate_fleet"),
    "network": ("NetworkModel", "build_network"),
    "phase_adapters": ("clear_by_phase", "frequency_response", "phase_headroom"),
    "phase_fleet": ("PhaseFleet", "PlaceConfig", "place_fleet"),
    "phase_network": ("feeder_phases",),
    "phase_plan": ("PhasePlanConfig", "plan_phases"),
    "phase_records": ("fleet_from_records",),
    "schedule": ("Plan", "PlanConfig", "plan", "plan_window"),
    "signals": ("Signals", "default_signals"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from gridpilot.flex.aggregate import aggregate, disaggregate, disaggregate_q, envelope
    from gridpilot.flex.ahead import AheadPlan, plan_ahead
    from gridpilot.flex.dr import (
        Event,
        EventPlan,
        OptOut,
        Program,
        dispatch_event,
        event_setpoints,
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
    from gridpilot.flex.phase_adapters import clear_by_phase, frequency_response, phase_headroom
    from gridpilot.flex.phase_fleet import PhaseFleet, PlaceConfig, place_fleet
    from gridpilot.flex.phase_network import feeder_phases
    from gridpilot.flex.phase_plan import PhasePlanConfig, plan_phases
    from gridpilot.flex.phase_records import fleet_from_records
    from gridpilot.flex.schedule import Plan, PlanConfig, plan, plan_window
    from gridpilot.flex.signals import Signals, default_signals
