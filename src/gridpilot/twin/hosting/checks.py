"""The exact checks of a hosting study on solved columns, as bit flags per column.

Only what the DER causes counts: a node-phase, branch conductor or bus that already breaks
a limit in the base case (the critical hour without the DER) is left out of that check
(``base_exempt`` counts them; the study reports them), and a flow already reversed may
stay so.
"""

from __future__ import annotations

import numpy as np

from gridpilot.twin.hosting.feeder import Measure
from gridpilot.twin.hosting.options import HostingOptions

OVERVOLTAGE = 1
UNDERVOLTAGE = 2
VOLTAGE_STEP = 4
THERMAL = 8
REVERSE_SOURCE = 16
REVERSE_REGULATOR = 32
UNBALANCE = 64
NO_CONVERGENCE = 128

NAMES = {
    OVERVOLTAGE: "overvoltage",
    UNDERVOLTAGE: "undervoltage",
    VOLTAGE_STEP: "voltage_step",
    THERMAL: "thermal",
    REVERSE_SOURCE: "reverse_flow_substation",
    REVERSE_REGULATOR: "reverse_flow_regulator",
    UNBALANCE: "unbalance",
    NO_CONVERGENCE: "no_convergence",
}
EPS = 1e-9


def flag_names(flags: int) -> str:
    """``overvoltage+thermal`` style names of the bits set in ``flags`` ('' if none)."""
    return "+".join(n for b, n in NAMES.items() if flags & b)


def violations(
    base: Measure, full: Measure, step: Measure | None, opts: HostingOptions
) -> np.ndarray:
    """Bit flags per column (0 = every check passes).

    ``full``: the columns with the DER at its output; ``step``: the same after the cloud
    step (PV) — for EV ``None``, the step being from the base case (charger off) to full.
    """
    live = base.v_pu[:, 0] > 0.05
    flags = np.zeros(full.v_pu.shape[1], np.int64)
    if opts.der == "pv":
        ok = live & (base.v_pu[:, 0] <= opts.vmax_pu + EPS)
        flags |= OVERVOLTAGE * np.any(ok[:, None] & (full.v_pu > opts.vmax_pu + EPS), axis=0)
    else:
        ok = live & (base.v_pu[:, 0] >= opts.vmin_pu - EPS)
        flags |= UNDERVOLTAGE * np.any(ok[:, None] & (full.v_pu < opts.vmin_pu - EPS), axis=0)
    other = step.v_pu if step is not None else base.v_pu
    dv = np.abs(full.v_pu - other)
    flags |= VOLTAGE_STEP * np.any(live[:, None] & (dv > opts.dv_step_pct / 100 + EPS), axis=0)
    okb = base.loading[:, 0] <= opts.thermal_pu + EPS
    flags |= THERMAL * np.any(full.loading[okb] > opts.thermal_pu + EPS, axis=0)
    if opts.reverse_flow and opts.der == "pv":
        if base.p_src_kw[0] >= 0:
            flags |= REVERSE_SOURCE * (full.p_src_kw < -EPS)
        fwd = base.p_reg_kw[:, 0] >= 0
        if fwd.any():
            flags |= REVERSE_REGULATOR * np.any(full.p_reg_kw[fwd] < -EPS, axis=0)
    oku = base.vuf_pct[:, 0] <= opts.vuf_limit_pct + 1e-7
    flags |= UNBALANCE * np.any(full.vuf_pct[oku] > opts.vuf_limit_pct + 1e-7, axis=0)
    return flags


def base_exempt(base: Measure, opts: HostingOptions) -> dict[str, int]:
    """How many node-phases, branch conductors and buses already break a limit in the base
    case (left out of their check)."""
    live = base.v_pu[:, 0] > 0.05
    v = base.v_pu[:, 0]
    bad_v = (v > opts.vmax_pu + EPS) if opts.der == "pv" else (v < opts.vmin_pu - EPS)
    return {
        "node_phases": int(np.sum(live & bad_v)),
        "branch_conductors": int(np.sum(base.loading[:, 0] > opts.thermal_pu + EPS)),
        "unbalanced_buses": int(np.sum(base.vuf_pct[:, 0] > opts.vuf_limit_pct + 1e-7)),
    }
