"""Power-flow benchmark: gridpilot (radial kernel and power-grid-model engine) against raw
power-grid-model and pandapower, single power flow and a year of 15-minute steps, in one run.

    .venv/bin/python bench/powerflow.py --json                 # all grids, a year (35,136 steps)
    .venv/bin/python bench/powerflow.py --json --quick         # case33bw and cigre-mv, 2,000 steps
    .venv/bin/python bench/powerflow.py --json --grids case33bw,synthetic:10000

One row per grid. Columns (steps/s are time-series throughput; *_pf_ms one power flow):

* ``gridpilot_pf_ms``: ``Twin(grid).powerflow()`` end to end (auto engine; ``engine`` says
  which ran), median wall time; ``pgm_pf_ms``: the same through ``Twin(engine="pgm")``;
  ``pandapower_pf_ms``: ``pandapower.runpp`` on the same grid (converted, pi transformer model,
  the source impedance as an impedance element).
* ``gridpilot_steps_per_s``: ``Twin(grid).timeseries(steps)`` end to end (profiles, injections,
  solve, per-step extremes and losses), wall clock, in a separate process that also reports its
  peak memory (``gridpilot_peak_rss_mb``).
* ``radial_steps_per_s``: the radial kernel alone (``RadialEngine.solve`` on prepared
  injections, numba on all cores).
* ``pgm_steps_per_s``: power-grid-model called directly (``calculate_power_flow`` on a prepared
  batch update, Newton-Raphson, ``threading=0`` = all cores, node and branch outputs only).
  ``gridpilot_pgm_steps_per_s``: ``Twin(engine="pgm").timeseries(threading=0)`` over the same
  steps, and ``pgm_overhead_pct`` the difference; ``pgm_overhead_cpu_pct`` the same in CPU
  seconds with both on one thread (``threading=-1``), which other jobs on the cores disturb less.
* ``radial_cpu_steps_per_s`` / ``pgm_cpu_steps_per_s`` / ``radial_vs_pgm_cpu_x``: the kernel and
  raw PGM each on one thread, in CPU seconds (kernel on its first chunk, PGM on its measured
  steps): the per-core comparison, robust to other jobs sharing the cores.
* ``pandapower_steps_per_s``: pandapower's timeseries module (``run_timeseries`` with
  ``ConstControl`` on load p/q and sgen p, logging bus voltages) over a few steps.
* Raw PGM and the radial kernel are timed best of 3 where a run is short (``timing_repeats``).
* ``*_extrapolated``: the throughput was measured on ``*_measured_steps`` steps and scaled to
  the year (said per column), where a full year would take too long.
* ``max_dv_radial_vs_pgm_pu``: largest |ΔV| over every bus and step of the measured steps;
  ``max_dv_vs_pandapower_pu``: largest |ΔV| of the single power flow against ``runpp``.
* ``radial_bound_steps_per_s``: memory-bandwidth bound of the kernel if every iteration
  streamed its state from memory: bandwidth / (112 B x nodes x iterations + 16 B x injections)
  per step (``bandwidth_gb_s`` measured here with a large numpy copy).

Machine: 2 shared cores; timings taken while other work runs are marked by the caller.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from typing import Any

import numpy as np

YEAR = 35_136
ALL_GRIDS = (
    "case33bw",
    "case69",
    "cigre-mv",
    "oberrhein",
    "schutterwald",
    "simbench:1-MV-rural--0-sw",
    "synthetic:10000",
)
QUICK_GRIDS = ("case33bw", "cigre-mv")


# --- helpers -------------------------------------------------------------------------------------
def _median_ms(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def bandwidth_gb_s() -> float:
    """Memory bandwidth from a 256 MB numpy copy (read + write), GB/s, best of 5."""
    a = np.ones(32_000_000)
    b = np.empty_like(a)
    best = np.inf
    for _ in range(5):
        t0 = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t0)
    return 2 * a.nbytes / best / 1e9


def to_pandapower(g: Any) -> Any:
    """The same grid as a pandapower net (bus index = bus position in gridpilot's table)."""
    import pandapower as pp

    net = pp.create_empty_network(f_hz=g.f_hz)
    nb = len(g.bus)
    pp.create_buses(net, nb, vn_kv=g.bus["v_nom_kv"])
    pm = g.bus.position_map
    ln = g.line
    line_idx = (
        pp.create_lines_from_parameters(
            net,
            pm(ln["from_bus"]),
            pm(ln["to_bus"]),
            ln["length_km"],
            ln["r_ohm_per_km"],
            ln["x_ohm_per_km"],
            ln["c_nf_per_km"],
            ln["max_i_ka"],
            in_service=ln["in_service"],
        )
        if len(ln)
        else []
    )
    tr = g.transformer
    trafo_idx: Any = []
    if len(tr):
        trafo_idx = pp.create_transformers_from_parameters(
            net,
            pm(tr["hv_bus"]),
            pm(tr["lv_bus"]),
            tr["sn_mva"],
            tr["vn_hv_kv"],
            tr["vn_lv_kv"],
            tr["vkr_percent"],
            tr["vk_percent"],
            tr["pfe_kw"],
            tr["i0_percent"],
            shift_degree=tr["shift_degree"],
            tap_side=np.where(tr["tap_side"] == 0, "hv", "lv"),
            tap_neutral=tr["tap_neutral"],
            tap_min=tr["tap_min"],
            tap_max=tr["tap_max"],
            tap_step_percent=tr["tap_step_percent"],
            tap_pos=tr["tap_pos"],
            in_service=tr["in_service"],
        )
        if "tap_changer_type" in net.trafo:
            net.trafo["tap_changer_type"] = np.where(tr["tap_step_percent"] > 0, "Ratio", None)
    sw = g.switch
    for k in range(len(sw)):
        et = int(sw["et"][k])
        if et == 0:
            el, code = int(line_idx[int(ln.position_map(np.array([sw["element"][k]]))[0])]), "l"
        elif et == 1:
            el, code = int(trafo_idx[int(tr.position_map(np.array([sw["element"][k]]))[0])]), "t"
        else:
            el, code = int(pm(np.array([sw["element"][k]]))[0]), "b"
        pp.create_switch(
            net, int(pm(np.array([sw["bus"][k]]))[0]), el, et=code, closed=bool(sw["closed"][k])
        )
    src = g.source
    for k in range(len(src)):
        bus = int(pm(np.array([src["bus"][k]]))[0])
        sk = float(src["sk_mva"][k])
        if (
            sk < 1e8
        ):  # PGM models the source impedance; pandapower's slack is ideal: add it explicitly
            extra = pp.create_bus(net, vn_kv=float(g.bus["v_nom_kv"][bus]))
            zabs = 1.0 / sk
            rx = float(src["rx_ratio"][k])
            x = zabs / np.sqrt(1 + rx * rx)
            pp.create_impedance(net, extra, bus, rft_pu=x * rx, xft_pu=x, sn_mva=1.0)
            bus = extra
        pp.create_ext_grid(
            net,
            bus,
            vm_pu=float(src["vm_pu"][k]),
            va_degree=float(src["va_deg"][k]),
            in_service=bool(src["in_service"][k]),
        )
    ld = g.load
    if len(ld):
        pp.create_loads(
            net, pm(ld["bus"]), ld["p_mw"], q_mvar=ld["q_mvar"], in_service=ld["in_service"]
        )
    ge = g.generator
    if len(ge):
        pp.create_sgens(
            net, pm(ge["bus"]), ge["p_mw"], q_mvar=ge["q_mvar"], in_service=ge["in_service"]
        )
    st = g.storage
    for k in range(len(st)):
        pp.create_storage(
            net,
            int(pm(np.array([st["bus"][k]]))[0]),
            float(st["p_mw"][k]),
            float(st["e_mwh"][k]),
            q_mvar=float(st["q_mvar"][k]),
            in_service=bool(st["in_service"][k]),
        )
    ev = g.ev_charger
    if len(ev):
        pp.create_loads(net, pm(ev["bus"]), ev["p_mw"], in_service=ev["in_service"])
    return net


def peak_rss_mb() -> float:
    """Peak resident memory of this process, MB (VmHWM: reset at exec, unlike ru_maxrss)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --- one grid ------------------------------------------------------------------------------------
def memprobe(grid: str, steps: int) -> dict[str, Any]:
    """``Twin(grid).timeseries(steps)`` end to end in this process: throughput and peak memory."""
    from gridpilot.model import load_grid
    from gridpilot.twin import Twin

    g = load_grid(grid)
    tw = Twin(g)
    tw.timeseries(min(steps, 64))  # compile / warm
    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    ts = tw.timeseries(steps)
    wall = time.perf_counter() - t0
    return {
        "grid": grid,
        "steps": steps,
        "wall_s": wall,
        "steps_per_s": steps / wall,
        "engine": ts.engine,
        "converged": int(ts.converged.sum()),
        "rss_before_mb": rss0,
        "peak_rss_mb": peak_rss_mb(),
    }


def bench_grid(
    name: str, steps: int, pp_steps: int, pgm_cap: int, radial_cap: int, gp_cap: int, bw: float
) -> dict[str, Any]:
    """Every column of one grid's row (see the module docstring)."""
    import pandapower as pp
    from power_grid_model import ComponentType as CT

    from gridpilot.model import load_grid
    from gridpilot.twin import Twin
    from gridpilot.twin.inputs import profiles_for, step_injections
    from gridpilot.twin.radial import RadialEngine

    t_load = time.perf_counter()
    g = load_grid(name)
    row: dict[str, Any] = {
        "grid": name,
        "buses": len(g.bus),
        "steps": steps,
        "grid_load_s": round(time.perf_counter() - t_load, 2),
    }
    auto, pgm = Twin(g), Twin(g, engine="pgm")
    r1 = auto.powerflow()
    row["engine"] = r1.engine
    row["gridpilot_pf_ms"] = round(_median_ms(auto.powerflow, 20), 3)
    row["pgm_pf_ms"] = round(_median_ms(pgm.powerflow, 20), 3)

    # pandapower single power flow and its agreement
    net = to_pandapower(g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(net, trafo_model="pi")
        row["pandapower_pf_ms"] = round(
            _median_ms(lambda: pp.runpp(net, trafo_model="pi"), 3 if len(g.bus) < 2000 else 1), 2
        )
    vm = net.res_bus.vm_pu.to_numpy()[: len(g.bus)]
    live = r1.energised
    row["max_dv_vs_pandapower_pu"] = float(np.nanmax(np.abs(vm[live] - r1.v_pu[live])))

    # injections of the measured steps (prepared outside the timed parts)
    prof, cols = profiles_for(g, steps)
    topo, why = auto.radial.topology()
    row["radial"] = topo is not None
    if topo is None:
        row["radial_reason"] = why

    # raw power-grid-model on a prepared batch update, and gridpilot's PGM engine on the same steps
    n_pgm = min(steps, pgm_cap)
    inj = step_injections(g, prof, cols, slice(0, n_pgm))
    eng = pgm.engine
    upd = eng.build_update(n_pgm, inj, None)
    out_req = {
        CT.node: ["u_pu", "energized"],
        CT.line: ["p_from", "p_to", "loading"],
        CT.source: ["p"],
    }
    if CT.transformer in eng.net.input:
        out_req[CT.transformer] = ["p_from", "p_to", "loading"]
    eng.model.calculate_power_flow(
        update_data={k: {c: a[:2] for c, a in v.items()} for k, v in upd.items()},
        output_component_types=out_req,
        threading=0,
    )
    repeat = (
        3 if n_pgm * len(g.bus) <= 4_000_000 else 1
    )  # best of 3 where cheap: the cores are shared
    raw = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        eng.model.calculate_power_flow(
            update_data=upd,
            output_component_types=out_req,
            threading=0,
            error_tolerance=1e-8,
            max_iterations=30,
        )
        raw = min(raw, time.perf_counter() - t0)
    row["timing_repeats"] = repeat
    row["pgm_steps_per_s"] = round(n_pgm / raw, 1)
    row["pgm_measured_steps"] = n_pgm
    row["pgm_extrapolated"] = n_pgm < steps
    t0 = time.perf_counter()
    ref = pgm.timeseries(
        n_pgm, threading=0, outputs=("v_pu",), chunk_steps=n_pgm if len(g.bus) < 1000 else None
    )
    gp_pgm = time.perf_counter() - t0
    row["gridpilot_pgm_steps_per_s"] = round(n_pgm / gp_pgm, 1)
    row["pgm_overhead_pct"] = round((gp_pgm / raw - 1) * 100, 1)
    # the same comparison in CPU seconds on one thread (sequential PGM): less sensitive to other
    # jobs on shared cores than wall time
    raw_cpu = gp_cpu = np.inf
    for _ in range(repeat + 2):  # alternating, best of each: the figure is a difference of two
        c0 = time.process_time()
        eng.model.calculate_power_flow(
            update_data=upd,
            output_component_types=out_req,
            threading=-1,
            error_tolerance=1e-8,
            max_iterations=30,
        )
        raw_cpu = min(raw_cpu, time.process_time() - c0)
        c0 = time.process_time()
        pgm.timeseries(
            n_pgm, threading=-1, outputs=("v_pu",), chunk_steps=n_pgm if len(g.bus) < 1000 else None
        )
        gp_cpu = min(gp_cpu, time.process_time() - c0)
    row["pgm_overhead_cpu_pct"] = round((gp_cpu / raw_cpu - 1) * 100, 1)
    row["pgm_cpu_steps_per_s"] = round(n_pgm / raw_cpu, 1)

    # the radial kernel alone, in chunks of prepared injections (kernel time only)
    if topo is not None:
        reng = RadialEngine(g)
        n_rad = min(steps, radial_cap)
        chunk = int(
            np.clip(8_000_000 // max(len(g.bus) + len(g.load) + len(g.generator), 1), 256, 8192)
        )
        calc, iters, ok = 0.0, 0.0, 0
        for a in range(0, n_rad, chunk):
            b = min(n_rad, a + chunk)
            p, q = reng.injections(b - a, step_injections(g, prof, cols, slice(a, b)))
            if a == 0:
                reng.solve(topo, p[:64], q[:64])  # compile / warm
            sol = reng.solve(topo, p, q)
            best = sol.calc_s
            if a == 0:  # one thread, CPU seconds: the figure other jobs on the cores disturb least
                cpu = np.inf
                for _ in range(repeat):
                    c0 = time.process_time()
                    reng.solve(topo, p, q, threads=1)
                    cpu = min(cpu, time.process_time() - c0)
                row["radial_cpu_steps_per_s"] = round((b - a) / cpu, 1)
            for _ in range(repeat - 1):
                best = min(best, reng.solve(topo, p, q).calc_s)
            calc += best
            iters += float(sol.iterations.sum())
            ok += int(sol.converged.sum())
        row["radial_steps_per_s"] = round(n_rad / calc, 1)
        row["radial_measured_steps"] = n_rad
        row["radial_extrapolated"] = n_rad < steps
        row["radial_converged_steps"] = ok
        row["radial_mean_iterations"] = round(iters / n_rad, 2)
        row["radial_vs_pgm_x"] = round(row["radial_steps_per_s"] / row["pgm_steps_per_s"], 1)
        row["radial_vs_pgm_cpu_x"] = round(
            row["radial_cpu_steps_per_s"] / row["pgm_cpu_steps_per_s"], 1
        )
        bytes_step = 112 * topo.n * iters / n_rad + 16 * (len(g.load) + len(g.generator))
        row["radial_bytes_per_step"] = int(bytes_step)
        row["radial_bound_steps_per_s"] = round(bw * 1e9 / bytes_step, 1)
        # accuracy on every bus of the PGM-measured steps
        rr = Twin(g, engine="radial").timeseries(n_pgm, outputs=("v_pu",))
        assert rr.v_pu is not None and ref.v_pu is not None
        row["max_dv_radial_vs_pgm_pu"] = float(np.nanmax(np.abs(rr.v_pu - ref.v_pu)))

    # gridpilot end to end, in its own process (peak memory of that run alone)
    n_gp = steps if topo is not None else min(steps, gp_cap)
    cmd = [sys.executable, os.path.abspath(__file__), "--memprobe", name, "--steps", str(n_gp)]
    outp = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    probe = json.loads(outp.strip().splitlines()[-1])
    row["gridpilot_steps_per_s"] = round(probe["steps_per_s"], 1)
    row["gridpilot_measured_steps"] = n_gp
    row["gridpilot_extrapolated"] = n_gp < steps
    row["gridpilot_ts_engine"] = probe["engine"]
    row["gridpilot_peak_rss_mb"] = round(probe["peak_rss_mb"], 1)
    row["gridpilot_vs_pgm_x"] = round(row["gridpilot_steps_per_s"] / row["pgm_steps_per_s"], 1)

    # pandapower's timeseries module over a few steps, extrapolated
    row["pandapower_steps_per_s"], row["pandapower_measured_steps"] = _pandapower_timeseries(
        g, net, prof, cols, pp_steps
    )
    row["pandapower_extrapolated"] = row["pandapower_measured_steps"] < steps
    row["gridpilot_vs_pandapower_x"] = round(
        row["gridpilot_steps_per_s"] / row["pandapower_steps_per_s"], 1
    )
    return row


def _pandapower_timeseries(g: Any, net: Any, prof: Any, cols: Any, n: int) -> tuple[float, int]:
    import pandas as pd
    from pandapower.control import ConstControl
    from pandapower.timeseries import DFData, OutputWriter, run_timeseries

    from gridpilot.twin.inputs import step_injections

    inj = step_injections(g, prof, cols, slice(0, n))
    frames = {}
    nl, ng = len(g.load), len(g.generator)
    if nl:
        frames.update({f"lp{k}": inj["load_p_mw"][:, k] for k in range(nl)})
        frames.update({f"lq{k}": inj["load_q_mvar"][:, k] for k in range(nl)})
    if ng:
        frames.update({f"gp{k}": inj["gen_p_mw"][:, k] for k in range(ng)})
    ds = DFData(pd.DataFrame(frames))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if nl:
            ConstControl(
                net,
                "load",
                "p_mw",
                element_index=np.arange(nl),
                data_source=ds,
                profile_name=[f"lp{k}" for k in range(nl)],
            )
            ConstControl(
                net,
                "load",
                "q_mvar",
                element_index=np.arange(nl),
                data_source=ds,
                profile_name=[f"lq{k}" for k in range(nl)],
            )
        if ng:
            ConstControl(
                net,
                "sgen",
                "p_mw",
                element_index=np.arange(ng),
                data_source=ds,
                profile_name=[f"gp{k}" for k in range(ng)],
            )
        ow = OutputWriter(net, time_steps=range(n), output_path=None)
        ow.log_variable("res_bus", "vm_pu")
        t0 = time.perf_counter()
        run_timeseries(net, time_steps=range(n), verbose=False, trafo_model="pi")
        wall = time.perf_counter() - t0
    return round(n / wall, 2), n


def main(argv: list[str] | None = None) -> None:
    """Parse the options, run the grids and print the rows (JSON or a table)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print JSON rows")
    ap.add_argument("--quick", action="store_true", help="case33bw and cigre-mv, 2,000 steps")
    ap.add_argument("--grids", default=None, help="comma-separated grid names")
    ap.add_argument(
        "--steps", type=int, default=None, help=f"time steps (default {YEAR}, a year of 15 minutes)"
    )
    ap.add_argument(
        "--pp-steps", type=int, default=None, help="pandapower timeseries steps (extrapolated)"
    )
    ap.add_argument("--memprobe", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memprobe:
        print(json.dumps(memprobe(args.memprobe, args.steps or YEAR)))
        return
    grids = (
        tuple(args.grids.split(",")) if args.grids else (QUICK_GRIDS if args.quick else ALL_GRIDS)
    )
    steps = args.steps or (2000 if args.quick else YEAR)
    bw = bandwidth_gb_s()
    rows = []
    for name in grids:
        big = (
            name.startswith("synthetic:") and int(name.split(":")[1]) > 2000
        ) or name == "schutterwald"
        pp_steps = args.pp_steps or (20 if args.quick else (10 if big else 200))
        pgm_cap = 256 if big else (2000 if args.quick else YEAR)
        radial_cap = 4096 if big and not args.quick else YEAR
        rows.append(bench_grid(name, steps, min(pp_steps, steps), pgm_cap, radial_cap, 1024, bw))
        if not args.json:
            print(rows[-1], file=sys.stderr)
    meta = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.processor() or platform.platform()}",
        "bandwidth_gb_s": round(bw, 1),
        "python": platform.python_version(),
        "note": "2 shared cores; other engineers' jobs may run at the same time",
    }
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=1))
    else:
        from rich.console import Console
        from rich.table import Table

        cols = [
            "grid",
            "buses",
            "engine",
            "gridpilot_pf_ms",
            "pandapower_pf_ms",
            "gridpilot_steps_per_s",
            "radial_steps_per_s",
            "pgm_steps_per_s",
            "pandapower_steps_per_s",
            "max_dv_radial_vs_pgm_pu",
            "max_dv_vs_pandapower_pu",
        ]
        t = Table(title=f"power flow, {steps} steps")
        for c in cols:
            t.add_column(c)
        for r in rows:
            t.add_row(*[str(r.get(c, "")) for c in cols])
        Console().print(t)


if __name__ == "__main__":
    main()
