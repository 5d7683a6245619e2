"""The demo's default grid and device fleet (embedded defaults, no files needed)."""

from __future__ import annotations

import numpy as np

from gridpilot.model import FlexKind, GenKind, Grid, load_balanced_grid


def demo_grid(name: str = "case33bw") -> Grid:
    """``name`` (default Baran & Wu case33bw) with gridpilot's demo fleet added.

    Fleet on case33bw (documented in docs/agent.md): PV 0.15-0.3 MW at buses 14, 18, 25, 30,
    33; one 0.8 MW wind turbine at bus 22; batteries of 0.3 MW / 1.2 MWh at buses 18 and 33;
    water heaters (0.05 MW) at ten buses; EV chargers (0.022-0.05 MW) at eight buses; customers
    per load at one per 5 kW. Other grids get the same kinds of devices at buses chosen by a
    fixed seed. Returns a new, validated :class:`Grid`.
    """
    return add_demo_fleet(load_balanced_grid(name, "the demo fleet and the loop").copy(), name)


HOSTING_SHARE = 0.75  # a demo device takes at most this share of its bus's connection


def connection_mva(g: Grid) -> np.ndarray:
    """Per bus (position): the largest thermal capacity of the lines and transformers that
    connect it (MVA, ``√3·V·I`` at nominal voltage; transformers' rating); inf where none."""
    cap = np.zeros(len(g.bus))
    pos, v = g.bus.position_map, np.asarray(g.bus["v_nom_kv"], float)
    for col in ("from_bus", "to_bus"):
        b = pos(g.line[col])
        np.maximum.at(cap, b, np.sqrt(3.0) * v[b] * np.asarray(g.line["max_i_ka"], float))
    for col in ("hv_bus", "lv_bus"):
        np.maximum.at(cap, pos(g.transformer[col]), np.asarray(g.transformer["sn_mva"], float))
    return np.where(cap > 0, cap, np.inf)


def _fit_to_connections(g: Grid, first: dict[str, int]) -> None:
    """Cap the devices added from row ``first[table]`` on at :data:`HOSTING_SHARE` of their
    bus's connection (a 0.3 MW battery on a 100 kVA low-voltage line would overload it by
    itself); a capped battery keeps its hours of storage."""
    cap = HOSTING_SHARE * connection_mva(g)
    for table, col in (("generator", "p_mw"), ("storage", "p_max_mw"),
                       ("ev_charger", "p_max_mw"), ("flex_load", "p_mw")):  # fmt: skip
        t = g[table]
        rows = np.arange(first[table], len(t))
        if not rows.size:
            continue
        val = np.asarray(t[col], float).copy()
        old = val[rows].copy()
        val[rows] = np.minimum(old, cap[g.bus.position_map(t["bus"][rows])])
        t[col] = val
        if table == "storage":  # the same hours of storage at the capped power
            e = np.asarray(t["e_mwh"], float).copy()
            e[rows] *= np.where(old > 0, val[rows] / np.where(old > 0, old, 1.0), 1.0)
            t["e_mwh"] = e


def add_demo_fleet(g: Grid, name: str, buses: np.ndarray | None = None) -> Grid:
    """Add gridpilot's demo fleet (see :func:`demo_grid`) to ``g`` in place, named ``name``;
    ``buses``: the candidate bus ids on grids other than case33bw (default the load buses).
    Each device at most :data:`HOSTING_SHARE` of its bus's connection (:func:`connection_mva`).
    Returns ``g``, validated."""
    first = {t: len(g[t]) for t in ("generator", "storage", "ev_charger", "flex_load")}
    if name == "case33bw":
        pv_bus, pv_mw = [14, 18, 25, 30, 33], [0.2, 0.15, 0.3, 0.25, 0.2]
        wind_bus, st_bus = [22], [18, 33]
        wh_bus = [4, 7, 9, 12, 16, 20, 24, 27, 29, 31]
        ev_bus = [6, 10, 13, 17, 23, 26, 28, 32]
    else:
        rng = np.random.default_rng(5)
        cand = g.load["bus"] if buses is None else np.asarray(buses, np.int64)
        pick = lambda n: [int(b) for b in rng.choice(cand, size=min(n, cand.size), replace=False)]  # noqa: E731
        pv_bus = pick(5)
        pv_mw = [float(0.05 * g.load["p_mw"].sum() / max(len(pv_bus), 1))] * len(pv_bus)
        wind_bus, st_bus, wh_bus, ev_bus = pick(1), pick(2), pick(10), pick(8)
    start = int(g.generator.ids.max()) + 1 if len(g.generator) else 1
    g.add(
        "generator",
        id=np.arange(start, start + len(pv_bus)),
        bus=pv_bus,
        kind=int(GenKind.PV),
        p_mw=pv_mw,
    )
    wind_mw = 0.8 if name == "case33bw" else float(0.2 * g.load["p_mw"].sum())
    g.add(
        "generator",
        id=np.arange(start + len(pv_bus), start + len(pv_bus) + len(wind_bus)),
        bus=wind_bus,
        kind=int(GenKind.WIND),
        p_mw=wind_mw,
    )
    nxt = lambda tbl, n: np.arange(1, n + 1) + (int(tbl.ids.max()) if len(tbl) else 0)  # noqa: E731
    g.add("storage", id=nxt(g.storage, len(st_bus)), bus=st_bus, e_mwh=1.2, p_max_mw=0.3, soc=0.8)
    g.add(
        "flex_load",
        id=nxt(g.flex_load, len(wh_bus)),
        bus=wh_bus,
        kind=int(FlexKind.WATER_HEATER),
        p_mw=0.05,
    )
    g.add(
        "ev_charger",
        id=nxt(g.ev_charger, len(ev_bus)),
        bus=ev_bus,
        p_max_mw=np.resize([0.022, 0.05], len(ev_bus)),
        v2g=np.resize([False, True], len(ev_bus)),
    )
    _fit_to_connections(g, first)
    g.load["customers"] = np.maximum(np.rint(g.load["p_mw"] / 0.005), 1).astype(np.int32)
    g.name = f"{name}+fleet"
    g.meta["fleet"] = "gridpilot demo fleet (docs/agent.md)"
    g.validate()
    return g
