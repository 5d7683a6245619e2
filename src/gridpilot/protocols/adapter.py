"""The adapter boundary: protocol-neutral commands, results and readings (issue #18).

Everything a protocol adapter (OCPP, OpenADR, SunSpec Modbus) exchanges with the loop passes
through these types, so the orchestrator, the safety guard and the audit log never see a wire
format:

* :class:`DeviceCommand` - what the loop asks of one device (a charging limit in W, an
  active-power limit in %, a volt-var curve, a storage set point in W, a DR level);
* :class:`CommandResult` - the device's answer, with the protocol's own message id (OCPP's
  unique id, the OpenADR event id, the Modbus transaction) for the audit trail;
* :class:`ReadingSink` - station and inverter reports become telemetry rows in the same
  quantities the loop already reads (``p_kw``, ``e_import_kwh``, ``soc_pct`` ...), checked
  against the quantity catalogue's ranges and written to a
  :class:`~gridpilot.telemetry.TelemetryStore`;
* :class:`AdapterRegistry` - routes each command to the adapter that owns the device, audits
  every result and keeps an alarm per device that rejected a command.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from gridpilot.errors import ValidationError
from gridpilot.telemetry import QUANTITY_BY_NAME, DeviceRegistry, ReadingBatch, TelemetryStore

log = logging.getLogger(__name__)

COMMAND_KINDS = ("ev_limit_w", "ev_setpoint_w", "p_limit_pct", "volt_var", "storage_w", "dr_level")
MAX_ID_LEN = 64


def clean_id(value: object, what: str = "device_id") -> str:
    """Return ``value`` as a safe identifier (printable ASCII, at most 64 characters).

    Raises :class:`~gridpilot.errors.ValidationError` naming ``what`` and the value otherwise:
    identifiers come from the wire and end up in logs and the store.
    """
    s = str(value)
    if not s or len(s) > MAX_ID_LEN or not all(c.isalnum() or c in "-_.:" for c in s):
        raise ValidationError(f"{what}: must be 1-{MAX_ID_LEN} of [A-Za-z0-9-_.:], got {s[:80]!r}")
    return s


@dataclass(frozen=True)
class DeviceCommand:
    """One command to one device, protocol-neutral.

    ``kind`` (see :data:`COMMAND_KINDS`): ``ev_limit_w`` (charging limit, W >= 0),
    ``ev_setpoint_w`` (central set point, W, negative = V2G discharge; OCPP 2.1 only),
    ``p_limit_pct`` (inverter active-power limit, % of rating), ``volt_var`` (``curve``: list of
    (v_pct, q_pct) points), ``storage_w`` (battery set point, W, + charging), ``dr_level``
    (0..1). ``plan_id`` links it to the loop's plan for the audit, ``tag`` to the field command
    it carries (a DR event's or a schedule's ``<id>:<step>``).
    """

    device_id: str
    kind: str
    value: float = 0.0
    curve: tuple[tuple[float, float], ...] = ()
    plan_id: int | None = None
    tag: str = ""

    def __post_init__(self) -> None:
        clean_id(self.device_id)
        if self.kind not in COMMAND_KINDS:
            raise ValidationError(f"command kind: unknown {self.kind!r}; known: {COMMAND_KINDS}")
        if not math.isfinite(float(self.value)):
            raise ValidationError(f"command value: must be finite, got {self.value}")
        if self.kind == "ev_limit_w" and self.value < 0:
            raise ValidationError(f"command value: ev_limit_w must be >= 0 W, got {self.value}")
        if self.kind == "volt_var" and len(self.curve) < 2:
            raise ValidationError(f"command curve: volt_var needs >= 2 points, got {self.curve}")


@dataclass
class CommandResult:
    """A device's answer to one :class:`DeviceCommand`.

    ``accepted`` is True only when the device confirmed it (OCPP ``Accepted``, a Modbus write
    read back equal); ``status`` the protocol's word (``Accepted``, ``Rejected``, ``timeout``,
    ``exception 4`` ...); ``message_id`` the protocol's message id; ``latency_ms`` wall time.
    """

    device_id: str
    protocol: str
    kind: str
    accepted: bool
    status: str
    message_id: str = ""
    reason: str = ""
    latency_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        return asdict(self)


class ProtocolAdapter(Protocol):
    """What an adapter offers the loop: which devices it owns and a blocking ``send``."""

    protocol: str

    def owns(self, device_id: str) -> bool:
        """True when the device speaks this adapter's protocol (and is known to it)."""
        ...

    def send(self, commands: Sequence[DeviceCommand]) -> list[CommandResult]:
        """Send commands (concurrently where the protocol allows); one result each, in order."""
        ...


@dataclass
class SinkStats:
    """Counts of a :class:`ReadingSink`: rows accepted and written, rows refused by reason."""

    accepted: int = 0
    written: int = 0
    refused: dict[str, int] = field(default_factory=dict)


class ReadingSink:
    """Protocol reports as telemetry readings (thread-safe).

    ``ReadingSink(registry=None, store=None)``: devices must be :meth:`provision`-ed (a report
    from anyone else is refused, ``unknown_device``); a value outside its quantity's range or
    not finite is refused (``out_of_range``) and the rest of the report kept. :meth:`latest`
    answers the loop; :meth:`flush` appends the buffered rows to ``store`` in one transaction.
    """

    def __init__(
        self, registry: DeviceRegistry | None = None, store: TelemetryStore | None = None
    ) -> None:
        self.registry = registry if registry is not None else DeviceRegistry()
        self.store = store
        self.stats = SinkStats()
        self._lock = threading.Lock()
        self._rows: list[tuple[int, int, int, float]] = []
        self._latest: dict[str, dict[str, tuple[int, float]]] = {}

    def provision(self, device_ids: Sequence[str], kind: str = "protocol") -> None:
        """Register devices (no signing key: their protocol authenticates them) once each."""
        new = [clean_id(d) for d in device_ids if d not in self.registry]
        if new:
            with self._lock:
                self.registry.register_many(new, None, kind=kind)
            if self.store is not None:
                self.store.sync_devices(self.registry)

    def _refuse(self, reason: str, n: int = 1) -> None:
        self.stats.refused[reason] = self.stats.refused.get(reason, 0) + n

    def add(self, device_id: str, ts_ms: int, values: dict[str, float]) -> int:
        """Add one report's values (quantity name -> value in its unit); returns rows accepted."""
        idx = self.registry.get_index(device_id) if isinstance(device_id, str) else None
        with self._lock:
            if idx is None:
                self._refuse("unknown_device", max(len(values), 1))
                return 0
            n = 0
            latest = self._latest.setdefault(device_id, {})
            for name, value in values.items():
                q = QUANTITY_BY_NAME.get(name)
                v = float(value)
                if q is None or not (math.isfinite(v) and q.lo <= v <= q.hi):
                    self._refuse("out_of_range")
                    continue
                self._rows.append((idx, q.code, int(ts_ms), v))
                if ts_ms >= latest.get(name, (-1, 0.0))[0]:
                    latest[name] = (int(ts_ms), v)
                n += 1
            self.stats.accepted += n
            return n

    def latest(self, device_id: str, quantity: str) -> tuple[int, float] | None:
        """The newest (ts_ms, value) of ``quantity`` from ``device_id``, or None."""
        with self._lock:
            return self._latest.get(device_id, {}).get(quantity)

    def pending(self) -> int:
        """Rows buffered and not yet written."""
        with self._lock:
            return len(self._rows)

    def flush(self) -> int:
        """Write the buffered rows to the store (kept buffered if there is none); returns rows written."""
        if self.store is None:
            return 0
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return 0
        a = np.array(rows, dtype=[("d", "i4"), ("q", "i2"), ("t", "i8"), ("v", "f8")])
        try:
            n = self.store.ingest_readings(ReadingBatch(a["d"], a["q"], a["t"], a["v"]))
        except Exception:
            with self._lock:  # nothing is lost: put them back in front
                self._rows[:0] = rows
            raise
        self.stats.written += n
        return n


AuditFn = Callable[[CommandResult, DeviceCommand], None]


class AdapterRegistry:
    """The loop's one door to the protocols: routes commands, audits results, keeps alarms.

    ``AdapterRegistry(audit=None)``: ``audit`` is an :class:`~gridpilot.agent.AuditLog` (or
    anything with its ``record``); every result is recorded as a ``command`` entry carrying the
    protocol and its message id. A rejected command sets an alarm ``command_rejected:<device>``
    (cleared by the device's next accepted command); :meth:`send` returns every result.
    """

    def __init__(self, audit: Any = None) -> None:
        self.adapters: list[ProtocolAdapter] = []
        self.audit = audit
        self.alarms: dict[str, dict[str, Any]] = {}
        self.rejected: list[CommandResult] = []

    def register(self, adapter: ProtocolAdapter) -> None:
        """Add an adapter (the only way the loop reaches a protocol)."""
        self.adapters.append(adapter)

    def adapter_for(self, device_id: str) -> ProtocolAdapter | None:
        """The adapter owning ``device_id``, or None."""
        return next((a for a in self.adapters if a.owns(device_id)), None)

    def send(self, commands: Sequence[DeviceCommand], sim_time: str = "") -> list[CommandResult]:
        """Send ``commands`` through their adapters; audit each; returns results in order."""
        by: dict[int, list[int]] = {}
        out: list[CommandResult | None] = [None] * len(commands)
        for i, c in enumerate(commands):
            ad = self.adapter_for(c.device_id)
            if ad is None:
                out[i] = CommandResult(c.device_id, "none", c.kind, False, "unknown_device")
            else:
                by.setdefault(id(ad), []).append(i)
        for ad in self.adapters:
            idx = by.get(id(ad), [])
            if idx:
                for i, r in zip(idx, ad.send([commands[i] for i in idx]), strict=True):
                    out[i] = r
        results = [r for r in out if r is not None]
        for c, r in zip(commands, results, strict=True):
            self._after(c, r, sim_time)
        return results

    def _after(self, cmd: DeviceCommand, res: CommandResult, sim_time: str) -> None:
        key = f"command_rejected:{cmd.device_id}"
        if res.accepted:
            self.alarms.pop(key, None)
        else:
            self.rejected.append(res)
            self.alarms[key] = {
                "severity": "major",
                "text": f"{res.protocol} device {cmd.device_id} refused {cmd.kind}: "
                f"{res.status} {res.reason}"[:200],
            }
            log.warning("device %s refused %s: %s", cmd.device_id, cmd.kind, res.status)
        if self.audit is not None:
            self.audit.record(
                actor=f"protocol:{res.protocol}",
                kind="command",
                what={
                    "device": cmd.device_id,
                    "kind": cmd.kind,
                    "value": cmd.value,
                    "curve": [list(p) for p in cmd.curve],
                    "plan": cmd.plan_id,
                    "tag": cmd.tag[:MAX_ID_LEN],
                },
                why=f"{res.protocol} message {res.message_id}",
                result=res.to_dict(),
                status="done" if res.accepted else "failed",
                sim_time=sim_time,
            )
