"""Typed results of the unbalanced power flow, per node-phase, with pandas views."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

A = np.exp(2j * np.pi / 3)


def unbalance_factor(v_abc: np.ndarray) -> np.ndarray:
    """Voltage unbalance factor |V₂|/|V₁| (ratio, not %) of phase triples (…, 3)."""
    v1 = (v_abc[..., 0] + A * v_abc[..., 1] + A * A * v_abc[..., 2]) / 3.0
    v2 = (v_abc[..., 0] + A * A * v_abc[..., 1] + A * v_abc[..., 2]) / 3.0
    return np.abs(v2) / np.maximum(np.abs(v1), 1e-12)


def three_phase_buses(nodes: list[tuple[str, int]]) -> tuple[list[str], np.ndarray]:
    """Buses that have phases 1, 2 and 3, and their node indices (k, 3)."""
    pos: dict[str, dict[int, int]] = {}
    for i, (b, k) in enumerate(nodes):
        pos.setdefault(b, {})[k] = i
    buses = [b for b, ks in pos.items() if all(p in ks for p in (1, 2, 3))]
    idx = np.array([[pos[b][p] for p in (1, 2, 3)] for b in buses], np.int64).reshape(-1, 3)
    return buses, idx


@dataclass
class UnbalancedResult:
    """One solved snapshot: node voltages (V, complex), branch currents and states.

    ``v_pu`` is on each bus's line-to-neutral base; ``branch_i_a`` is each branch conductor's
    current into its first terminal (A); ``taps`` maps regulating transformers to their tap
    (pu) and ``cap_states`` capacitors to their step states.
    """

    grid: str
    nodes: list[tuple[str, int]]
    v: np.ndarray
    vbase_v: np.ndarray
    branch_i_a: np.ndarray
    branch_meta: list[tuple[str, int, int, float]]
    losses_kw: float
    losses_kvar: float
    iterations: int
    control_iterations: int = 0
    taps: dict[str, float] = field(default_factory=dict)
    cap_states: dict[str, list[int]] = field(default_factory=dict)

    @property
    def v_pu(self) -> np.ndarray:
        """Voltage magnitude per node-phase (pu)."""
        return np.abs(self.v) / self.vbase_v

    @property
    def angle_deg(self) -> np.ndarray:
        """Voltage angle per node-phase (degrees)."""
        return np.angle(self.v, deg=True)

    def nodes_df(self) -> pd.DataFrame:
        """One row per node-phase: bus, phase, v_pu, angle_deg, v_kv."""
        return pd.DataFrame(
            {
                "bus": [b for b, _ in self.nodes],
                "phase": [k for _, k in self.nodes],
                "v_pu": self.v_pu,
                "angle_deg": self.angle_deg,
                "v_kv": np.abs(self.v) / 1e3,
            }
        )

    def branches_df(self) -> pd.DataFrame:
        """One row per branch conductor: name, phase, i_a, loading (fraction of norm amps)."""
        i = np.abs(self.branch_i_a)
        rating = np.array([m[3] for m in self.branch_meta])
        return pd.DataFrame(
            {
                "branch": [m[0] for m in self.branch_meta],
                "phase": [m[2] for m in self.branch_meta],
                "i_a": i,
                "loading": np.where(rating > 0, i / np.where(rating > 0, rating, 1), np.nan),
            }
        )

    def unbalance(self) -> pd.Series:
        """Voltage unbalance factor (%) of every three-phase bus."""
        buses, idx = three_phase_buses(self.nodes)
        return pd.Series(100 * unbalance_factor(self.v[idx]), index=buses, name="vuf_pct")

    def summary(self) -> dict[str, Any]:
        """Losses, per-phase voltage extremes with node and phase, max unbalance, loading."""
        vpu = self.v_pu
        live = vpu > 0.05
        lo = int(np.argmin(np.where(live, vpu, np.inf)))
        hi = int(np.argmax(np.where(live, vpu, -np.inf)))
        out: dict[str, Any] = {
            "nodes": len(self.nodes),
            "losses_kw": round(self.losses_kw, 3),
            "vmin_pu": round(float(vpu[lo]), 6),
            "vmin_node": f"{self.nodes[lo][0]}.{self.nodes[lo][1]}",
            "vmax_pu": round(float(vpu[hi]), 6),
            "vmax_node": f"{self.nodes[hi][0]}.{self.nodes[hi][1]}",
        }
        for ph in (1, 2, 3):
            sel = np.array([k == ph for _, k in self.nodes]) & live
            if sel.any():
                ii = np.flatnonzero(sel)
                out[f"vmin_pu_phase{ph}"] = round(float(vpu[ii].min()), 6)
                out[f"vmax_pu_phase{ph}"] = round(float(vpu[ii].max()), 6)
        vuf = self.unbalance()
        if len(vuf):
            out["max_unbalance_pct"] = round(float(vuf.max()), 4)
            out["max_unbalance_bus"] = str(vuf.idxmax())
        br = self.branches_df()
        if len(br) and br["loading"].notna().any():
            j = int(br["loading"].fillna(-1).to_numpy().argmax())
            out["max_loading_pct"] = round(100 * float(br["loading"].iloc[j]), 2)
            out["max_loading_branch"] = f"{br['branch'].iloc[j]}.{br['phase'].iloc[j]}"
        out["taps"] = {k: round(v, 5) for k, v in self.taps.items()}
        out["capacitors_on"] = sum(any(s) for s in self.cap_states.values())
        out["iterations"] = self.iterations
        out["control_iterations"] = self.control_iterations
        return out
