"""The field's telemetry: gateways sign meter readings, a SCADA principal signs sensors and events.

Layout (device side of :mod:`gridpilot.telemetry`):

* one **gateway** per grid load (``gw-<load id>``, its own Ed25519 key) signs the readings of
  the meters behind it (``m<position>``) in one columnar frame per report (``devs`` lists the
  meters, quantities ``p_kw``, ``q_kvar``, ``v_pu``, ``e_import_kwh``, ``e_export_kwh``);
* the **SCADA** principal (``scada``) signs the grid sensors (feeder head ``src-<id>``, line
  flows ``line-<id>``, bus voltages ``bus-<id>``, switch positions ``sw-<id>``) and the events
  (protection, outages, acknowledgements).

Meters do not sign themselves (their gateway does), so they are registered with a placeholder
public key. Timestamps are simulated time; give the receiving :class:`~gridpilot.telemetry.Ingestor`
``clock=tel.clock`` so that its clock-skew checks use the same time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gridpilot.field.simulator import FieldReadings, FieldSimulator
from gridpilot.telemetry import (
    DeviceRegistry,
    DeviceSigner,
    Topics,
    Transport,
    encode_batch,
    generate_key,
    wire_text,
)

METER_QUANTITIES = ("p_kw", "q_kvar", "v_pu", "e_import_kwh", "e_export_kwh")


@dataclass
class PublishStats:
    """Counts of one :meth:`FieldTelemetry.publish`: payloads, frames, readings, bytes."""

    payloads: int = 0
    frames: int = 0
    readings: int = 0
    bytes: int = 0


class FieldTelemetry:
    """Registers the simulator's principals and publishes its readings on a transport."""

    def __init__(
        self,
        sim: FieldSimulator,
        transport: Transport,
        registry: DeviceRegistry | None = None,
        topics: Topics | None = None,
    ) -> None:
        self.sim = sim
        self.transport = transport
        self.topics = topics or Topics()
        self.registry = registry or DeviceRegistry()
        g = sim.grid
        f = sim.fleet
        clock = self.clock
        reg = self.registry
        # gateways
        self.gateway_ids = [f"gw-{i}" for i in g.load.ids]
        self._gw_signers = []
        for gid, lid, bus in zip(self.gateway_ids, g.load.ids, g.load["bus"], strict=True):
            k = generate_key()
            reg.register(gid, k, kind="gateway", feeder=f"load-{lid}", bus=int(bus))
            self._gw_signers.append(DeviceSigner(gid, k, clock=clock))
        nm = f.meter_load.size
        self.meter_ids = np.array([f"m{i}" for i in range(nm)], dtype=object)
        reg.register_many(
            list(self.meter_ids),
            np.zeros((nm, 32), np.uint8),
            kind="meter",
            feeder=[f"load-{i}" for i in g.load.ids[f.meter_load]],
            bus=g.bus.ids[f.meter_bus],
            gateway=[self.gateway_ids[i] for i in f.meter_load],
        )
        # SCADA and its sensors
        k = generate_key()
        reg.register("scada", k, kind="scada")
        self._scada = DeviceSigner("scada", k, clock=clock)
        self.sensor_ids: dict[str, list[str]] = {
            "source": [f"src-{i}" for i in g.source.ids],
            "line": [f"line-{i}" for i in sim.sensor_line_ids],
            "bus": [f"bus-{i}" for i in sim.sensor_bus_ids],
            "switch": [f"sw-{i}" for i in g.switch.ids],
        }
        for kind, ids in self.sensor_ids.items():
            if ids:
                reg.register_many(
                    ids, np.zeros((len(ids), 32), np.uint8), kind=kind, gateway="scada"
                )

    def resume_seqs(self) -> int:
        """Continue every signer's sequence numbers above the registry's last accepted ones.

        After an :class:`~gridpilot.telemetry.Ingestor` has raised the registry's sequence
        numbers to those in its store (a restart on a store that holds this fleet), the
        signers must go on above them, or every message would be refused as a replay.
        Returns how many signers were moved.
        """
        moved = 0
        for signer in (*self._gw_signers, self._scada):
            last = int(self.registry.last_seq[self.registry.index_of(signer.device_id)])
            if last > signer.seq:
                signer.seq = last
                moved += 1
        return moved

    def clock(self) -> float:
        """Simulated time in seconds since the Unix epoch (for signers and the verifier)."""
        return self.sim.now_ms / 1000.0

    def frames(self, batch: FieldReadings) -> list[tuple[str, bytes]]:
        """Signed frames for ``batch``, as (sender, frame) pairs."""
        out: list[tuple[str, bytes]] = []
        m = batch.meters
        if len(m):
            load = self.sim.fleet.meter_load[m.meter]
            order = np.argsort(load, kind="stable")
            bounds = np.searchsorted(load[order], np.arange(len(self._gw_signers) + 1))
            cols = {q: getattr(m, q) for q in METER_QUANTITIES}
            for gi in range(len(self._gw_signers)):
                rows = order[bounds[gi] : bounds[gi + 1]]
                if rows.size == 0:
                    continue
                meters, pos = np.unique(m.meter[rows], return_inverse=True)
                fr = self._gw_signers[gi].readings(
                    m.ts_ms[rows],
                    {q: c[rows] for q, c in cols.items()},
                    devices=list(self.meter_ids[meters]),
                    dev_pos=pos,
                )
                out.append((self.gateway_ids[gi], fr))
        s = batch.sensors
        ts = batch.ts_ms
        groups: list[tuple[list[str], dict[str, Any]]] = [
            (
                self.sensor_ids["source"],
                {"p_mw": s["source_p_mw"], "q_mvar": s["source_q_mvar"], "v_pu": s["source_v_pu"]},
            ),
            (
                self.sensor_ids["line"],
                {
                    "p_mw": s["line_p_mw"],
                    "q_mvar": s["line_q_mvar"],
                    "loading_pct": s["line_loading_pct"],
                },
            ),
            (self.sensor_ids["bus"], {"v_pu": s["bus_v_pu"]}),
            (self.sensor_ids["switch"], {"switch_closed": s["switch_closed"]}),
        ]
        for ids, vals in groups:
            if ids:
                n = len(ids)
                out.append(
                    (
                        "scada",
                        self._scada.readings(
                            np.full(n, ts, np.int64), vals, devices=ids, dev_pos=np.arange(n)
                        ),
                    )
                )
        for ev in batch.events:
            out.append(
                ("scada", self._scada.event(ev.name, ev.data, severity=ev.severity, ts_ms=ev.ts_ms))
            )
        return out

    def publish(self, batch: FieldReadings) -> PublishStats:
        """Sign ``batch`` and publish it: one payload per sender. Returns the counts."""
        st = PublishStats()
        by_sender: dict[str, list[bytes]] = {}
        for sender, fr in self.frames(batch):
            by_sender.setdefault(sender, []).append(fr)
        for sender, frs in by_sender.items():
            payload = encode_batch(frs)
            self.transport.publish(self.topics.telemetry(sender), payload)
            st.payloads += 1
            st.frames += len(frs)
            st.bytes += len(payload)
        st.readings = len(batch.meters) * len(METER_QUANTITIES) + sum(
            batch.sensors[k].size for k in PUBLISHED_SENSORS
        )
        return st


# sensor quantities signed by SCADA (FPIs, grid-device and substation meters travel on the
# protection/metering channel: no telemetry quantity for them yet)
PUBLISHED_SENSORS = (
    "source_p_mw",
    "source_q_mvar",
    "source_v_pu",
    "line_p_mw",
    "line_q_mvar",
    "line_loading_pct",
    "bus_v_pu",
    "switch_closed",
)


@dataclass
class CommandOutcome:
    """One command frame the field received: who sent it, what it asked, what happened.

    ``status``: ``ok`` (applied), ``refused`` (verified but invalid: the detail says why) or
    ``rejected`` (failed verification: signature, key, sequence …; never applied).
    Text fields are escaped wire text (:func:`~gridpilot.telemetry.wire_text`), safe to log.
    """

    sender: str
    cmd_id: str
    name: str
    target: str
    status: str
    detail: str


class FieldCommandReceiver:
    """The field obeys signed commands from the control side.

    Subscribes to the command topics; :meth:`pump` verifies every queued frame against
    ``operators`` (a :class:`~gridpilot.telemetry.DeviceRegistry` of the principals allowed to
    command: signature, key, sequence, clock), applies the valid ones to the simulator and
    publishes a signed ``ack`` (by ``scada``) for each. Targets: ``sw-<switch id>`` with name
    ``open``/``close``; ``field`` with any :data:`~gridpilot.field.simulator.COMMANDS` name and
    args ``{"target": positions or null, "value": ...}``.
    """

    def __init__(self, tel: FieldTelemetry, operators: DeviceRegistry) -> None:
        from gridpilot.telemetry import Verifier

        self.tel = tel
        self.verifier = Verifier(operators, clock=tel.clock, log_rejections=False)
        self._queue: list[bytes] = []
        tel.transport.subscribe(tel.topics.all_commands, lambda _t, p: self._queue.append(p))

    def _command(self, target: str, name: str, args: dict[str, Any]) -> Any:
        from gridpilot.errors import ValidationError
        from gridpilot.field.simulator import Command

        if target.startswith("sw-"):
            if name not in ("open", "close"):
                raise ValidationError(f"switch command {name!r}: expected 'open' or 'close'")
            return Command("switch", int(target[3:]), name == "close")
        if target == "field":
            return Command(name, args.get("target"), args.get("value"))
        raise ValidationError(f"command target {target!r}: expected 'field' or 'sw-<id>'")

    def pump(self) -> list[CommandOutcome]:
        """Verify, apply and acknowledge every queued command; returns the outcomes in order."""
        from gridpilot.errors import GridpilotError

        payloads, self._queue = self._queue, []
        if not payloads:
            return []
        vb = self.verifier.verify(payloads)
        out: list[CommandOutcome] = []
        acks: list[bytes] = []
        for rec in vb.records:
            if rec.kind != "command":
                continue
            body = rec.payload
            cmd_id, target, name = (
                str(body.get("cmd_id", "")),
                str(body.get("target", "")),
                rec.name,
            )
            try:
                cmd = self._command(target, name, dict(body.get("args") or {}))
                cmd.cmd_id = cmd_id
                self.tel.sim.apply(cmd)
                status, detail = "ok", ""
            except (GridpilotError, ValueError, TypeError) as exc:
                status, detail = "refused", str(exc)
            acks.append(self.tel._scada.ack(cmd_id, status, detail))
            out.append(  # wire text escaped: callers log these
                CommandOutcome(
                    rec.device_id,
                    wire_text(cmd_id),
                    wire_text(name),
                    wire_text(target),
                    status,
                    wire_text(detail, 500),
                )
            )
        for rj in vb.rejections:
            out.append(
                CommandOutcome(
                    rj.device_id or "?", "", "", "", "rejected", f"{rj.reason}: {rj.detail}"
                )
            )
        if acks:
            self.tel.transport.publish(self.tel.topics.telemetry("scada"), encode_batch(acks))
        return out
