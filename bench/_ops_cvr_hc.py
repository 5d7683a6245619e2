"""Rows of ``bench/unbalanced_ops.py`` for CVR with smart inverters and hosting capacity on
Dask (importable by the integrator: each function returns one row dict with the bench's
columns; extra keys add detail).

* :func:`cvr_row` with ``pv``: the seeded PV fleet (``gridpilot.control.cvr_fleet``, 40 % of loads,
  4-10 kW, inverters 1.1 × kW on the IEEE 1547 Category B volt-var curve) on the feeder;
  baseline = OpenDSS's local controls (RegControl, CapControl and the inverters' volt-var)
  as the engine reproduces them; OpenDSS itself stepped over the same day with the same
  fleet as PVSystems and one InvControl (``opendss_*``).
* :func:`hosting_dask_row`: the hosting study of every node-phase (or ``n_nodes`` sampled)
  on a ``dask.distributed`` LocalCluster of ``workers`` single-threaded processes, the same
  code as the one-process run (``hosting_capacity_on``).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from gridpilot.control.cvr import CvrOptions, with_cvr_loads
from gridpilot.control.cvr_cli import day_shape
from gridpilot.control.cvr_fleet import with_pv_fleet
from gridpilot.control.cvr_run import cvr_day
from gridpilot.model.importers.opendss import DssSession, grid_from_session
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.model.threephase.builtin import feeder_master
from gridpilot.twin.unbalanced.reference import add_shape, reset_taps


def _dss_fleet(s: DssSession, g: ThreePhaseGrid) -> None:
    """The grid's PV fleet and its inverter control as OpenDSS PVSystems and an InvControl
    (curves held flat beyond their end points: OpenDSS would extrapolate)."""
    shape = g.loadshapes["pv_day"]
    add_pv = " ".join(f"{x:.6f}" for x in shape.mult)
    s.command(f"new loadshape.pv_day npts={len(shape.mult)} "
              f"minterval={shape.interval_h * 60:g} mult=({add_pv})")  # fmt: skip
    ctl = g.invcontrols[0]
    ratings = {r.der.lower(): r for r in ctl.inverters}
    names = []
    for ld in g.loads:
        r = ratings.get(ld.name.lower())
        if ld.kind != "pv" or r is None:
            continue
        nodes = ".".join(str(n) for n in ld.terminal.nodes)
        s.command(f"new pvsystem.{ld.name} phases={ld.phases} bus1={ld.terminal.bus}.{nodes} "
                  f"kv={ld.kv} kva={r.kva} pmpp={r.pmpp_kw} irradiance=1 yearly=pv_day "
                  "%cutin=0 %cutout=0 vminpu=0.9 vmaxpu=1.1")  # fmt: skip
        names.append(f"pvsystem.{ld.name}")
    vv = ctl.voltvar
    xs = " ".join(str(x) for x in (0.5, *vv.v, 1.5))
    ys = " ".join(str(y) for y in (vv.y[0], *vv.y, vv.y[-1]))
    s.command(f"new xycurve.fleet_vv npts={len(vv.v) + 2} xarray=[{xs}] yarray=[{ys}]")
    s.command(f"new invcontrol.fleet mode=voltvar vvc_curve1=fleet_vv RefReactivePower=VARMAX "
              f"deltaQ_factor={ctl.delta_q} derlist=[{' '.join(names)}]")  # fmt: skip


def cvr_row(name: str, steps: int, exp_loads: bool, pv: bool = False,
            day_plan: bool = False) -> dict[str, Any]:  # fmt: skip
    """One CVR row: our optimiser vs the baseline, and OpenDSS's own run; ``pv``: with the
    smart-inverter fleet (in OpenDSS too); ``day_plan``: the day-ahead DP schedule instead
    of the hourly decisions."""
    from unbalanced_ops import _dss_day  # the same OpenDSS stepping as the other rows

    s = DssSession()
    s.compile(feeder_master(name))
    reset_taps(s)
    g = grid_from_session(s, name)
    if pv:
        g = with_pv_fleet(g, steps)
    mult = day_shape(steps, 15.0)
    if exp_loads:
        g = with_cvr_loads(g)
        s.command("batchedit load..* model=4 cvrwatts=0.8 cvrvars=3")
    t0 = time.perf_counter()
    res = cvr_day(g, mult, opts=CvrOptions(day_plan=day_plan))
    total_s = time.perf_counter() - t0
    add_shape(s, "cvrbench", mult, 15.0)
    if pv:
        _dss_fleet(s, g)
    sm = res.summary()
    b, o = sm["baseline"], sm["optimised"]
    kind = ("cvr_pv" if pv else "cvr") + ("_exp" if exp_loads else "")
    row = {"grid": name, "capability": kind, "steps": steps,
           "decision_ms_p50": sm["decision_ms_p50"], "decision_ms_p99": sm["decision_ms_p99"],
           "energy_saved_pct": sm["energy_saved_pct"], "violation_min": o["violation_min"],
           "tap_ops": o["tap_ops"], "cap_ops": o["cap_ops"],
           "baseline_tap_ops": b["tap_ops"], "baseline_cap_ops": b["cap_ops"],
           "baseline_violation_min": b["violation_min"], "baseline_energy_kwh": b["energy_kwh"],
           "violation_min_regulated": o["violation_min_regulated"],
           "baseline_violation_min_regulated": b["violation_min_regulated"],
           "energy_kwh": o["energy_kwh"], "method": sm.get("method", "hourly")}  # fmt: skip
    for k in ("plan_iterations", "plan_kwh_per_op", "plan_steps_out_of_range_a"):
        if k in sm:
            row[k] = sm[k]
    if pv:
        pv_kw = -sum(ld.kw for ld in g.loads if ld.kind == "pv")
        row.update({"vmin_pu": o["vmin_pu"], "vmax_pu": o["vmax_pu"],
                    "pv_systems": len(g.invcontrols[0].inverters), "pv_kw": round(pv_kw, 1),
                    "cvr_total_s": round(total_s, 2),
                    "load_avg_1min": round(os.getloadavg()[0], 2)})  # fmt: skip
    else:
        row.update({"min_gain_pct": sm["min_gain_pct"], "cvr_total_s": round(total_s, 2)})
    row.update(_dss_day(s, steps))
    return row


def hosting_dask_row(name: str, der: str, n_nodes: int | None, workers: int) -> dict[str, Any]:
    """The hosting study on a Dask LocalCluster (``workers`` processes, one thread each)."""
    from dask.distributed import Client, LocalCluster

    from gridpilot.twin.hosting import (
        HostingOptions,
        clear_sky_pv,
        critical_scenarios,
        hosting_capacity_on,
    )
    from gridpilot.twin.hosting.feeder import phase_nodes
    from gridpilot.twin.hosting.profiles import feeder_load_profile

    s = DssSession()
    s.compile(feeder_master(name))
    g = grid_from_session(s, name)
    load = feeder_load_profile(g)
    scs = critical_scenarios(load, clear_sky_pv(len(load)), der)
    nodes = phase_nodes(g)
    if n_nodes is not None and n_nodes < len(nodes):
        pick = np.random.default_rng(0).choice(len(nodes), n_nodes, replace=False)
        nodes = [nodes[i] for i in sorted(pick)]
    env = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, env=env) as cluster, Client(cluster) as client:  # fmt: skip
        t0 = time.perf_counter()
        res = hosting_capacity_on(client, g, scs, HostingOptions(der=der), nodes=nodes,
                                  parts=workers)  # fmt: skip
        wall = time.perf_counter() - t0
    return {"grid": name, "capability": f"hosting_{der}_dask", "hc_nodes": len(nodes),
            "hc_s": round(wall, 2), "hc_workers": workers,
            "load_avg_1min": round(os.getloadavg()[0], 2),
            "hc_median_kw": float(np.median(res.hc_kw)), "hc_limits": res.summary()["limits"],
            "scenarios": [sc.label for sc in scs]}  # fmt: skip
