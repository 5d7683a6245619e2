"""The twin's verdict on a FLISR plan's final state against the plan's own limits."""

from __future__ import annotations

from dataclasses import dataclass

# tolerances of the check: voltages in pu, loading in percentage points
V_TOL_PU = 1e-4
LOADING_TOL_PCT = 0.5


@dataclass(frozen=True)
class TwinVerdict:
    """Outcome of a full power flow of a switch state: ``converged``; ``vmin_pu``/``vmax_pu``
    over energised buses and ``max_loading_pct`` over lines and transformers (S/Sn); how far
    they exceed the limits (``v_excess_pu``, ``load_excess_pct``, 0 when within) and
    ``within`` (converged and no excess beyond the tolerances)."""

    converged: bool
    vmin_pu: float
    vmax_pu: float
    max_loading_pct: float
    v_excess_pu: float
    load_excess_pct: float
    limits: tuple[float, float, float] = (0.0, float("inf"), float("inf"))

    @property
    def within(self) -> bool:
        """Converged and inside the limits (within the check's tolerances)."""
        return (
            self.converged
            and self.v_excess_pu <= V_TOL_PU
            and (self.load_excess_pct <= LOADING_TOL_PCT)
        )

    @property
    def excess(self) -> float:
        """One number to compare failing states: voltage excess plus loading excess / 100."""
        return self.v_excess_pu + self.load_excess_pct / 100 if self.converged else float("inf")

    @property
    def reason(self) -> str:
        """Why the check fails, in words ('' when it holds)."""
        if not self.converged:
            return "power flow did not converge"
        if self.within:
            return ""
        vmin_l, vmax_l, load_l = self.limits
        out = []
        if self.vmin_pu < vmin_l - V_TOL_PU:
            out.append(f"vmin {self.vmin_pu:.4f} pu < {vmin_l:.4f}")
        if self.vmax_pu > vmax_l + V_TOL_PU:
            out.append(f"vmax {self.vmax_pu:.4f} pu > {vmax_l:.4f}")
        if self.max_loading_pct > load_l + LOADING_TOL_PCT:
            out.append(f"loading {self.max_loading_pct:.1f} % > {load_l:.1f} %")
        return "limits exceeded: " + ", ".join(out)


def twin_verdict(
    check: tuple[bool, float, float, float], limits: tuple[float, float, float]
) -> TwinVerdict:
    """A :class:`TwinVerdict` from ``(converged, vmin_pu, vmax_pu, max_loading_pct)`` and limits
    ``(v_min_pu, v_max_pu, max_loading_pct)``."""
    ok, vmin, vmax, load = check
    vmin_l, vmax_l, load_l = limits
    if not ok:
        nan = float("nan")
        return TwinVerdict(False, nan, nan, nan, float("inf"), float("inf"), limits)
    v_ex = max(vmin_l - vmin, vmax - vmax_l, 0.0) if vmin == vmin else 0.0  # NaN: none energised
    l_ex = max(load - load_l, 0.0)
    return TwinVerdict(True, vmin, vmax, load, v_ex, l_ex, limits)
