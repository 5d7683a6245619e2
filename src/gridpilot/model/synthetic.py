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

from dataclasses import dataclass, field

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


@dataclass
class _Buses:
    """Per-bus nominal voltage kV, diagram coordinates and feeder zone (0: source and busbars)."""

    kv: np.ndarray
    x: np.ndarray
    y: np.ndarray
    zone: np.ndarray


@dataclass
class _Branches:
    """Lines (from, to, length km, type 0 trunk / 1 lateral / 2 tie) and line switches as built."""

    lf: list[int] = field(default_factory=list)
    lt: list[int] = field(default_factory=list)
    llen: list[float] = field(default_factory=list)
    ltyp: list[int] = field(default_factory=list)
    sw_line: list[int] = field(default_factory=list)
    sw_bus: list[int] = field(default_factory=list)
    sw_kind: list[int] = field(default_factory=list)
    sw_closed: list[bool] = field(default_factory=list)

    def line(self, a: int, b: int, length_km: float, typ: int) -> int:
        """Add a line from bus ``a`` to ``b``; returns its index."""
        self.lf.append(a)
        self.lt.append(b)
        self.llen.append(length_km)
        self.ltyp.append(typ)
        return len(self.lf) - 1

    def switch(self, line: int, bus: int, kind: SwitchKind, closed: bool) -> None:
        """Add a switch on ``line`` at ``bus``."""
        self.sw_line.append(line)
        self.sw_bus.append(bus)
        self.sw_kind.append(int(kind))
        self.sw_closed.append(closed)


@dataclass
class _Layout:
    """How the buses split: substations, feeders, buses per feeder and each feeder's substation."""

    n_buses: int
    n_sub: int
    n_feed: int
    sizes: np.ndarray
    sub_of_feeder: np.ndarray

    @classmethod
    def of(cls, n_buses: int) -> _Layout:
        """One substation per 300 buses, six feeders each, the feeder buses shared out evenly."""
        n_sub = max(1, int(np.ceil((n_buses - 1) / BUSES_PER_SUBSTATION)))
        feeder_buses = n_buses - 1 - n_sub
        if feeder_buses < n_sub:
            n_sub = 1
            feeder_buses = n_buses - 2
        n_feed = max(1, min(n_sub * FEEDERS_PER_SUBSTATION, feeder_buses))
        sizes = np.full(n_feed, feeder_buses // n_feed)
        sizes[: feeder_buses % n_feed] += 1
        return cls(n_buses, n_sub, n_feed, sizes, np.arange(n_feed) * n_sub // n_feed)


def _start_buses(lay: _Layout) -> _Buses:
    """The source bus (110 kV) and the substations' 20 kV busbars in a row."""
    n = lay.n_buses
    bus = _Buses(np.empty(n), np.zeros(n), np.zeros(n), np.zeros(n, np.int32))
    bus.kv[0] = 110.0
    bus.y[0] = 2.0
    busbar = 1 + np.arange(lay.n_sub)
    bus.kv[busbar] = 20.0
    bus.x[busbar] = np.arange(lay.n_sub) * 12.0
    return bus


def _grow_feeder(
    rng: np.random.Generator, f: int, root: int, ids: np.ndarray, net: tuple[_Buses, _Branches]
) -> np.ndarray:
    """Feeder ``f`` from busbar ``root`` over buses ``ids``: a random trunk with laterals; returns its trunk buses."""
    bus, br = net
    angle = np.pi * (0.1 + 0.8 * ((f % FEEDERS_PER_SUBSTATION) + 0.5) / FEEDERS_PER_SUBSTATION)
    d = np.array([np.cos(angle), -np.sin(angle)])
    perp = np.array([-d[1], d[0]])
    bus.kv[ids] = 20.0
    bus.zone[ids] = f + 1
    trunk = [root]
    members = [root]
    depth_pos = {root: np.array([bus.x[root], bus.y[root]])}
    for k, b_ in enumerate(ids):
        b = int(b_)
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
        bus.x[b], bus.y[b] = pos
        members.append(b)
        line_idx = br.line(parent, b, seg, typ)
        if k == 0:
            br.switch(line_idx, parent, SwitchKind.BREAKER, True)
        elif typ == 0 and (len(trunk) - 1) % 5 == 0:
            br.switch(line_idx, parent, SwitchKind.LOAD_BREAK, True)
    return np.array(trunk[1:])


def _add_ties(rng: np.random.Generator, br: _Branches, trunks: list[np.ndarray]) -> None:
    """Normally-open ties: end of each feeder's trunk to a trunk bus of the next feeder."""
    n_feed = len(trunks)
    if n_feed <= 1:
        return
    for f in range(n_feed):
        g = (f + 1) % n_feed
        if g == f or (n_feed == 2 and f == 1):
            continue
        a = int(trunks[f][-1])
        tb = trunks[g]
        b = int(tb[len(tb) // 2 + rng.integers(0, max(1, len(tb) - len(tb) // 2))])
        line_idx = br.line(a, b, rng.uniform(0.5, 1.0), 2)
        br.switch(line_idx, a, SwitchKind.LOAD_BREAK, False)


def _network_tables(lay: _Layout, bus: _Buses, br: _Branches) -> dict[str, Table]:
    """Bus, line, transformer, source and switch tables of the built network."""
    n_sub = lay.n_sub
    typ = np.array(br.ltyp)
    params = np.where(typ[:, None] == 1, np.array(LATERAL)[None, :], np.array(TRUNK)[None, :])
    bus_ids = np.arange(lay.n_buses, dtype=np.int64)
    return {
        "bus": Table.from_columns(
            "bus", {"id": bus_ids, "v_nom_kv": bus.kv, "x": bus.x, "y": bus.y, "zone": bus.zone}
        ),
        "line": Table.from_columns(
            "line",
            {
                "id": np.arange(len(br.lf)),
                "from_bus": br.lf,
                "to_bus": br.lt,
                "length_km": np.round(br.llen, 3),
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
                "lv_bus": 1 + np.arange(n_sub),
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
                "id": np.arange(len(br.sw_line)),
                "bus": br.sw_bus,
                "element": np.array(br.sw_line, np.int64),
                "et": 0,
                "kind": br.sw_kind,
                "closed": br.sw_closed,
                "normally_open": ~np.array(br.sw_closed, bool),
            },
        ),
    }


def _customer_tables(rng: np.random.Generator, feeder_all: np.ndarray) -> dict[str, Table]:
    """Loads on 85 % of the feeder buses (20 % commercial) and PV on 30 % of those."""
    has_load = feeder_all[rng.random(feeder_all.size) < 0.85]
    nl = has_load.size
    p = np.round(rng.lognormal(np.log(0.080), 0.5, nl), 4)
    commercial = rng.random(nl) < 0.2
    load = Table.from_columns(
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
    gen = Table.from_columns(
        "generator",
        {
            "id": np.arange(npv),
            "bus": pv_bus,
            "kind": int(GenKind.PV),
            "p_mw": np.round(rng.uniform(0.02, 0.2, npv), 4),
            "p_profile": 2,
        },
    )
    return {"load": load, "generator": gen}


def synthetic_grid(n_buses: int, seed: int = 0, profile_steps: int = 96 * 366) -> Grid:
    """Generate the ``synthetic:N`` grid of exactly ``n_buses`` buses (see module docs)."""
    if not 4 <= n_buses <= MAX_BUSES:
        raise ValidationError(
            f"synthetic grid: n_buses must lie in [4, {MAX_BUSES}], got {n_buses}"
        )
    rng = np.random.default_rng(seed)
    lay = _Layout.of(n_buses)
    bus = _start_buses(lay)
    br = _Branches()
    trunks: list[np.ndarray] = []
    feeder_bus_lists: list[np.ndarray] = []
    nxt = 1 + lay.n_sub
    for f in range(lay.n_feed):
        ids = np.arange(nxt, nxt + int(lay.sizes[f]))
        nxt += ids.size
        trunks.append(_grow_feeder(rng, f, 1 + int(lay.sub_of_feeder[f]), ids, (bus, br)))
        feeder_bus_lists.append(ids)
    _add_ties(rng, br, trunks)
    tables = _network_tables(lay, bus, br)
    feeder_all = np.concatenate(feeder_bus_lists) if feeder_bus_lists else np.zeros(0, np.int64)
    tables.update(_customer_tables(rng, feeder_all))
    grid = Grid(f"synthetic:{n_buses}", 50.0, tables, default_profiles(profile_steps, seed=seed))
    grid.meta.update(
        {
            "generator": "gridpilot.model.synthetic",
            "seed": seed,
            "substations": lay.n_sub,
            "feeders": lay.n_feed,
        }
    )
    grid.validate()
    return grid
