"""The IEEE 123 feeder's head and trunk current: gridpilot's three-phase world against OpenDSS on
the same load, and what the loop does about it in the demo (docs/agent.md, "Line ratings").

    PYTHONPATH=src .venv/bin/python bench/ieee123_head.py

1. The world at the demo's start (10 June 16:00; noise off, no demo fleet: every load at the
   default shape's multiplier) against OpenDSS compiling the same master file with the same
   multiplier (``loadmult``), ties Sw7/Sw8 open, regulators in static control mode: per-phase
   current of ``l115`` (the head line) and ``sw1``, and OpenDSS's own normamps/emergamps of
   them (the script gives none) beside gridpilot's rating.
2. The demo (``build_demo("ieee123")``: fleet, noise, the loop) stepped ``--steps`` minutes:
   per step the head (``l115``) and trunk (``l7``) phase currents, the largest loading and
   the loop's DR level and battery set points.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np


def _rows(result, name: str) -> list[int]:  # type: ignore[no-untyped-def]
    return [k for k, m in enumerate(result.branch_meta) if m[0].lower() == name]


def compare() -> None:
    """Part 1: the world against OpenDSS on the same load."""
    from gridpilot.agent import ThreePhaseWorld
    from gridpilot.agent.cli import DEMO_START_STEP
    from gridpilot.agent.world3p import three_phase_grid
    from gridpilot.model.importers.opendss import DssSession
    from gridpilot.model.threephase.builtin import feeder_master

    w = ThreePhaseWorld(three_phase_grid("ieee123"), start_step=DEMO_START_STEP, noise=0.0,
                        fleet=False)  # fmt: skip
    w.observe()
    res = w.phase_result()
    mp, _ = w.injections.multipliers(w.grid, w.controlled(w.demand()))
    mult = float(np.median(mp[: len(w.grid3p.loads)]))
    s = DssSession()
    s.compile(feeder_master("ieee123"))
    for cmd in ("open line.sw7 1", "open line.sw8 1", f"set loadmult={mult}",
                "set controlmode=static maxcontroliter=50"):  # fmt: skip
        s.command(cmd)
    c = s.circuit
    c.Solution.Solve()
    print(f"{w.time}: load multiplier {mult:.4f}, OpenDSS converged {c.Solution.Converged}")
    for name in ("l115", "sw1"):
        k = _rows(res, name)
        ours = np.abs(res.branch_i_a[k])
        c.SetActiveElement(f"Line.{name}")
        theirs = np.asarray(c.ActiveCktElement.CurrentsMagAng[0::2][:3])
        c.Lines.Name = name
        print(f"  {name}: gridpilot {np.round(ours, 1)} A (rating {res.branch_meta[k[0]][3]} A), "
              f"OpenDSS {np.round(theirs, 1)} A (normamps {c.Lines.NormAmps}, "
              f"emergamps {c.Lines.EmergAmps})")  # fmt: skip


def demo(steps: int) -> None:
    """Part 2: the demo loop on ieee123."""
    from gridpilot.agent.cli import build_demo

    o = build_demo("ieee123")
    w = o.world
    for _ in range(steps):
        o.step()
        res, obs = w.phase_result(), o.last
        cur = {n: np.round(np.abs(res.branch_i_a[_rows(res, n)]), 0) for n in ("l115", "l7")}
        i = int(np.argmax(obs.line_loading_pct))
        print(f"  {str(obs.time)[11:16]} head {cur['l115']} A, l7 {cur['l7']} A; max loading "
              f"{obs.line_loading_pct[i]:.1f} % on {w.view.line_branch[int(w.grid.line.ids[i])]}; "
              f"DR {o.dr_requests}, batteries {np.round(obs.storage_p_mw, 2)} MW")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8, help="demo steps (minutes)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    compare()
    demo(args.steps)


if __name__ == "__main__":
    main()
