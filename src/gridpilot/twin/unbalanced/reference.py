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


@dataclass
class DssQsts:
    """OpenDSS's own time series, stepped from Python: per node extremes, operations."""

    nodes: list[str]
    vmin_pu: np.ndarray
    vmax_pu: np.ndarray
    tap_ops: dict[str, int]
    cap_ops: dict[str, int]
    tap_series: dict[str, list[int]]
    solve_s: float
    solve_cpu_s: float = 0.0  # process CPU time of the Solve calls (robust on a busy machine)


def add_shape(sess: DssSession, name: str, mult: np.ndarray, minutes: float) -> None:
    """Define a loadshape in OpenDSS and make it every load's yearly shape."""
    values = " ".join(f"{x:.6f}" for x in mult)
    sess.command(f"new loadshape.{name} npts={len(mult)} minterval={minutes:g} mult=({values})")
    sess.command(f"batchedit load..* yearly={name}")


def dss_qsts(sess: DssSession, steps: int, resolution_s: float, tol: float = 1e-9) -> DssQsts:
    """Yearly-mode time series with ``controlmode=time`` in OpenDSS, one step per call;
    only the ``Solve`` calls are timed (``solve_s``)."""
    import time

    c = sess.circuit
    sess.command(f"set mode=yearly stepsize={resolution_s:g}s number=1")
    for cmd in ("set controlmode=time", "set maxcontroliter=100", f"set tolerance={tol:g}",
                "set maxiterations=200"):  # fmt: skip
        sess.command(cmd)
    names = [n.lower() for n in c.AllNodeNames]
    vmin = np.full(len(names), np.inf)
    vmax = np.full(len(names), -np.inf)
    prev_t, prev_c = dss_taps(sess), dss_cap_states(sess)
    tap_ops = dict.fromkeys(prev_t, 0)
    cap_ops = dict.fromkeys(prev_c, 0)
    series: dict[str, list[int]] = {k: [] for k in prev_t}
    solve_s = cpu_s = 0.0
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        c.Solution.Solve()
        solve_s += time.perf_counter() - t0
        cpu_s += time.process_time() - c0
        v = np.asarray(c.AllBusVmagPu)
        live = v > 0.05
        vmin = np.where(live, np.minimum(vmin, v), vmin)
        vmax = np.where(live, np.maximum(vmax, v), vmax)
        taps, caps = dss_taps(sess), dss_cap_states(sess)
        for k, t in taps.items():
            tap_ops[k] += abs(t - prev_t[k])
            series[k].append(t)
        for k, st in caps.items():
            cap_ops[k] += sum(abs(a - b) for a, b in zip(st, prev_c[k], strict=True))
        prev_t, prev_c = taps, caps
    return DssQsts(names, vmin, vmax, tap_ops, cap_ops, series, solve_s, cpu_s)


@dataclass(frozen=True)
class DssRunTime:
    """OpenDSS's own yearly loop timed as one ``Solve`` of all the steps (no call per step)."""

    solve_s: float
    solve_cpu_s: float
    final_taps: dict[str, int]  # where its regulators ended (a check that it did the work)


def dss_yearly_timed(sess: DssSession, steps: int, resolution_s: float,
                     tol: float = 1e-4) -> DssRunTime:  # fmt: skip
    """Time OpenDSS at its fastest: yearly mode with ``controlmode=time`` and
    ``number=steps``, one ``Solve`` (its own step loop in compiled code; stepping it from
    Python, as :func:`dss_qsts` must to read each step, adds a call per step: ieee123 ~5 %
    of its time). Same settings as :func:`dss_qsts`."""
    import time

    sess.command(f"set mode=yearly stepsize={resolution_s:g}s number={steps}")
    for cmd in ("set controlmode=time", "set maxcontroliter=100", f"set tolerance={tol:g}",
                "set maxiterations=200"):  # fmt: skip
        sess.command(cmd)
    t0, c0 = time.perf_counter(), time.process_time()
    sess.circuit.Solution.Solve()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return DssRunTime(wall, cpu, dss_taps(sess))


def extremes_gap(ours_nodes: list[tuple[str, int]], vmin: np.ndarray, vmax: np.ndarray,
                 ref: DssQsts) -> float:  # fmt: skip
    """Largest |Δ| of the per node-phase voltage extremes (pu) between us and OpenDSS."""
    pos = {n: i for i, n in enumerate(ref.nodes)}
    idx = np.array([pos[f"{b}.{k}"] for b, k in ours_nodes])
    return float(max(np.abs(vmin - ref.vmin_pu[idx]).max(), np.abs(vmax - ref.vmax_pu[idx]).max()))
