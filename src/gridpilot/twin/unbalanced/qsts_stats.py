"""Online statistics of a QSTS run (no per-step voltage arrays kept) and its result type."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gridpilot.twin.unbalanced.results import three_phase_buses, unbalance_factor

RANGE_A = (0.95, 1.05)
VUF_LIMIT_PCT = 2.0


class Accumulator:
    """Per node-phase extremes and time outside ANSI C84.1 Range A, per bus unbalance,
    losses and branch overloads, updated block by block."""

    def __init__(self, nodes: list[tuple[str, int]], vbase_v: np.ndarray, n_branch: int) -> None:
        self.nodes = nodes
        self.vbase = vbase_v[:, None]
        n = len(nodes)
        self.vmin = np.full(n, np.inf)
        self.vmax = np.full(n, -np.inf)
        self.outside = np.zeros(n, np.int64)
        self.buses, self.tri = three_phase_buses(nodes)
        self.vuf_max = np.zeros(len(self.buses))
        self.vuf_above = np.zeros(len(self.buses), np.int64)
        self.loss_kw: list[np.ndarray] = []
        self.overload = np.zeros(n_branch, np.int64)
        self.max_loading = np.zeros(n_branch)
        self.steps = 0

    def add(self, v: np.ndarray, loss_kw: np.ndarray, loading: np.ndarray | None) -> None:
        """Fold in a block of solved steps (nodes × steps voltages, V)."""
        vpu = np.abs(v) / self.vbase
        live = vpu > 0.05
        self.vmin = np.minimum(self.vmin, np.where(live, vpu, np.inf).min(axis=1))
        self.vmax = np.maximum(self.vmax, np.where(live, vpu, -np.inf).max(axis=1))
        self.outside += np.sum(live & ((vpu < RANGE_A[0]) | (vpu > RANGE_A[1])), axis=1)
        if len(self.buses):
            vuf = 100 * unbalance_factor(np.moveaxis(v[self.tri], 2, 0))  # steps × buses
            self.vuf_max = np.maximum(self.vuf_max, vuf.max(axis=0))
            self.vuf_above += np.sum(vuf > VUF_LIMIT_PCT, axis=0)
        self.loss_kw.append(np.asarray(loss_kw, float))
        if loading is not None and loading.size:
            self.overload += np.sum(loading > 1.0, axis=1)
            self.max_loading = np.maximum(self.max_loading, loading.max(axis=1))
        self.steps += v.shape[1]


@dataclass
class QstsResult:
    """A quasi-static time series: per node-phase voltage extremes and hours outside Range A,
    per three-phase bus unbalance, losses, regulator tap operations and capacitor switchings
    per device, branch overloads. Times in hours, energy in kWh."""

    grid: str
    steps: int
    resolution_s: float
    nodes: list[tuple[str, int]]
    vmin_pu: np.ndarray
    vmax_pu: np.ndarray
    hours_outside_a: np.ndarray
    vuf_buses: list[str]
    vuf_max_pct: np.ndarray
    vuf_hours_above_2pct: np.ndarray
    losses_kw: np.ndarray
    tap_ops: dict[str, int]
    cap_ops: dict[str, int]
    branch_meta: list[tuple[str, int, int, float]]
    overload_hours: np.ndarray
    max_loading: np.ndarray
    elapsed_s: float = 0.0
    factorisations: int = 0
    iterations: int = 0  # power-flow iterations over the run (compiled engine)
    setup_s: float = 0.0  # of elapsed_s: packing and factorising (compiled engine)
    loop_cpu_s: float = 0.0  # process CPU time of the step loop (compiled engine)
    warmup_steps: int = 0  # steps simulated before the recorded ones (controls only)
    tap_series: dict[str, np.ndarray] = field(default_factory=dict)
    cap_series: dict[str, np.ndarray] = field(default_factory=dict)
    # smart inverters (InverterTwin, with keep_taps): settled kW / kvar injected per step
    inverter_p_kw: dict[str, np.ndarray] = field(default_factory=dict)
    inverter_q_kvar: dict[str, np.ndarray] = field(default_factory=dict)

    def nodes_df(self) -> pd.DataFrame:
        """One row per node-phase: vmin_pu, vmax_pu, hours_outside_a."""
        return pd.DataFrame(
            {
                "bus": [b for b, _ in self.nodes],
                "phase": [k for _, k in self.nodes],
                "vmin_pu": self.vmin_pu,
                "vmax_pu": self.vmax_pu,
                "hours_outside_a": self.hours_outside_a,
            }
        )

    def summary(self) -> dict[str, Any]:
        """The run in numbers (JSON-ready)."""
        lo, hi = int(np.argmin(self.vmin_pu)), int(np.argmax(self.vmax_pu))
        h = self.resolution_s / 3600.0
        out: dict[str, Any] = {
            "steps": self.steps,
            "resolution_s": self.resolution_s,
            "nodes": len(self.nodes),
            "vmin_pu": round(float(self.vmin_pu[lo]), 6),
            "vmin_node": f"{self.nodes[lo][0]}.{self.nodes[lo][1]}",
            "vmax_pu": round(float(self.vmax_pu[hi]), 6),
            "vmax_node": f"{self.nodes[hi][0]}.{self.nodes[hi][1]}",
            "node_phases_outside_range_a": int(np.sum(self.hours_outside_a > 0)),
            "max_hours_outside_range_a": round(float(self.hours_outside_a.max(initial=0)), 3),
            "losses_kwh": round(float(self.losses_kw.sum() * h), 3),
            "tap_ops": int(sum(self.tap_ops.values())),
            "tap_ops_per_regulator": self.tap_ops,
            "cap_ops": int(sum(self.cap_ops.values())),
            "cap_ops_per_capacitor": self.cap_ops,
            "overloaded_branch_phases": int(np.sum(self.overload_hours > 0)),
            "elapsed_s": round(self.elapsed_s, 3),
            "steps_per_s": round(self.steps / self.elapsed_s, 1) if self.elapsed_s > 0 else None,
            "factorisations": self.factorisations,
            "setup_s": round(self.setup_s, 3),
        }
        if len(self.vuf_buses):
            j = int(np.argmax(self.vuf_max_pct))
            out["max_unbalance_pct"] = round(float(self.vuf_max_pct[j]), 4)
            out["max_unbalance_bus"] = self.vuf_buses[j]
            out["max_hours_unbalance_above_2pct"] = round(float(self.vuf_hours_above_2pct.max()), 3)
        return out
