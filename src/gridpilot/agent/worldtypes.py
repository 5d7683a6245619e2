"""What the orchestrator needs of a world: :class:`World`, and the optional capabilities as small
sub-protocols (:class:`DeviceWorld`, :class:`MeteredWorld`, :class:`EvDeferringWorld`,
:class:`AlarmingWorld`, :class:`PhaseAwareWorld`, :class:`WeatherWorld`).

:class:`~gridpilot.agent.world.SimWorld` is a :class:`World`;
:class:`~gridpilot.agent.fieldworld.FieldWorld` is a :class:`World`, a :class:`DeviceWorld`
(household devices under command), a :class:`MeteredWorld` (the households' signed meter
rows) and a :class:`WeatherWorld` (a weather forecast, when built with a weather series). The orchestrator asks for a capability once, with ``isinstance`` on the runtime-checkable
sub-protocol, when it is built; the loop then uses the typed part it keeps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from gridpilot.agent.world import Observation
    from gridpilot.field import Command, DeviceFleet
    from gridpilot.model import Grid
    from gridpilot.model.threephase import ThreePhaseGrid
    from gridpilot.telemetry import DeviceRegistry
    from gridpilot.twin.unbalanced import UnbalancedResult


@runtime_checkable
class World(Protocol):
    """A grid in simulated time that the loop observes and commands.

    ``grid`` is the world's own model (the loop copies it), ``step_s`` one step in seconds,
    ``start_step`` the 15-minute profile step of ``t == 0``, ``engine`` the power-flow engine of
    its twin, ``dr_share`` the share of each load its own demand-response model curtails at
    level 1 (0 where demand response acts on devices).
    """

    grid: Grid
    step_s: float
    start_step: int
    t: int
    engine: str
    dr_share: float

    @property
    def time(self) -> np.datetime64:
        """Simulated wall-clock time of the present step."""
        ...

    def observe(self) -> Observation:
        """What the field sends at the present step."""
        ...

    def advance(self) -> None:
        """Move to the next step."""
        ...

    def inject(self, kind: str, **params: Any) -> dict[str, Any]:
        """Inject an event (fault, wind_drop, ...); returns the event as applied."""
        ...

    def set_switch(self, switch_id: int, closed: bool) -> None:
        """Open or close a remote-controlled switch."""
        ...

    def reset_fpi(self) -> None:
        """Reset the fault-passage indicators."""
        ...

    def set_dr(self, level: float) -> None:
        """Demand-response level 0..1."""
        ...

    def set_storage(self, storage_id: int, p_mw: float) -> None:
        """Battery set point (MW, positive charging)."""
        ...

    def set_ev_factor(self, factor: float) -> None:
        """EV charging factor 0..1."""
        ...

    def demand(self, t: int | None = None) -> dict[str, np.ndarray]:
        """Uncontrolled injections (MW/Mvar per key, table order) at step ``t`` (default now)."""
        ...

    def controlled(
        self,
        dem: dict[str, np.ndarray],
        dr_level: float | None = None,
        ev_factor: float | None = None,
    ) -> dict[str, np.ndarray]:
        """``dem`` after demand response and EV control (MW/Mvar per key)."""
        ...


@runtime_checkable
class DeviceWorld(Protocol):
    """A world with household devices under command (demand response as device events)."""

    @property
    def devices(self) -> DeviceFleet:
        """The household device fleet (the aggregator's enrolment registry)."""
        ...

    def apply(self, cmds: list[Command]) -> list[Any]:
        """Send device commands; returns the field's events."""
        ...


@runtime_checkable
class MeteredWorld(Protocol):
    """A world whose households' meters report signed 15-minute rows."""

    step_s: float

    def meter_registry(self) -> DeviceRegistry:
        """Switch the meter reports on; the enrolment registry (public keys) to verify against."""
        ...

    def meter_frames(self) -> list[bytes]:
        """The meter frames sent at the last observation (read once)."""
        ...


@runtime_checkable
class EvDeferringWorld(Protocol):
    """A world that states the share of EV-station charging its demand response defers."""

    ev_dr_share: float


@runtime_checkable
class AlarmingWorld(Protocol):
    """A world whose devices raise their own alarms, e.g. a device behind a field protocol that
    refused its last command (``gridpilot.protocols``' worlds); keyed like the loop's alarms,
    each ``{"severity": ..., "text": ...}``."""

    @property
    def alarms(self) -> dict[str, dict[str, Any]]:
        """The world's active alarms."""
        ...


@runtime_checkable
class PhaseAwareWorld(Protocol):
    """A world on a three-phase feeder (:class:`~gridpilot.agent.world3p.ThreePhaseWorld`): its
    ``grid`` is the loop's balanced view, ``grid3p`` the feeder itself, and
    :meth:`phase_result` the latest per-node-phase power flow, for the API and dashboard to
    draw per-phase values and for the scenarios' node-phase KPIs."""

    grid3p: ThreePhaseGrid

    def phase_result(self) -> UnbalancedResult | None:
        """The latest per-node-phase result (None before the first observation)."""
        ...


@runtime_checkable
class TapWorld(Protocol):
    """A world whose regulators take SCADA tap commands (a three-phase feeder): regulator
    ``regulator`` (its position in ``regulators``, regcontrol names) held at ``tap_pu``."""

    regulators: list[str]

    def set_tap(self, regulator: int, tap_pu: float) -> None:
        """Move a regulator to ``tap_pu`` and hold it there."""
        ...


@runtime_checkable
class WeatherWorld(Protocol):
    """A world that issues a weather forecast and knows what its PV and wind produced (both
    ``None`` where it has no weather series: the loop then keeps the profile shapes)."""

    def weather_forecast(self, horizon_steps: int, history_steps: int = 0) -> pd.DataFrame | None:
        """The weather forecast issued now: ``history_steps`` analysed rows before now and
        ``horizon_steps`` forecast rows from now, one column per variable, indexed by time."""
        ...

    def renewable_history(self, history_steps: int) -> pd.DataFrame | None:
        """Per-unit output of PV and wind (columns ``pv``, ``wind``) in the ``history_steps``
        weather-grid steps before now, as the plants would have produced uncurtailed."""
        ...


__all__ = [
    "AlarmingWorld",
    "DeviceWorld",
    "EvDeferringWorld",
    "MeteredWorld",
    "PhaseAwareWorld",
    "TapWorld",
    "WeatherWorld",
    "World",
]
