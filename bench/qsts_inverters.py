"""QSTS with smart inverters: the compiled step loop (inverter control iterations inside it)
against the Python runner, same feeder, same seeded PV fleet, same steps, one process.

Per feeder: the fleet of ``gridpilot.control.cvr_fleet.with_pv_fleet`` (40 % of consumer
loads, 4-10 kW, inverters 1.1 × kW on the IEEE 1547 Category B volt-var curve, seed 17) on
the feeder's own loads with the CVR bench's day shape, RegControl/CapControl in time mode.
CPU time (``time.process_time``) of a whole ``InverterTwin.qsts`` call on a fresh twin
(packing and factorising included; the kernels loaded once before by a run on ieee13):
``python_cpu_steps_per_s``, ``compiled_cpu_steps_per_s`` and their ratio ``cpu_speedup``;
``compiled_loop_cpu_steps_per_s`` the step loop alone; ``plain_compiled_cpu_steps_per_s``
the same fleet without its control (a plain twin). Agreement: tap and capacitor operations
per device, the largest gap of the voltage extremes and of the inverters' kW / kvar.

    PYTHONPATH=src .venv/bin/python bench/qsts_inverters.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np

from gridpilot.control.cvr_cli import day_shape
from gridpilot.control.cvr_fleet import with_pv_fleet
from gridpilot.model.importers.opendss import DssSession, grid_from_session
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.model.threephase.builtin import feeder_master
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.inverters import InverterTwin
from gridpilot.twin.unbalanced.qsts_stats import QstsResult
from gridpilot.twin.unbalanced.reference import add_shape, reset_taps


def fleet_grid(name: str, steps: int) -> ThreePhaseGrid:
    """The feeder with the CVR bench's day shape on its loads and the seeded PV fleet."""
    s = DssSession()
    s.compile(feeder_master(name))
    reset_taps(s)
    add_shape(s, "day", day_shape(steps, 15.0), 15.0)
    return with_pv_fleet(grid_from_session(s, name), steps)


def _timed(tw: UnbalancedTwin, steps: int, engine: str) -> tuple[QstsResult, float]:
    c0 = time.process_time()
    r = tw.qsts(steps, 900.0, keep_taps=True, engine=engine)
    return r, time.process_time() - c0


def _gap(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return max((float(np.max(np.abs(a[k] - b[k]))) for k in b), default=0.0)


def row(name: str, steps: int) -> dict[str, Any]:
    """One feeder: both engines on fresh twins, speed and agreement."""
    g = fleet_grid(name, steps)
    tw = InverterTwin(g)
    fast, cpu_c = _timed(tw, steps, "compiled")
    slow, cpu_p = _timed(InverterTwin(g), steps, "python")
    _, cpu_plain = _timed(UnbalancedTwin(g), steps, "compiled")
    vgap = max(float(np.nanmax(np.abs(fast.vmin_pu - slow.vmin_pu))),
               float(np.nanmax(np.abs(fast.vmax_pu - slow.vmax_pu))))  # fmt: skip
    return {
        "grid": name, "steps": steps, "inverters": len(fast.inverter_q_kvar),
        "python_cpu_steps_per_s": round(steps / cpu_p, 1),
        "compiled_cpu_steps_per_s": round(steps / cpu_c, 1),
        "cpu_speedup": round(cpu_p / cpu_c, 2),
        "compiled_loop_cpu_steps_per_s": round(steps / max(fast.loop_cpu_s, 1e-9), 1),
        "plain_compiled_cpu_steps_per_s": round(steps / cpu_plain, 1),
        "control_iterations_per_step": round(tw.control_iterations / steps, 2),
        "pf_iterations_per_step": round(fast.iterations / steps, 2),
        "tap_ops": sum(fast.tap_ops.values()), "cap_ops": sum(fast.cap_ops.values()),
        "ops_equal_per_device": fast.tap_ops == slow.tap_ops and fast.cap_ops == slow.cap_ops,
        "extremes_gap_pu": vgap,
        "p_gap_kw": _gap(fast.inverter_p_kw, slow.inverter_p_kw),
        "q_gap_kvar": _gap(fast.inverter_q_kvar, slow.inverter_q_kvar),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }  # fmt: skip


def main() -> None:
    """Run the rows and print them (JSON lines with ``--json``)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grids", nargs="+", default=["ieee123", "ieee8500"])
    ap.add_argument("--steps", type=int, default=96)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    InverterTwin(fleet_grid("ieee13", 4)).qsts(4, 900.0)  # load the kernels once
    for name in args.grids:
        r = row(name, args.steps)
        print(json.dumps(r) if args.json else r, flush=True)


if __name__ == "__main__":
    main()
