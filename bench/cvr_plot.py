"""Figure of a CVR day: the lowest and highest node-phase voltage per 15-minute step,
baseline (OpenDSS's local controls, with the PV fleet's volt-var) against the optimised
schedule, Range A dashed. One run prints its summary JSON and writes the PNG.

    PYTHONPATH=src .venv/bin/python bench/cvr_plot.py ieee123 --fleet --cvr-loads \\
        --out docs/img/cvr_ieee123.png
"""

from __future__ import annotations

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from gridpilot.control.cvr import with_cvr_loads
from gridpilot.control.cvr_cli import day_shape
from gridpilot.control.cvr_fleet import with_pv_fleet
from gridpilot.control.cvr_run import cvr_day
from gridpilot.model import load_grid


def main(argv: list[str] | None = None) -> None:
    """Run the day and draw it."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("grid")
    ap.add_argument("--steps", type=int, default=96)
    ap.add_argument("--fleet", action="store_true", help="add the seeded PV fleet")
    ap.add_argument("--cvr-loads", action="store_true")
    ap.add_argument("--out", default="cvr.png")
    a = ap.parse_args(argv)
    g = load_grid(a.grid)
    g = with_pv_fleet(g, a.steps) if a.fleet else g
    g = with_cvr_loads(g) if a.cvr_loads else g
    res = cvr_day(g, day_shape(a.steps, 15.0))
    sm = res.summary()
    print(json.dumps(sm))
    h = (np.arange(a.steps) + 1) * 0.25
    fig, ax = plt.subplots(figsize=(9, 4))
    for fig_, label, col in ((res.baseline, "baseline (local controls)", "tab:red"),
                             (res.optimised, "CVR (optimised)", "tab:blue")):  # fmt: skip
        ax.fill_between(h, fig_.v_lo, fig_.v_hi, color=col, alpha=0.2)
        ax.plot(h, fig_.v_lo, color=col, lw=1, label=f"{label}: min / max node-phase")
        ax.plot(h, fig_.v_hi, color=col, lw=1)
    for y in (0.95, 1.05):
        ax.axhline(y, color="k", ls="--", lw=0.8)
    b, o = sm["baseline"], sm["optimised"]
    ax.set_title(f"{res.grid}{' + PV fleet (volt-var)' if a.fleet else ''}: energy saved "
                 f"{sm['energy_saved_pct']:.2f} %, violation min {b['violation_min']:.0f} -> "
                 f"{o['violation_min']:.0f}, taps {b['tap_ops']} -> {o['tap_ops']}, caps "
                 f"{b['cap_ops']} -> {o['cap_ops']}", fontsize=9)  # fmt: skip
    ax.set_xlabel("hour")
    ax.set_ylabel("voltage (pu)")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)


if __name__ == "__main__":
    main()
