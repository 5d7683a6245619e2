"""Flexibility benchmark: a week on a SimBench grid, planned vs uncontrolled, scaling, frequency response.

    .venv/bin/python bench/flex.py --json            # full: one week, 1k and 100k device timings
    .venv/bin/python bench/flex.py --json --quick    # one day, 1k and 10k devices
    .venv/bin/python bench/flex.py --json --only scaling   # only the 1k and 100k day-ahead timings

Prints one JSON document: the fleet, both cases' twin-verified figures side by side, the
targets checked, the optimisation timings and the frequency study.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from gridpilot.control.frequency import FleetResponse, FrequencySystem, compare
from gridpilot.flex import PlanConfig, aggregate, default_signals, generate_fleet, plan
from gridpilot.model import load_grid

GRID = "simbench:1-MV-rural--0-sw"


def week(
    grid_name: str,
    days: int,
    day0: int,
    curtail_kinds: tuple[int, ...] = (0, 3),
    q_support: bool = True,
) -> dict[str, Any]:
    """Plan ``days`` days from ``day0`` with rolling daily windows; both cases through the twin.

    ``curtail_kinds``: generator kinds the plan may curtail (all PV/wind/other inverters may give
    reactive power when ``q_support``).
    """
    g = load_grid(grid_name)
    t0 = day0 * 96
    fleet = generate_fleet(g, days=days + 2, start_step=t0 - 96, curtail_kinds=curtail_kinds)
    t = time.perf_counter()
    p = plan(g, fleet, days * 96, t0=t0, config=PlanConfig(q_support=q_support))
    s = p.summary()
    s["wall_s"] = time.perf_counter() - t
    c, u = s["controlled"], s["uncontrolled"]
    s["targets"] = {
        "peak_reduction_ge_20pct": s["peak_reduction_pct"] >= 20.0,
        "violations_zero": c["v_violation_min"] == 0 and c["loading_violation_min"] == 0,
        "every_ev_leaves_with_its_energy": s["ev"]["short_sessions"] == 0,
        "devices_within_limits": s["device_limit_violations"] == 0,
    }
    s["uncontrolled_violation_min"] = u["v_violation_min"] + u["loading_violation_min"]
    s["grid"] = grid_name
    s["start_step"] = t0
    s["_fleet"] = fleet
    return s


def scaling(grid_name: str, n_devices: int, steps: int = 96, day0: int = 10) -> dict[str, Any]:
    """Time one day-ahead plan of a fleet of about ``n_devices`` devices (aggregation -> LP -> devices -> twin)."""
    g = load_grid(grid_name)
    t0 = day0 * 96
    fleet = generate_fleet(g, days=2, start_step=t0 - 96, n_devices=n_devices, seed=1)
    t, cpu = time.perf_counter(), time.process_time()
    p = plan(g, fleet, steps, t0=t0, config=PlanConfig(horizon_steps=steps, commit_steps=steps))
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    s = p.summary()
    c = s["controlled"]
    return {
        "devices": fleet.n_devices,
        "flex_devices": fleet.n_devices - len(fleet.pv),
        "steps": steps,
        "wall_s": wall,
        "cpu_s": cpu,
        "lp_solve_s": s["lp"]["solve_s"],
        "lp_solves": s["lp"]["windows"] + s["lp"]["twin_corrections"],
        "window_objective_eur": [w.objective_eur for w in p.windows],
        "cost_eur": c["cost_eur"],
        "co2_t": c["co2_t"],
        "v_violation_min": c["v_violation_min"],
        "loading_violation_min": c["loading_violation_min"],
        "curtailed_mwh": s["curtailed_mwh"],
        "unresolved": s["unresolved"][:1],
        "lp_build_s": s["lp"]["build_s"],
        "lp_vars": s["lp"]["max_vars"],
        "lp_rows": s["lp"]["max_rows"],
        "peak_reduction_pct": s["peak_reduction_pct"],
        "ev_short_sessions": s["ev"]["short_sessions"],
        "device_limit_violations": s["device_limit_violations"],
    }


def frequency(fleet: Any, t_evening: int, feeders: float) -> dict[str, Any]:
    """Reference loss (1 GW in a 30 GW system) with the fleet's droop: batteries and plugged V2G EVs."""
    agg = aggregate(fleet, t_evening, 1)
    up_mw = float(agg.bat_p_max_mw.sum() - agg.ev_p_lo_mw.sum())  # batteries + V2G discharge only
    r = compare(FrequencySystem(), 1000.0, FleetResponse(up_mw * feeders))
    r["feeder_ffr_mw"] = up_mw
    r["feeders"] = feeders
    r["note"] = (
        f"FFR of the modelled feeder's batteries and plugged-in EVs at step {t_evening} "
        f"(battery and V2G discharge; charging pauses not counted), times {feeders:g} feeders like it"
    )
    r["target_nadir_50pct_closer"] = r["nadir_improvement_pct"] >= 50.0
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true", help="print JSON (the default output anyway)")
    ap.add_argument(
        "--quick", action="store_true", help="one day and 10k devices instead of a week and 100k"
    )
    ap.add_argument("--grid", default=GRID)
    ap.add_argument("--day", type=int, default=10, help="first day of the grid's profiles")
    ap.add_argument(
        "--feeders", type=float, default=250.0, help="feeders like this one in the frequency study"
    )
    ap.add_argument(
        "--only",
        choices=("scaling",),
        default=None,
        help="run one part only: 'scaling' = the 1k and 100k (10k with --quick) day-ahead timings",
    )
    a = ap.parse_args()
    if a.only == "scaling":
        rows = [scaling(a.grid, 1000), scaling(a.grid, 10_000 if a.quick else 100_000)]
        print(json.dumps({"bench": "flex", "grid": a.grid, "scaling": rows}, indent=2, default=str))
        return
    days = 1 if a.quick else 7
    out: dict[str, Any] = {
        "bench": "flex",
        "grid": a.grid,
        "quick": a.quick,
        "note": "timings on a shared 2-core machine under contention; forecasts are the grid's "
        "own profiles (perfect foresight); prices/CO2 are the synthetic defaults",
    }
    keys = (
        "controlled",
        "uncontrolled",
        "peak_reduction_pct",
        "targets",
        "unresolved",
        "wall_s",
        "curtailable",
        "curtailed_mwh",
        "reactive",
        "lp",
    )
    variants = []
    fleet = None
    for q in (True, False):
        for kinds, label in (
            (
                (0, 1, 3),
                "PV, wind and other generators (DSO may curtail every renewable generator)",
            ),
            ((0, 3), "PV and other generators only (wind farms not curtailable)"),
        ):
            w = week(a.grid, days, a.day, kinds, q_support=q)
            f = w.pop("_fleet")
            fleet = f if fleet is None else fleet
            w["curtailable"] = label
            name = ("week" if 1 in kinds else "week_no_wind_curtailment") + (
                "" if q else "_without_q"
            )
            out[name] = w if name == "week" else {k: w[k] for k in keys}
            c, u = w["controlled"], w["uncontrolled"]
            variants.append(
                {
                    "case": name,
                    "q_support": q,
                    "wind_curtailable": 1 in kinds,
                    "curtailed_mwh": w["curtailed_mwh"],
                    "q_absorbed_mvarh": w["reactive"]["absorbed_mvarh"],
                    "co2_t": c["co2_t"],
                    "co2_uncontrolled_t": u["co2_t"],
                    "energy_mwh": c["energy_mwh"],
                    "energy_uncontrolled_mwh": u["energy_mwh"],
                    "v_violation_min": c["v_violation_min"],
                    "v_violation_uncontrolled_min": u["v_violation_min"],
                    "vmax_pu": c["vmax_pu"],
                    "losses_mwh": c["losses_mwh"],
                    "peak_reduction_pct": w["peak_reduction_pct"],
                    "ev_tracking_error_mwh": w["tracking_error_mwh"],
                    "lp_solve_s": w["lp"]["solve_s"],
                    "wall_s": w["wall_s"],
                    "unresolved": w["unresolved"][:1],
                }
            )
    out["variants"] = variants
    out["scaling"] = [scaling(a.grid, 1000), scaling(a.grid, 10_000 if a.quick else 100_000)]
    out["scaling_targets"] = {
        "1k_devices_96_steps_under_10s": out["scaling"][0]["wall_s"] < 10.0,
        "100k_devices_under_60s": None if a.quick else out["scaling"][1]["wall_s"] < 60.0,
    }
    out["linopy_vs_direct"] = linopy_vs_direct(a.grid, 1000)
    out["frequency"] = frequency(fleet, a.day * 96 + 19 * 4, a.feeders)
    print(
        json.dumps(
            out, indent=2, default=lambda x: x.item() if isinstance(x, np.generic) else str(x)
        )
    )


def _window_inputs(
    grid_name: str, n_devices: int, steps: int = 96, day0: int = 10
) -> tuple[Any, ...]:
    """The inputs of the first day-ahead window of :func:`scaling`'s case (as ``plan`` builds them)."""
    from gridpilot.flex import build_network
    from gridpilot.flex.schedule import _base, group_buses, pv_available

    g = load_grid(grid_name)
    t0 = day0 * 96
    fleet = generate_fleet(g, days=2, start_step=t0 - 96, n_devices=n_devices, seed=1)
    cfg = PlanConfig(horizon_steps=steps, commit_steps=steps)
    buses = fleet.buses()
    net = build_network(g, buses, t_ref=t0)
    group, vs_g, ptdf_g, vq_g = group_buses(net, fleet, cfg.max_groups)
    _, v0, p0, flow0, qflow0 = _base(net, t0, steps)
    inj = net.injections(t0, steps)
    agg = aggregate(fleet, t0, steps, buses, pv_available(net, fleet, inj), group)
    sig = default_signals(g, t0 + steps, fleet.step_h).window(t0, steps)
    return agg, net, v0, p0, flow0, qflow0, sig, cfg, vs_g, ptdf_g, vq_g


def linopy_window(
    agg: Any,
    net: Any,
    v0: np.ndarray,
    p0: np.ndarray,
    flow0: np.ndarray,
    qflow0: np.ndarray,
    sig: Any,
    cfg: PlanConfig,
    vs: np.ndarray,
    ptdf: Any,
    vq: np.ndarray,
) -> Any:
    """The same window LP as :func:`gridpilot.flex.plan_window`, written with linopy; returns the Model.

    Same variables, costs, bounds, row pruning and slacks; linopy has no ranged rows, so each
    two-sided network row becomes two rows.
    """
    import linopy
    import pandas as pd
    import xarray as xr

    T, nf = agg.steps, agg.bus_id.size
    dt = agg.step_h
    tb = [pd.RangeIndex(T, name="t"), pd.RangeIndex(nf, name="b")]

    def da(a: Any) -> xr.DataArray:
        return xr.DataArray(np.broadcast_to(np.asarray(a, np.float64), (T, nf)).copy(), coords=tb)

    m = linopy.Model()
    ec = da((dt * (sig.price_eur_per_mwh + cfg.co2_eur_per_t * sig.co2_t_per_mwh))[:, None])
    wear = dt * cfg.battery_wear_eur_per_mwh
    eta = da(agg.bat_eta)
    bc = m.add_variables(0, da(agg.bat_p_max_mw), name="bc")
    bd = m.add_variables(0, da(agg.bat_p_max_mw), name="bd")
    e_lo = np.broadcast_to(agg.bat_e_min_mwh, (T, nf)).copy()
    e_lo[-1] = np.minimum(np.maximum(agg.bat_e0_mwh, agg.bat_e_min_mwh), agg.bat_e_max_mwh)
    eb = m.add_variables(da(e_lo), da(agg.bat_e_max_mwh), name="eb")
    pc = m.add_variables(0, da(agg.ev_p_hi_mw), name="pc")
    pd_ = m.add_variables(0, da(-agg.ev_p_lo_mw), name="pd")
    x = m.add_variables(da(agg.ev_c_lo_mwh[1:]), da(agg.ev_c_hi_mwh[1:]), name="x")
    pw = m.add_variables(0, da(agg.wh_p_max_mw), name="pw")
    w_lo = np.zeros((T, nf))
    w_lo[-1] = np.minimum(agg.wh_e0_mwh, 0.5 * agg.wh_e_max_mwh)
    w = m.add_variables(da(w_lo), da(agg.wh_e_max_mwh), name="w")
    cu = m.add_variables(0, da(agg.pv_avail_mw), name="cu")
    pn = m.add_variables(coords=tb, name="pn")
    peak = m.add_variables(name="peak")
    first = xr.DataArray(np.arange(T) == 0, coords=[tb[0]])
    rhs_b = da(np.where(first.values[:, None], agg.bat_e0_mwh, 0.0))
    m.add_constraints(eb - eb.shift(t=1) - dt * eta * bc + dt / eta * bd == rhs_b, name="battery")
    m.add_constraints(x - x.shift(t=1) - dt * pc + dt * pd_ == 0, name="ev")
    rhs_w = -dt * agg.wh_draw_mw
    rhs_w[0] += agg.wh_e0_mwh
    m.add_constraints(w - w.shift(t=1) - dt * pw == da(rhs_w), name="wh")
    m.add_constraints(pn - bc + bd - pc + pd_ - pw - cu == 0, name="net")
    pn_hi = agg.bat_p_max_mw + agg.ev_p_hi_mw + agg.wh_p_max_mw + agg.pv_avail_mw
    pn_lo = -agg.bat_p_max_mw + agg.ev_p_lo_mw + np.zeros((T, nf))
    obj = (
        ((ec + wear / 2) * bc).sum()
        + ((-ec + wear / 2) * bd).sum()
        + (ec * pc).sum()
        + ((-ec + dt * (cfg.v2g_fee_eur_per_mwh + cfg.battery_wear_eur_per_mwh)) * pd_).sum()
        + (ec * pw).sum()
        + ((ec + dt * cfg.curtail_eur_per_mwh) * cu).sum()
        + cfg.peak_eur_per_mw * peak
    )
    live = v0 > 0.5
    vlo = np.where(live, cfg.vmin_pu + cfg.band_margin_pu - v0, -np.inf)
    vhi = np.where(live, cfg.vmax_pu - cfg.band_margin_pu - v0, np.inf)
    vp, vn = np.clip(vs, 0, None), np.clip(vs, None, 0)
    over = ((pn_hi @ vp.T + pn_lo @ vn.T) > vhi - cfg.margin_pu).any(axis=1)
    under = ((pn_lo @ vp.T + pn_hi @ vn.T) < vlo + cfg.margin_pu).any(axis=1)
    qcap = cfg.q_max_frac * agg.pv_s_mva
    qa_hi = np.where(over[:, None], qcap[None, :], 0.0)
    qi_hi = np.where(under[:, None], qcap[None, :], 0.0)
    qa = m.add_variables(0, da(qa_hi), name="qa")
    qi = m.add_variables(0, da(qi_hi), name="qi")
    obj = obj + (dt * cfg.q_eur_per_mvarh) * (qa.sum() + qi.sum())
    n_side = cfg.q_polygon_sides
    s_in = agg.pv_s_mva * np.cos(np.pi / n_side)
    p_out = np.minimum(agg.pv_out_mw, agg.pv_s_mva)
    for k, a_ in enumerate(2 * np.pi * (np.arange(n_side) + 0.5) / n_side):
        ca, sa = float(np.cos(a_)), float(np.sin(a_))
        if ca <= 1e-9 or abs(sa) <= 1e-9:
            continue
        can = (ca * p_out + abs(sa) * (qi_hi if sa > 0 else qa_hi) > s_in + 1e-9) & (
            agg.pv_s_mva > 0
        )
        if can.any():
            m.add_constraints(
                -ca * cu + sa * qi - sa * qa <= da(s_in - ca * p_out),
                name=f"poly{k}",
                mask=da(can).astype(bool),
            )

    def soft(
        name: str,
        terms: list[tuple[np.ndarray, Any, np.ndarray, np.ndarray]],
        lo: np.ndarray,
        hi: np.ndarray,
        penalty: float,
        margin: float,
    ) -> Any:
        nr = terms[0][0].shape[0]
        rc = [tb[0], pd.RangeIndex(nr, name=f"{name}_r")]
        d_hi = sum(
            vh @ np.clip(c, 0, None).T + vl @ np.clip(c, None, 0).T for c, _, vl, vh in terms
        )
        d_lo = sum(
            vl @ np.clip(c, 0, None).T + vh @ np.clip(c, None, 0).T for c, _, vl, vh in terms
        )
        keep = xr.DataArray((d_hi > hi - margin) | (d_lo < lo + margin), coords=rc)
        if not keep.any():
            return 0
        expr = sum((xr.DataArray(c, coords=[rc[1], tb[1]]) * v).sum("b") for c, v, _, _ in terms)
        slo = m.add_variables(0, coords=rc, name=f"{name}_slo", mask=keep)
        shi = m.add_variables(0, coords=rc, name=f"{name}_shi", mask=keep)
        lo_a = xr.DataArray(np.where(np.isfinite(lo), lo, -1e30), coords=rc)
        hi_a = xr.DataArray(np.where(np.isfinite(hi), hi, 1e30), coords=rc)
        m.add_constraints(expr + slo - shi >= lo_a, name=f"{name}_lo", mask=keep)
        m.add_constraints(expr + slo - shi <= hi_a, name=f"{name}_hi", mask=keep)
        return penalty * (slo.sum() + shi.sum())

    pterm = (vs, pn, pn_lo, pn_hi)
    z = np.zeros((T, nf))
    obj = obj + soft(
        "v",
        [pterm, (vq, qa, z, qa_hi), (-vq, qi, z, qi_hi)],
        vlo,
        vhi,
        cfg.slack_v_eur_per_pu,
        cfg.margin_pu,
    )
    s_max = net.edge_s_max_mva * cfg.line_limit_pct / 100.0
    ri = np.flatnonzero(np.isfinite(s_max))
    if ri.size:
        pt = ptdf[ri].toarray()
        qf = np.abs(qflow0[:, ri]) + np.maximum(qa_hi, qi_hi) @ np.abs(pt).T
        pmax = np.sqrt(np.clip(s_max[None, ri] ** 2 - qf**2, 0, None))
        obj = obj + soft(
            "branch",
            [(pt, pn, pn_lo, pn_hi)],
            -pmax - flow0[:, ri],
            pmax - flow0[:, ri],
            cfg.slack_mw_eur_per_mw,
            0.0,
        )
    if np.isfinite(net.trafo_s_max_mva):
        smax = net.trafo_s_max_mva * cfg.trafo_limit_pct / 100.0
        obj = obj + soft(
            "trafo",
            [(np.ones((1, nf)), pn, pn_lo, pn_hi)],
            (-smax - p0)[:, None],
            (smax - p0)[:, None],
            cfg.slack_mw_eur_per_mw,
            0.0,
        )
    m.add_constraints(peak - pn.sum("b") >= xr.DataArray(p0, coords=[tb[0]]), name="peak")
    m.add_objective(obj)
    return m


def linopy_vs_direct(grid_name: str, n_devices: int = 1000, repeats: int = 3) -> dict[str, Any]:
    """Time building the same day-ahead window LP (to a HiGHS instance) through linopy and directly.

    Both builds end with a ``highspy.Highs`` holding the model (linopy: ``Model.to_highspy``;
    direct: :class:`gridpilot.lp.LP` assembly + ``passModel``, i.e. ``WindowPlan.build_s``).
    Best of ``repeats``; both LPs are then solved once to check they agree.
    """
    import warnings

    import highspy

    from gridpilot.flex import plan_window

    warnings.filterwarnings("ignore", module="linopy")
    warnings.filterwarnings("ignore", message=".*absent slots.*")

    inp = _window_inputs(grid_name, n_devices)
    agg, net, v0, p0, flow0, qflow0, sig, cfg, vs, ptdf, vq = inp
    direct, lin = [], []
    wp = None
    h_lin = None
    for _ in range(repeats):
        wp = plan_window(agg, net, v0, p0, flow0, qflow0, sig, cfg, vs, ptdf, vq)
        direct.append(wp.build_s)
        t = time.perf_counter()
        m = linopy_window(agg, net, v0, p0, flow0, qflow0, sig, cfg, vs, ptdf, vq)
        h_lin = m.to_highspy()
        lin.append(time.perf_counter() - t)
    assert wp is not None and h_lin is not None
    h_lin.setOptionValue("output_flag", False)
    h_lin.setOptionValue("solver", "ipm")
    h_lin.run()
    ok = h_lin.getModelStatus() == highspy.HighsModelStatus.kOptimal
    obj_lin = float(h_lin.getInfo().objective_function_value)
    return {
        "devices": n_devices,
        "groups": int(agg.bus_id.size),
        "steps": int(agg.steps),
        "direct_build_s": min(direct),
        "linopy_build_s": min(lin),
        "ratio": min(lin) / max(min(direct), 1e-12),
        "direct_cols_x_rows": [wp.n_vars, wp.n_rows],
        "linopy_cols_x_rows": [int(h_lin.getNumCol()), int(h_lin.getNumRow())],
        "objective_direct_eur": wp.objective_eur,
        "objective_linopy_eur": obj_lin if ok else None,
        "repeats": repeats,
    }


if __name__ == "__main__":
    main()
