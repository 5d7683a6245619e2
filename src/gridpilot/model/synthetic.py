"""``synthetic:N``: generated, realistic radial MV feeders of N buses, for scale work.

The generator (reproducible for a seed) builds:

* one 110 kV source bus and ``ceil(N / 300)`` substations, each a 110/20 kV 40 MVA
  transformer (vk 12 %, vkr 0.4 %) feeding a 20 kV busbar;
* six feeders per substation, each a random tree: a trunk of NA2XS2Y 1x240 cable
  (0.122 + j0.112 Ω/km, 304 nF/km, 421 A) of 0.3–0.9 km segments, with laterals of
  1x150 cable (0.206 + j0.116 Ω/km, 250 nF/km, 319 A) of 0.1–0.4 km branching off it;
* a feeder breaker at the head of every feeder, a remote sectionalising load-break switch on
  every fifth trunk segment, and a normally-open tie (0.5–1.0 km of 1x240) from the end of
  each feeder's trunk to a trunk bus of the next feeder;
* a load on 85 % of feeder buses (lognormal, median 80 kW, cos φ 0.95; 20 % commercial),
  PV on 30 % of them (20–200 kW); default shapes linked as profiles (one year, 15 minutes);
* diagram coordinates: substations on a row, feeders fanning out from them.

Totals: exactly N buses. Voltages stay within about 0.98–1.03 pu, loading below about 60 %.
"""

from __future__ import annotations

import numpy as np

from gridpilot.errors import ValidationError
from gridpilot.model.grid import Grid
from gridpilot.model.profiles import default_profiles
from gridpilot.model.schema import GenKind, LoadKind, SwitchKind
from gridpilot.model.table import Table

BUSES_PER_SUBSTATION = 300
FEEDERS_PER_SUBSTATION = 6
MAX_BUSES = 200_000

TRUNK = (0.122, 0.112, 304.0, 0.421)
LATERAL = (0.206, 0.116, 250.0, 0.319)


def synthetic_grid(n_buses: int, seed: int = 0, profile_steps: int = 96 * 366) -> Grid:
    """Generate the ``synthetic:N`` grid of exactly ``n_buses`` buses (see module docs)."""
    if not 4 <= n_buses <= MAX_BUSES:
        raise ValidationError(
            f"synthetic grid: n_buses must lie in [4, {MAX_BUSES}], got {n_buses}"
        )
    rng = np.random.default_rng(seed)
    n_sub = max(1, int(np.ceil((n_buses - 1) / BUSES_PER_SUBSTATION)))
    feeder_buses = n_buses - 1 - n_sub
    if feeder_buses < n_sub:
        n_sub = 1
        feeder_buses = n_buses - 2
    n_feed = max(1, min(n_sub * FEEDERS_PER_SUBSTATION, feeder_buses))
    sizes = np.full(n_feed, feeder_buses // n_feed)
    sizes[: feeder_buses % n_feed] += 1
    sub_of_feeder = np.arange(n_feed) * n_sub // n_feed

    bus_kv = np.empty(n_buses)
    bx = np.zeros(n_buses)
    by = np.zeros(n_buses)
    zone = np.zeros(n_buses, np.int32)
    bus_kv[0] = 110.0
    by[0] = 2.0
    busbar = 1 + np.arange(n_sub)
    bus_kv[busbar] = 20.0
    bx[busbar] = np.arange(n_sub) * 12.0
    nxt = 1 + n_sub

    lf: list[int] = []
    lt: list[int] = []
    llen: list[float] = []
    ltyp: list[int] = []  # 0 trunk, 1 lateral, 2 tie
    sw_line: list[int] = []
    sw_bus: list[int] = []
    sw_kind: list[int] = []
    sw_closed: list[bool] = []
    trunks: list[np.ndarray] = []
    feeder_bus_lists: list[np.ndarray] = []

    for f in range(n_feed):
        m = int(sizes[f])
        root = int(busbar[sub_of_feeder[f]])
        angle = np.pi * (0.1 + 0.8 * ((f % FEEDERS_PER_SUBSTATION) + 0.5) / FEEDERS_PER_SUBSTATION)
        d = np.array([np.cos(angle), -np.sin(angle)])
        perp = np.array([-d[1], d[0]])
        ids = np.arange(nxt, nxt + m)
        nxt += m
        bus_kv[ids] = 20.0
        zone[ids] = f + 1
        trunk = [root]
        members = [root]
        depth_pos = {root: np.array([bx[root], by[root]])}
        for k, b in enumerate(ids):
            b = int(b)
            if k == 0 or rng.random() < 0.5 or len(members) < 3:
                parent = trunk[-1]
                typ = 0
                seg = rng.uniform(0.3, 0.9)
                pos = depth_pos[parent] + d * seg * 2.0
                trunk.append(b)
            else:
                parent = int(members[1 + rng.integers(len(members) - 1)])
                typ = 1
                seg = rng.uniform(0.1, 0.4)
                side = 1.0 if rng.random() < 0.5 else -1.0
                pos = depth_pos[parent] + perp * side * seg * 2.0 + d * 0.1
            depth_pos[b] = pos
            bx[b], by[b] = pos
            members.append(b)
            line_idx = len(lf)
            lf.append(parent)
            lt.append(b)
            llen.append(seg)
            ltyp.append(typ)
            if k == 0:
                sw_line.append(line_idx)
                sw_bus.append(parent)
                sw_kind.append(int(SwitchKind.BREAKER))
                sw_closed.append(True)
            elif typ == 0 and (len(trunk) - 1) % 5 == 0:
                sw_line.append(line_idx)
                sw_bus.append(parent)
                sw_kind.append(int(SwitchKind.LOAD_BREAK))
                sw_closed.append(True)
        trunks.append(np.array(trunk[1:]))
        feeder_bus_lists.append(ids)

    # normally-open ties: end of each feeder's trunk to a trunk bus of the next feeder
    if n_feed > 1:
        for f in range(n_feed):
            g = (f + 1) % n_feed
            if g == f or (n_feed == 2 and f == 1):
                continue
            a = int(trunks[f][-1])
            tb = trunks[g]
            b = int(tb[len(tb) // 2 + rng.integers(0, max(1, len(tb) - len(tb) // 2))])
            line_idx = len(lf)
            lf.append(a)
            lt.append(b)
            llen.append(rng.uniform(0.5, 1.0))
            ltyp.append(2)
            sw_line.append(line_idx)
            sw_bus.append(a)
            sw_kind.append(int(SwitchKind.LOAD_BREAK))
            sw_closed.append(False)

    n_lines = len(lf)
    typ = np.array(ltyp)
    params = np.where(typ[:, None] == 1, np.array(LATERAL)[None, :], np.array(TRUNK)[None, :])
    bus_ids = np.arange(n_buses, dtype=np.int64)
    tables = {
        "bus": Table.from_columns(
            "bus", {"id": bus_ids, "v_nom_kv": bus_kv, "x": bx, "y": by, "zone": zone}
        ),
        "line": Table.from_columns(
            "line",
            {
                "id": np.arange(n_lines),
                "from_bus": lf,
                "to_bus": lt,
                "length_km": np.round(llen, 3),
                "r_ohm_per_km": params[:, 0],
                "x_ohm_per_km": params[:, 1],
                "c_nf_per_km": params[:, 2],
                "max_i_ka": params[:, 3],
            },
        ),
        "transformer": Table.from_columns(
            "transformer",
            {
                "id": np.arange(n_sub),
                "hv_bus": np.zeros(n_sub, np.int64),
                "lv_bus": busbar,
                "sn_mva": 40.0,
                "vn_hv_kv": 110.0,
                "vn_lv_kv": 20.0,
                "vk_percent": 12.0,
                "vkr_percent": 0.4,
                "pfe_kw": 20.0,
                "i0_percent": 0.05,
                "shift_degree": 150.0,
            },
        ),
        "source": Table.from_columns(
            "source", {"id": [0], "bus": [0], "vm_pu": [1.02], "sk_mva": [10000.0 * n_sub]}
        ),
        "switch": Table.from_columns(
            "switch",
            {
                "id": np.arange(len(sw_line)),
                "bus": sw_bus,
                "element": np.array(sw_line, np.int64),
                "et": 0,
                "kind": sw_kind,
                "closed": sw_closed,
                "normally_open": ~np.array(sw_closed, bool),
            },
        ),
    }
    feeder_all = np.concatenate(feeder_bus_lists) if feeder_bus_lists else np.zeros(0, np.int64)
    has_load = feeder_all[rng.random(feeder_all.size) < 0.85]
    nl = has_load.size
    p = np.round(rng.lognormal(np.log(0.080), 0.5, nl), 4)
    commercial = rng.random(nl) < 0.2
    tables["load"] = Table.from_columns(
        "load",
        {
            "id": np.arange(nl),
            "bus": has_load,
            "p_mw": p,
            "q_mvar": np.round(p * np.tan(np.arccos(0.95)), 4),
            "kind": np.where(commercial, int(LoadKind.COMMERCIAL), int(LoadKind.RESIDENTIAL)),
            "customers": np.where(commercial, 1, rng.integers(5, 40, nl)),
            "p_profile": np.where(commercial, 1, 0),
            "q_profile": np.where(commercial, 1, 0),
        },
    )
    pv_bus = has_load[rng.random(nl) < 0.3]
    npv = pv_bus.size
    tables["generator"] = Table.from_columns(
        "generator",
        {
            "id": np.arange(npv),
            "bus": pv_bus,
            "kind": int(GenKind.PV),
            "p_mw": np.round(rng.uniform(0.02, 0.2, npv), 4),
            "p_profile": 2,
        },
    )
    grid = Grid(f"synthetic:{n_buses}", 50.0, tables, default_profiles(profile_steps, seed=seed))
    grid.meta.update(
        {
            "generator": "gridpilot.model.synthetic",
            "seed": seed,
            "substations": n_sub,
            "feeders": n_feed,
        }
    )
    grid.validate()
    return grid
