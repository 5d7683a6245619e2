"""The exact checks of a hosting study on solved columns, as bit flags per column.

Each limit is relative to the base case where the base already breaks it: a node already
above ``vmax_pu`` may not rise further, a branch already overloaded may not load more, a bus
already above the unbalance limit may not get worse, a flow already reversed may stay so.
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
    vmax = np.maximum(opts.vmax_pu, base.v_pu)
    vmin = np.minimum(opts.vmin_pu, base.v_pu)
    if opts.der == "pv":
        flags |= OVERVOLTAGE * np.any(live[:, None] & (full.v_pu > vmax + EPS), axis=0)
    else:
        flags |= UNDERVOLTAGE * np.any(live[:, None] & (full.v_pu < vmin - EPS), axis=0)
    other = step.v_pu if step is not None else base.v_pu
    dv = np.abs(full.v_pu - other)
    flags |= VOLTAGE_STEP * np.any(live[:, None] & (dv > opts.dv_step_pct / 100 + EPS), axis=0)
    lim = np.maximum(opts.thermal_pu, base.loading)
    flags |= THERMAL * np.any(full.loading > lim + EPS, axis=0)
    if opts.reverse_flow and opts.der == "pv":
        if base.p_src_kw[0] >= 0:
            flags |= REVERSE_SOURCE * (full.p_src_kw < -EPS)
        fwd = base.p_reg_kw[:, 0] >= 0
        if fwd.any():
            flags |= REVERSE_REGULATOR * np.any(full.p_reg_kw[fwd] < -EPS, axis=0)
    vuf_lim = np.maximum(opts.vuf_limit_pct, base.vuf_pct)
    flags |= UNBALANCE * np.any(full.vuf_pct > vuf_lim + 1e-7, axis=0)
    return flags
