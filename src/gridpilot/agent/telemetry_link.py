"""The field's grid measurements as signed telemetry: signed at the SCADA gateway, verified on receipt.

:class:`TelemetryLink` puts each step's bus voltages, line loadings and switch positions through
``gridpilot.telemetry``: the gateway ``scada`` signs three frames (four with P/Q flow sensors) (Ed25519, sequence numbers,
timestamps in simulated time) for its registered sensor devices; the receiving
:class:`~gridpilot.telemetry.Verifier` checks signature, key, sequence, clock skew and ranges.
The orchestrator builds its observation only from what passed; a refused frame leaves the
previous verified values in place and raises an alarm. Fault-passage indicators and relay
events come over the protection channel (no telemetry quantity exists for them yet).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridpilot.errors import ValidationError
from gridpilot.model import Grid


@dataclass
class LinkReport:
    """One step through the link: frames sent and accepted, rejections by reason."""

    frames: int
    accepted: int
    rejected: dict[str, int] = field(default_factory=dict)


class TelemetryLink:
    """Sign the grid sensors of an observation at the gateway and verify them at the receiver.

    ``TelemetryLink(grid)``; :meth:`roundtrip` returns the verified ``v_pu``,
    ``line_loading_pct`` and ``switch_closed`` arrays and a :class:`LinkReport`;
    :meth:`forged_frame` builds what an attacker without the gateway's key can send.
    """

    def __init__(
        self,
        grid: Grid,
        flow_line_ids: tuple[int, ...] | list[int] = (),
        *,
        v_noise_pu: float = 0.0,
        flow_noise_rel: float = 0.0,
        seed: int = 0,
    ) -> None:
        from gridpilot.telemetry import DeviceRegistry, DeviceSigner, Verifier, generate_key

        self.grid = grid
        self._now_ms = 0
        self.registry = DeviceRegistry()
        self._key = generate_key()
        self.registry.register("scada", self._key, kind="gateway")
        self.bus_dev = [f"bus:{int(i)}" for i in grid.bus.ids]
        self.line_dev = [f"line:{int(i)}" for i in grid.line.ids]
        self.sw_dev = [f"switch:{int(i)}" for i in grid.switch.ids]
        names = self.bus_dev + self.line_dev + self.sw_dev
        idx = self.registry.register_many(names, None, kind="sensor", gateway="scada")
        self._pos = np.full(int(idx.max()) + 1 if idx.size else 1, -1, np.int64)
        self._pos[idx] = np.arange(idx.size)
        self.nb, self.nl, self.ns = len(grid.bus), len(grid.line), len(grid.switch)
        clock = lambda: self._now_ms / 1000.0  # noqa: E731 - simulated time on both ends
        self.signer = DeviceSigner("scada", self._key, clock=clock)
        self.verifier = Verifier(self.registry, clock=clock, log_rejections=False)
        self.v_pu = np.ones(self.nb)
        self.line_loading_pct = np.zeros(self.nl)
        self.switch_closed = grid.switch["closed"].astype(bool).copy()
        # P/Q flow sensors (from end) on these lines only; zeros elsewhere
        self._flow_pos = grid.line.index_of(np.asarray(list(flow_line_ids), np.int64))
        self.line_p_mw = np.zeros(self.nl)
        self.line_q_mvar = np.zeros(self.nl)
        # compromised voltage sensors: bus position -> offset (pu) added at the sensor, so the
        # gateway signs the false value and it verifies (false-data injection)
        self.v_offset_pu: dict[int, float] = {}
        # sensor noise (Gaussian, at the sensor): voltages in pu, flows relative to |value|
        for name, val in (("v_noise_pu", v_noise_pu), ("flow_noise_rel", flow_noise_rel)):
            if not (np.isfinite(val) and val >= 0):
                raise ValidationError(f"{name}: must be finite and >= 0, got {val}")
        self.v_noise_pu = float(v_noise_pu)
        self.flow_noise_rel = float(flow_noise_rel)
        self._rng = np.random.default_rng(seed)
        self.totals: dict[str, int] = {"frames": 0, "accepted": 0, "rejected": 0}

    def tamper_voltage(self, bus_id: int, offset_pu: float) -> None:
        """Compromise the voltage sensor of ``bus_id``: it reports ``offset_pu`` more (0 restores).

        The gateway signs what the sensor reports, so the frame verifies: only the state
        estimator's bad-data test can catch it.
        """
        if not np.isfinite(offset_pu) or abs(offset_pu) > 0.5:
            raise ValidationError(f"offset_pu: must be finite and within ±0.5 pu, got {offset_pu}")
        k = int(self.grid.bus.index_of(int(bus_id))[0])
        if offset_pu == 0:
            self.v_offset_pu.pop(k, None)
        else:
            self.v_offset_pu[k] = float(offset_pu)

    def frames(self, obs: Any, ts_ms: int) -> list[bytes]:
        """The gateway's signed frames for ``obs`` at ``ts_ms`` (voltages, loadings, switches, flows)."""
        out = []
        v = np.asarray(obs.v_pu, np.float64).copy()
        if self.v_noise_pu:
            v = np.where(v > 0.05, v + self._rng.normal(0.0, self.v_noise_pu, v.size), v)
        for k, off in self.v_offset_pu.items():
            if v[k] > 0.05:
                v[k] += off
        for devs, q, vals in (
            (self.bus_dev, "v_pu", np.clip(v, 0.0, 2.0)),
            (self.line_dev, "loading_pct", np.clip(obs.line_loading_pct, 0.0, 1000.0)),
            (self.sw_dev, "switch_closed", obs.switch_closed.astype(np.float64)),
        ):
            if devs:
                n = len(devs)
                out.append(
                    self.signer.readings(
                        np.full(n, ts_ms, np.int64), {q: vals}, devices=devs, dev_pos=np.arange(n)
                    )
                )
        lp = getattr(obs, "line_p_mw", np.zeros(0))
        if self._flow_pos.size and lp.size:
            n = int(self._flow_pos.size)
            fp = np.asarray(lp, np.float64)[self._flow_pos]
            fq = np.asarray(obs.line_q_mvar, np.float64)[self._flow_pos]
            if self.flow_noise_rel:
                fp = fp + self._rng.normal(0.0, self.flow_noise_rel * np.abs(fp))
                fq = fq + self._rng.normal(0.0, self.flow_noise_rel * np.abs(fq))
            out.append(
                self.signer.readings(
                    np.full(n, ts_ms, np.int64),
                    {"p_mw": fp, "q_mvar": fq},
                    devices=[self.line_dev[int(k)] for k in self._flow_pos],
                    dev_pos=np.arange(n),
                )
            )
        return out

    def forged_frame(self, ts_ms: int, switch_ids: list[int]) -> bytes:
        """A frame an attacker signs with its own key, claiming switches are open."""
        from gridpilot.telemetry import DeviceSigner, generate_key

        devs = [f"switch:{int(s)}" for s in switch_ids]
        fake = DeviceSigner("scada", generate_key(), seq=10**9, clock=lambda: ts_ms / 1000.0)
        return fake.readings(
            np.full(len(devs), ts_ms, np.int64),
            {"switch_closed": np.zeros(len(devs))},
            devices=devs,
            dev_pos=np.arange(len(devs)),
        )

    def roundtrip(self, obs: Any, ts_ms: int, extra: list[bytes] | None = None) -> LinkReport:
        """Send ``obs`` (plus ``extra`` frames, e.g. forged ones) and keep what verifies."""
        from gridpilot.telemetry import QUANTITY_BY_NAME

        self._now_ms = int(ts_ms)
        payloads = self.frames(obs, ts_ms) + list(extra or [])
        vb = self.verifier.verify(payloads)
        r = vb.readings
        pos = self._pos[r.device]
        code = {
            QUANTITY_BY_NAME[q].code: q
            for q in ("v_pu", "loading_pct", "switch_closed", "p_mw", "q_mvar")
        }
        for c, q in code.items():
            m = (r.quantity == c) & (pos >= 0)
            p, v = pos[m], r.value[m]
            if q == "v_pu":
                k = p < self.nb
                self.v_pu[p[k]] = v[k]
            elif q in ("loading_pct", "p_mw", "q_mvar"):
                k = (p >= self.nb) & (p < self.nb + self.nl)
                dest = {
                    "loading_pct": self.line_loading_pct,
                    "p_mw": self.line_p_mw,
                    "q_mvar": self.line_q_mvar,
                }[q]
                dest[p[k] - self.nb] = v[k]
            else:
                k = p >= self.nb + self.nl
                self.switch_closed[p[k] - self.nb - self.nl] = v[k] > 0.5
        rej = vb.rejected_by_reason()  # a summary refusal row stands for several messages
        self.totals["frames"] += len(payloads)
        self.totals["accepted"] += vb.accepted
        self.totals["rejected"] += sum(rej.values())
        return LinkReport(len(payloads), vb.accepted, rej)
