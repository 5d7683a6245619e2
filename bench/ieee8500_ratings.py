"""The IEEE 8500-node feeder's line loading at the evening peak with its conductors' ratings
(``WireData.dss`` via ``LineGeometry.dss``) against OpenDSS's 400 A placeholder
(docs/agent.md, "Line ratings of ieee8500").

    PYTHONPATH=src .venv/bin/python bench/ieee8500_ratings.py --json

The three-phase world at 17:00 on a summer day (noise off, no demo fleet; the loop's
``EVENING``), settled: per line its largest conductor current over its rating, with the
rating gridpilot sets and with 400 A where the script gives none; the lines above 100 %.
Then OpenDSS compiling the same master with the same ratings (``feeder_session``), the same
load multiplier and static control: its largest line loading and the lines above 100 %.
With ``--lines-geometry PATH`` (the distribution's ``Lines-Geometry.dss``, not shipped), line
by line: does it give each line of the master's ``Lines.dss`` the geometry named as that
line's linecode?
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from typing import Any

import numpy as np

EVENING = 200 * 96 + 17 * 4


def _over(loading: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 1) for k, v in sorted(loading.items(), key=lambda x: -x[1]) if v > 100}


def world_loading() -> tuple[dict[str, Any], float]:
    """The world's per-line loading (%) at the peak, real ratings and the placeholder."""
    from gridpilot.agent import ThreePhaseWorld
    from gridpilot.agent.world3p import three_phase_grid

    g = three_phase_grid("ieee8500")
    rated = g.meta.get("ratings", {})
    w = ThreePhaseWorld(g, start_step=EVENING, noise=0.0, fleet=False)
    w.observe()
    res = w.phase_result()
    mp, _ = w.injections.multipliers(w.grid, w.controlled(w.demand()))
    mult = float(np.median(mp[: len(w.grid3p.loads)]))
    real: dict[str, float] = {}
    trunk: dict[str, float] = {}  # the 397 kcmil ACSR lines (630 A)
    placeholder: dict[str, float] = {}
    amps: dict[str, float] = {}
    for m, i in zip(res.branch_meta, np.abs(res.branch_i_a), strict=True):
        name, rating = m[0].lower(), float(m[3])
        if rating <= 0:
            continue
        amps[name] = max(amps.get(name, 0.0), float(i))
        real[name] = max(real.get(name, 0.0), 100 * float(i) / rating)
        if rating == 630.0:
            trunk[name] = real[name]
        old = 400.0 if name in rated else rating
        placeholder[name] = max(placeholder.get(name, 0.0), 100 * float(i) / old)
    top = max(real, key=real.__getitem__)
    out = {"time": str(w.time), "load_multiplier": round(mult, 4), "lines_rated": len(rated),
           "max_loading_pct": round(real[top], 1), "max_line": top,
           "max_line_amps": round(amps[top], 1),
           "over_100_pct": _over(real),
           "trunk_max_loading_pct": round(max(trunk.values()), 1),
           "trunk_max_line": max(trunk, key=trunk.__getitem__),
           "placeholder_max_loading_pct": round(max(placeholder.values()), 1),
           "placeholder_over_100_pct_count": len(_over(placeholder)),
           "head_amps": round(amps.get("hvmv_sub_connector", float("nan")), 1)}  # fmt: skip
    return out, mult


def dss_loading(mult: float) -> dict[str, Any]:
    """OpenDSS on the same ratings and multiplier: the largest line loading, lines over."""
    from gridpilot.model.threephase.builtin import feeder_session

    s = feeder_session("ieee8500")[0]
    for cmd in (
        f"set loadmult={mult}",
        "set controlmode=static maxcontroliter=50",
        "set maxiterations=100",
    ):
        s.command(cmd)
    c = s.circuit
    c.Solution.Solve()
    loading: dict[str, float] = {}
    i = c.Lines.First
    while i:
        name = c.Lines.Name.lower()
        c.SetActiveElement(f"Line.{name}")
        mag = np.asarray(c.ActiveCktElement.CurrentsMagAng[0::2])
        ph = int(c.Lines.Phases)
        loading[name] = 100 * float(mag[:ph].max()) / float(c.Lines.NormAmps)
        i = c.Lines.Next
    top = max(loading, key=loading.__getitem__)
    return {"converged": bool(c.Solution.Converged), "max_loading_pct": round(loading[top], 1),
            "max_line": top, "over_100_pct": _over(loading)}  # fmt: skip


def lines_geometry_check(path: str) -> dict[str, Any]:
    """Lines.dss's linecode against Lines-Geometry.dss's geometry, line by line."""
    import re

    from gridpilot.model.threephase.builtin import feeder_master

    def read(p: Any, key: str) -> dict[str, str]:
        with open(p, encoding="utf-8") as f:
            rows = re.findall(r"(?im)^\s*new\s+line\.(\S+)(.*)$", f.read())
        return {n.lower(): dict((k.lower(), v.lower()) for k, v in
                                re.findall(r"(\w+)=(\S+)", rest)).get(key, "")
                for n, rest in rows}  # fmt: skip

    codes = read(feeder_master("ieee8500").parent / "Lines.dss", "linecode")
    geoms = read(path, "geometry")
    alt = read(path, "linecode")
    same = sum(1 for n, c in codes.items() if c and geoms.get(n) == c)
    kept = sum(1 for n, c in codes.items() if c and not geoms.get(n) and alt.get(n) == c)
    return {"lines": len(codes), "lines_geometry": len(geoms),
            "same_names": set(codes) == set(geoms), "geometry_is_linecode": same,
            "same_linecode_no_geometry": kept,
            "other": sum(1 for c in codes.values() if c) - same - kept,
            "no_linecode": sum(1 for c in codes.values() if not c)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print JSON")
    ap.add_argument("--lines-geometry", help="the distribution's Lines-Geometry.dss")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    world, mult = world_loading()
    out = {"bench": "ieee8500_ratings", "world": world, "opendss": dss_loading(mult),
           "loadavg_1min_at_end": round(os.getloadavg()[0], 2)}  # fmt: skip
    if args.lines_geometry:
        out["lines_geometry"] = lines_geometry_check(args.lines_geometry)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
