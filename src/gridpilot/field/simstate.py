"""The field simulator's state, declared once for its parts: :class:`_SimState` types what
:class:`~gridpilot.field.simulator.FieldSimulator` sets in ``__init__`` and the parts read
(:class:`~gridpilot.field.sim_readings.SimReadings`: what the field sends;
:class:`~gridpilot.field.sim_events.SimEvents`: commands, protection, faults and attacks)."""

from __future__ import annotations

from typing import Any

import numpy as np

from gridpilot.field.fleet import DeviceFleet
from gridpilot.field.grid_devices import GridDeviceState
from gridpilot.field.records import FaultState, FieldEvent, StepStats, _Pending
from gridpilot.model import Grid, Profiles
from gridpilot.twin import PowerFlowResult, Twin


class _SimState:
    """The attributes the simulator's parts share (see the module docstring)."""

    grid: Grid
    twin: Twin
    fleet: DeviceFleet
    rng: np.random.Generator
    # time and profiles
    _prof: Profiles
    _cols: dict[str, Any]
    _step_s: float
    _pv_shape: np.ndarray
    _dflt_step_s: float
    start_ms: int
    _start_offset_s: float
    t_s: float
    paused: bool
    # topology, protection, faults, events
    switch_closed: np.ndarray
    normal_closed: np.ndarray
    bus_live: np.ndarray
    faults: dict[int, FaultState]
    events: list[FieldEvent]
    fpi: np.ndarray
    fpi_failed: np.ndarray
    fpi_false: np.ndarray
    _uncleared: set[int]
    # meters: reporting, registers, noise, history for replays, message faults
    meter_interval_s: int
    meter_p_noise: float
    meter_v_noise_pu: float
    meter_v_offset_pu: np.ndarray
    loss_prob: float
    delay_prob: float
    delay_s: float
    _pending: list[_Pending]
    _last_report_s: float
    _rep_import: np.ndarray
    _rep_export: np.ndarray
    _rep_import_prev: np.ndarray
    _rep_export_prev: np.ndarray
    _q_kvarh: np.ndarray
    _q_prev: np.ndarray
    _tanphi: np.ndarray
    keep_history_days: int
    _hist_p: np.ndarray | None
    _hist_v: np.ndarray | None
    _hist_n: int
    replay_noise: float
    # grid sensors
    sensor_line_ids: np.ndarray
    sensor_bus_ids: np.ndarray
    substation_meters: bool
    sensor_bias: dict[str, np.ndarray]
    # the true state
    meter_p_kw: np.ndarray
    load_p_mw: np.ndarray
    load_q_mvar: np.ndarray
    load_p_if_energised_mw: np.ndarray
    grid_devices: GridDeviceState
    grid_p_mw: dict[str, np.ndarray]
    grid_demand_mw: dict[str, np.ndarray]
    _pos: dict[str, np.ndarray]
    pf: PowerFlowResult
    last_stats: StepStats | None

    @property
    def now_ms(self) -> int:
        """Simulated time, ms since the Unix epoch (UTC)."""
        return self.start_ms + round(self.t_s * 1000)

    def _event(self, name: str, severity: str, data: dict[str, Any]) -> FieldEvent:
        """Queue a field event at the present time; returns it."""
        ev = FieldEvent(self.now_ms, name, severity, data)
        self.events.append(ev)
        return ev

    def _powerflow(self) -> PowerFlowResult:
        """The power flow of the present state (the simulator)."""
        raise NotImplementedError
