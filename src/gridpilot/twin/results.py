"""Typed results of the twin's calculations (arrays in table order; pandas views on demand)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class PowerFlowResult:
    """One power flow. Arrays follow the order of the grid's tables.

    Units: voltages in pu and degrees, powers in MW/Mvar, currents in kA, loading in percent
    of the rating. De-energised buses have ``v_pu`` 0 and ``energised`` False.
    """

    converged: bool
    iterations: int
    engine: str
    bus_id: np.ndarray
    v_pu: np.ndarray
    va_deg: np.ndarray
    energised: np.ndarray
    line_id: np.ndarray
    line_p_from_mw: np.ndarray
    line_q_from_mvar: np.ndarray
    line_p_to_mw: np.ndarray
    line_i_ka: np.ndarray
    line_loading_pct: np.ndarray
    trafo_id: np.ndarray
    trafo_p_hv_mw: np.ndarray
    trafo_p_lv_mw: np.ndarray
    trafo_loading_pct: np.ndarray
    source_p_mw: np.ndarray
    source_q_mvar: np.ndarray
    calc_ms: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def losses_mw(self) -> float:
        """Active losses in lines and transformers, MW."""
        return float(
            np.sum(self.line_p_from_mw + self.line_p_to_mw)
            + np.sum(self.trafo_p_hv_mw + self.trafo_p_lv_mw)
        )

    @property
    def losses_kw(self) -> float:
        """Active losses, kW."""
        return self.losses_mw * 1e3

    def _ext(self, values: np.ndarray, ids: np.ndarray, fn: Any) -> tuple[float, int | None]:
        m = self.energised if values is self.v_pu else np.isfinite(values)
        if not np.any(m):
            return float("nan"), None
        k = int(np.flatnonzero(m)[fn(values[m])])
        return float(values[k]), int(ids[k])

    @property
    def vmin_pu(self) -> float:
        """Lowest voltage of an energised bus, pu."""
        return self._ext(self.v_pu, self.bus_id, np.argmin)[0]

    @property
    def vmin_bus(self) -> int | None:
        """Id of the bus with the lowest voltage."""
        return self._ext(self.v_pu, self.bus_id, np.argmin)[1]

    @property
    def vmax_pu(self) -> float:
        """Highest voltage of an energised bus, pu."""
        return self._ext(self.v_pu, self.bus_id, np.argmax)[0]

    @property
    def vmax_bus(self) -> int | None:
        """Id of the bus with the highest voltage."""
        return self._ext(self.v_pu, self.bus_id, np.argmax)[1]

    @property
    def max_loading_pct(self) -> float:
        """Highest loading of any line or transformer, percent."""
        both = np.concatenate([self.line_loading_pct, self.trafo_loading_pct])
        return float(np.max(both)) if both.size else 0.0

    @property
    def max_loading_branch(self) -> str | None:
        """``line ID`` or ``transformer ID`` of the most loaded branch."""
        if self.line_loading_pct.size and (
            not self.trafo_loading_pct.size
            or self.line_loading_pct.max() >= self.trafo_loading_pct.max()
        ):
            return f"line {int(self.line_id[np.argmax(self.line_loading_pct)])}"
        if self.trafo_loading_pct.size:
            return f"transformer {int(self.trafo_id[np.argmax(self.trafo_loading_pct)])}"
        return None

    def summary(self) -> dict[str, Any]:
        """The headline figures as plain JSON-able values."""
        return {
            "buses": int(self.bus_id.size),
            "converged": bool(self.converged),
            "engine": self.engine,
            "losses_kw": round(self.losses_kw, 4),
            "vmin_pu": round(self.vmin_pu, 6),
            "vmin_bus": self.vmin_bus,
            "vmax_pu": round(self.vmax_pu, 6),
            "vmax_bus": self.vmax_bus,
            "max_loading_pct": round(self.max_loading_pct, 3),
            "max_loading_branch": self.max_loading_branch,
            "source_p_mw": round(float(self.source_p_mw.sum()), 6),
            "deenergised_buses": int((~self.energised).sum()),
            "calc_ms": round(self.calc_ms, 3),
        }

    def bus_df(self) -> pd.DataFrame:
        """Bus voltages as a DataFrame indexed by bus id."""
        return pd.DataFrame(
            {"v_pu": self.v_pu, "va_deg": self.va_deg, "energised": self.energised},
            index=pd.Index(self.bus_id, name="bus"),
        )

    def line_df(self) -> pd.DataFrame:
        """Line flows as a DataFrame indexed by line id."""
        return pd.DataFrame(
            {
                "p_from_mw": self.line_p_from_mw,
                "q_from_mvar": self.line_q_from_mvar,
                "p_to_mw": self.line_p_to_mw,
                "i_ka": self.line_i_ka,
                "loading_pct": self.line_loading_pct,
                "loss_kw": (self.line_p_from_mw + self.line_p_to_mw) * 1e3,
            },
            index=pd.Index(self.line_id, name="line"),
        )

    def trafo_df(self) -> pd.DataFrame:
        """Transformer flows as a DataFrame indexed by transformer id."""
        return pd.DataFrame(
            {
                "p_hv_mw": self.trafo_p_hv_mw,
                "p_lv_mw": self.trafo_p_lv_mw,
                "loading_pct": self.trafo_loading_pct,
            },
            index=pd.Index(self.trafo_id, name="transformer"),
        )


@dataclass
class TimeSeriesResult:
    """A batch of power flows over time steps; per-step arrays have T rows.

    Always present: ``losses_kw``, ``vmin_pu``, ``vmin_bus``, ``vmax_pu``, ``vmax_bus``,
    ``max_loading_pct``, ``source_p_mw``, ``converged``. Optional full arrays, only if asked
    for: ``v_pu`` (T, buses), ``line_loading_pct`` (T, lines), ``trafo_loading_pct``.
    """

    index: np.ndarray
    bus_id: np.ndarray
    line_id: np.ndarray
    trafo_id: np.ndarray
    losses_kw: np.ndarray
    vmin_pu: np.ndarray
    vmin_bus: np.ndarray
    vmax_pu: np.ndarray
    vmax_bus: np.ndarray
    max_loading_pct: np.ndarray
    source_p_mw: np.ndarray
    converged: np.ndarray
    engine: str
    v_pu: np.ndarray | None = None
    line_loading_pct: np.ndarray | None = None
    trafo_loading_pct: np.ndarray | None = None
    calc_s: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        """Number of time steps."""
        return int(self.losses_kw.size)

    @property
    def failed_steps(self) -> np.ndarray:
        """Indices of steps that did not converge."""
        return np.flatnonzero(~self.converged)

    @property
    def steps_per_s(self) -> float:
        """Throughput of the calculation."""
        return self.steps / self.calc_s if self.calc_s > 0 else float("nan")

    def violation_steps(
        self, v_min: float = 0.95, v_max: float = 1.05, loading_max: float = 100.0
    ) -> np.ndarray:
        """Boolean per step: a voltage outside [v_min, v_max] or a loading above ``loading_max``."""
        return (
            (self.vmin_pu < v_min) | (self.vmax_pu > v_max) | (self.max_loading_pct > loading_max)
        )

    def summary(self) -> dict[str, Any]:
        """Headline figures as plain JSON-able values."""
        ok = self.converged
        return {
            "steps": self.steps,
            "engine": self.engine,
            "converged_steps": int(ok.sum()),
            "failed_steps": self.failed_steps[:20].tolist(),
            "energy_losses_mwh": round(
                float(np.nansum(self.losses_kw[ok])) * self.meta.get("step_h", 0.25) / 1e3, 4
            ),
            "vmin_pu": round(float(np.nanmin(self.vmin_pu[ok])), 6) if ok.any() else None,
            "vmax_pu": round(float(np.nanmax(self.vmax_pu[ok])), 6) if ok.any() else None,
            "max_loading_pct": round(float(np.nanmax(self.max_loading_pct[ok])), 3)
            if ok.any()
            else None,
            "violation_steps": int(self.violation_steps()[ok].sum()),
            "calc_s": round(self.calc_s, 4),
            "steps_per_s": round(self.steps_per_s, 1),
        }

    def df(self) -> pd.DataFrame:
        """Per-step headline series as a DataFrame indexed by time."""
        return pd.DataFrame(
            {
                "losses_kw": self.losses_kw,
                "vmin_pu": self.vmin_pu,
                "vmax_pu": self.vmax_pu,
                "max_loading_pct": self.max_loading_pct,
                "source_p_mw": self.source_p_mw,
                "converged": self.converged,
            },
            index=pd.Index(self.index, name="time"),
        )
