"""One field run, as ``gridpilot field run`` does it: simulate, sign, publish, ingest, summarise.

:func:`open_field_run` opens the store first: if it already holds this fleet's telemetry the
run **resumes** (the simulated clock starts at the last stored message, signers continue
above the stored sequence numbers), so a restart stores new readings instead of having every
message refused as a replay. :meth:`FieldRun.run` stops at the first transport or store
failure (a broker that stayed away past ``broker_timeout_s``, a lost database) and returns
its message instead of raising, so that the caller can print a summary of what was done.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gridpilot.errors import GridpilotError, ValidationError
from gridpilot.field.fleet import FleetConfig
from gridpilot.field.publish import FieldTelemetry
from gridpilot.field.simulator import FieldSimulator
from gridpilot.telemetry import Ingestor, MqttTransport, Receiver, TelemetryStore, Transport
from gridpilot.telemetry.safe_text import wire_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FieldRunConfig:
    """What to run: grid, fleet size, simulated ``hours`` at ``dt_s`` steps, pacing, faults."""

    grid: str
    devices: int | None = None
    hours: float = 1.0
    dt_s: float = 60.0
    meter_interval_s: int = 900
    speed: float = 0.0  # x real time, 0: as fast as possible
    fault_line: int | None = None
    broker_timeout_s: float = 30.0
    seed: int = 0
    show_progress: bool = False

    @property
    def steps(self) -> int:
        """Number of simulation steps."""
        return max(1, round(self.hours * 3600 / self.dt_s))


def _failure_types() -> tuple[type[BaseException], ...]:
    """Errors that end a run part-way: ours, the network's and the store drivers'."""
    kinds: list[type[BaseException]] = [GridpilotError, OSError]
    try:
        import psycopg

        kinds.append(psycopg.Error)
    except ImportError:  # pragma: no cover - psycopg is a dependency
        pass
    import duckdb

    kinds.append(duckdb.Error)
    return tuple(kinds)


@dataclass
class FieldRun:
    """An opened field run (build it with :func:`open_field_run`)."""

    cfg: FieldRunConfig
    sim: FieldSimulator
    bus: Transport
    tel: FieldTelemetry
    store: TelemetryStore
    ingestor: Ingestor
    receiver: Receiver
    urls: tuple[str, str]
    build_s: float
    resumed_from: pd.Timestamp | None
    sent: int = 0
    steps_done: int = 0
    wall_s: float = 0.0
    events: dict[str, int] = field(default_factory=dict)
    _vmin: float = np.inf
    _step_ms: list[float] = field(default_factory=list)
    _pub_ms: float = 0.0

    def _step(self, k: int) -> None:
        """Simulate, publish and ingest step ``k``."""
        cfg, sim, rx = self.cfg, self.sim, self.receiver
        if cfg.fault_line is not None and k == cfg.steps // 2:
            sim.inject_line_fault(cfg.fault_line)
        stats = sim.step(cfg.dt_s)
        if stats is not None:
            self._step_ms.append(stats.devices_ms + stats.powerflow_ms)
            if np.isfinite(stats.vmin_pu):
                self._vmin = min(self._vmin, stats.vmin_pu)
        ta = time.perf_counter()
        batch = sim.readings()
        for e in batch.events:
            self.events[e.name] = self.events.get(e.name, 0) + 1
        self.sent += self.tel.publish(batch).payloads
        self.bus.flush(cfg.broker_timeout_s)
        if cfg.speed:
            time.sleep(max(0.0, cfg.dt_s / cfg.speed - (time.perf_counter() - ta)))
        want = self.sent
        rx.run(
            until=lambda: rx.received >= want, duration_s=cfg.broker_timeout_s, max_payloads=None
        )
        self._pub_ms += (time.perf_counter() - ta) * 1e3

    def run(self) -> str | None:
        """Run every step; returns None, or the reason the run stopped part-way (one line)."""
        from rich.console import Console
        from rich.progress import Progress

        cfg = self.cfg
        t0 = time.perf_counter()
        failure: str | None = None
        with Progress(
            console=Console(stderr=True), transient=True, disable=not cfg.show_progress
        ) as prog:
            task = prog.add_task(
                f"{cfg.grid}: {self.sim.fleet.n_devices:,} devices", total=cfg.steps
            )
            try:
                for k in range(cfg.steps):
                    self._step(k)
                    self.steps_done += 1
                    prog.advance(task)
            except _failure_types() as exc:
                failure = wire_text(exc, 500)
                log.info("field run stopped at step %d: %s", self.steps_done, failure)
        self.wall_s = time.perf_counter() - t0
        return failure

    def summary(self) -> dict[str, Any]:
        """Return the run's summary (JSON-able): speed, steps done, payloads, ingest counts."""
        cfg, wall = self.cfg, self.wall_s
        sim_s = self.steps_done * cfg.dt_s
        return {
            "grid": cfg.grid,
            "devices": self.sim.fleet.n_devices,
            "device_counts": self.sim.fleet.counts,
            "steps": cfg.steps,
            "steps_done": self.steps_done,
            "dt_s": cfg.dt_s,
            "simulated_s": sim_s,
            "resumed_from": None if self.resumed_from is None else self.resumed_from.isoformat(),
            "wall_s": round(wall, 3),
            "build_s": round(self.build_s, 3),
            "speed_x_real_time": round(sim_s / wall, 1) if wall > 0 and sim_s else None,
            "step_ms_mean": round(float(np.mean(self._step_ms)), 3) if self._step_ms else None,
            "telemetry_ms_per_step": round(self._pub_ms / max(1, self.steps_done), 3),
            "payloads": self.sent,
            "ingest": self.ingestor.totals.as_dict(),
            "events": self.events,
            "vmin_pu": None if not np.isfinite(self._vmin) else round(float(self._vmin), 4),
            "transport": self.urls[0],
            "store": self.urls[1].split("@")[-1],
        }

    def close(self) -> None:
        """Close the transport and the store (errors while closing are logged, not raised)."""
        for what, closer in (("transport", self.bus.close), ("store", self.store.close)):
            try:
                closer()
            except Exception as exc:  # closing after a failure must not hide the summary
                log.warning("closing the %s failed: %s", what, wire_text(exc))


def open_field_run(cfg: FieldRunConfig, t_url: str, s_url: str, prefix: str) -> FieldRun:
    """Open store, simulator, transport and receiver for ``cfg``; returns the :class:`FieldRun`.

    Resumes a store prefix that holds telemetry (see the module docstring). Raises
    ``GridpilotError`` (or ``OSError``) if something cannot be opened; whatever was opened
    is closed again.
    """
    import gridpilot.telemetry as tm
    from gridpilot.model import load_balanced_grid

    t0 = time.perf_counter()
    g = load_balanced_grid(cfg.grid, "field run")
    st = tm.open_store(s_url, prefix=prefix)
    bus: Transport | None = None
    try:
        last = st.last_sent()
        start = None if last is None else last.ceil("s").strftime("%Y-%m-%dT%H:%M:%S")
        sim = FieldSimulator(
            g,
            FleetConfig(n_devices=cfg.devices, seed=cfg.seed),
            start=start,
            meter_interval_s=cfg.meter_interval_s,
            seed=cfg.seed,
        )
        bus = tm.open_transport(t_url)
        if isinstance(bus, MqttTransport):
            bus.reconnect_timeout_s = cfg.broker_timeout_s
        tel = FieldTelemetry(sim, bus)
        try:
            ing = Ingestor(tel.registry, st, clock=tel.clock)
        except GridpilotError as exc:
            raise ValidationError(
                f"{exc}\n  (a store keeps one fleet's devices: use another --prefix or store)"
            ) from None
        tel.resume_seqs()
        rx = Receiver(bus, ing, tel.topics.all_telemetry, topics=tel.topics)
    except BaseException:
        if bus is not None:
            bus.close()
        st.close()
        raise
    build_s = time.perf_counter() - t0
    return FieldRun(cfg, sim, bus, tel, st, ing, rx, (t_url, s_url), build_s, last)
