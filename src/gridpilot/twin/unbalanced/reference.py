"""OpenDSS as the reference engine: solve the same feeder there and compare, node by node.

Used by the agreement tests and ``bench/unbalanced.py``; handy for users who want to check
a feeder of their own (``compare(UnbalancedTwin(g).powerflow(), dss_voltages(sess))``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridpilot.model.importers.opendss import DssSession
from gridpilot.twin.unbalanced.results import UnbalancedResult


def tighten(sess: DssSession, control_mode: str = "static") -> None:
    """Solve settings for a fair comparison: tight tolerance, enough iterations."""
    for cmd in (
        f"set controlmode={control_mode}",
        "set tolerance=1e-12",
        "set maxiterations=1000",
        "set maxcontroliter=100",
    ):
        sess.command(cmd)


def reset_taps(sess: DssSession) -> None:
    """Put every regulator on its neutral tap (0)."""
    rc = sess.circuit.RegControls
    for _ in rc:
        rc.TapNumber = 0


def dss_voltages(sess: DssSession) -> dict[str, complex]:
    """``bus.node`` → complex voltage (V) of OpenDSS's present solution."""
    c = sess.circuit
    v = np.asarray(c.AllBusVolts)
    return dict(zip((n.lower() for n in c.AllNodeNames), v[0::2] + 1j * v[1::2], strict=True))


def dss_taps(sess: DssSession) -> dict[str, int]:
    """RegControl name → tap number (steps from neutral)."""
    rc = sess.circuit.RegControls
    return {rc.Name.lower(): int(rc.TapNumber) for _ in rc}


def dss_cap_states(sess: DssSession) -> dict[str, list[int]]:
    """Capacitor name → step states."""
    caps = sess.circuit.Capacitors
    return {caps.Name.lower(): [int(x) for x in caps.States] for _ in caps}


@dataclass(frozen=True)
class Agreement:
    """Largest differences to OpenDSS over all node-phases."""

    max_dv_pu: float
    max_dangle_deg: float
    worst_node: str


def compare(res: UnbalancedResult, ref: dict[str, complex]) -> Agreement:
    """Largest |ΔV| (pu of the node base) and Δangle (deg) between ``res`` and OpenDSS."""
    r = np.array([ref[f"{b}.{k}"] for b, k in res.nodes])
    dv = np.abs(np.abs(res.v) - np.abs(r)) / res.vbase_v
    live = np.abs(r) > 1e-3 * res.vbase_v
    da = np.where(live, np.abs(np.angle(res.v / np.where(live, r, 1.0), deg=True)), 0.0)
    i = int(np.argmax(dv))
    return Agreement(float(dv.max()), float(da.max()), f"{res.nodes[i][0]}.{res.nodes[i][1]}")


def tap_numbers(res: UnbalancedResult, step: float = 0.00625) -> dict[str, int]:
    """Our taps as OpenDSS tap numbers (steps of ``step`` from 1.0)."""
    return {k: round((v - 1.0) / step) for k, v in res.taps.items()}
