"""Export a :class:`~gridpilot.model.Grid` to power-grid-model input, with the id maps.

PGM needs ids unique across all components; gridpilot ids are unique per component type. The
:class:`PgmNetwork` assigns PGM ids by offsets and remembers, for every gridpilot element, the
rows it became (a load with constant-current or constant-impedance shares becomes up to three
PGM loads, one per behaviour).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from power_grid_model import ComponentType, LoadGenType, WindingType, initialize_array

from gridpilot.model import ElementType, Grid
from gridpilot.model.topology_edges import branch_status

CT = ComponentType


@dataclass
class PgmNetwork:
    """PGM input arrays of a grid plus the maps back to gridpilot's tables."""

    input: dict[ComponentType, np.ndarray]
    # sym_load rows: per behaviour block, the positions in the gridpilot table and the share
    load_blocks: list[tuple[str, np.ndarray, np.ndarray, int]] = field(default_factory=list)
    # (component, positions in its table, share multiplier, offset of block in sym_load array)
    n_sym_load: int = 0
    bus_switch_pos: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def sym_load_ids(self) -> np.ndarray:
        """PGM ids of the sym_load rows, in order."""
        return self.input[CT.sym_load]["id"]


def _offsets(grid: Grid) -> dict[str, int]:
    off: dict[str, int] = {}
    k = 0
    for comp in ("bus", "line", "transformer", "link", "source", "sym_load", "sym_gen"):
        off[comp] = k
        if comp == "link":
            k += int(np.sum(grid.switch["et"] == ElementType.BUS))
        elif comp == "sym_load":
            k += 3 * len(grid.load) + len(grid.storage) + len(grid.ev_charger) + len(grid.flex_load)
        elif comp == "sym_gen":
            k += len(grid.generator)
        else:
            k += len(grid[comp])
    return off


@dataclass
class _Ids:
    """The PGM id offsets per component and the PGM node id of every bus (table order)."""

    grid: Grid
    off: dict[str, int]
    bus_pgm: np.ndarray

    def node(self, bus_ids: np.ndarray) -> np.ndarray:
        """PGM node ids of gridpilot bus ids."""
        return self.bus_pgm[self.grid.bus.position_map(bus_ids, "bus")]

    def ids(self, comp: str, n: int) -> np.ndarray:
        """PGM ids of ``n`` rows of ``comp``."""
        return self.off[comp] + np.arange(n)


def _line_input(m: _Ids, st: dict[str, np.ndarray]) -> np.ndarray:
    """Lines (ohm, F, A), their end status from the switch states."""
    ln = m.grid.line
    line = initialize_array("input", CT.line, len(ln))
    line["id"] = m.ids("line", len(ln))
    line["from_node"] = m.node(ln["from_bus"])
    line["to_node"] = m.node(ln["to_bus"])
    line["from_status"] = st["line_from"]
    line["to_status"] = st["line_to"]
    line["r1"] = ln["r_ohm_per_km"] * ln["length_km"]
    line["x1"] = ln["x_ohm_per_km"] * ln["length_km"]
    line["c1"] = ln["c_nf_per_km"] * 1e-9 * ln["length_km"]
    line["tan1"] = 0.0
    line["i_n"] = ln["max_i_ka"] * 1e3
    return line


def _trafo_input(m: _Ids, st: dict[str, np.ndarray]) -> np.ndarray:
    """Two-winding transformers (V, VA, W), vector group from the phase shift, tap changers."""
    tr = m.grid.transformer
    t = initialize_array("input", CT.transformer, len(tr))
    t["id"] = m.ids("transformer", len(tr))
    t["from_node"] = m.node(tr["hv_bus"])
    t["to_node"] = m.node(tr["lv_bus"])
    t["from_status"] = st["trafo_hv"]
    t["to_status"] = st["trafo_lv"]
    sn = tr["sn_mva"] * 1e6
    t["u1"] = tr["vn_hv_kv"] * 1e3
    t["u2"] = tr["vn_lv_kv"] * 1e3
    t["sn"] = sn
    t["uk"] = tr["vk_percent"] / 100.0
    t["pk"] = tr["vkr_percent"] / 100.0 * sn
    p0 = tr["pfe_kw"] * 1e3
    t["p0"] = p0
    t["i0"] = np.maximum(tr["i0_percent"] / 100.0, p0 / sn)
    clock = np.round(tr["shift_degree"] / 30.0).astype(int) % 12
    t["clock"] = clock
    odd = clock % 2 == 1
    t["winding_from"] = np.where(odd, WindingType.delta, WindingType.wye_n)
    t["winding_to"] = WindingType.wye_n
    t["tap_side"] = tr["tap_side"]
    t["tap_pos"] = tr["tap_pos"]
    t["tap_min"] = tr["tap_min"]
    t["tap_max"] = tr["tap_max"]
    t["tap_nom"] = tr["tap_neutral"]
    side_kv = np.where(tr["tap_side"] == 0, tr["vn_hv_kv"], tr["vn_lv_kv"])
    t["tap_size"] = tr["tap_step_percent"] / 100.0 * side_kv * 1e3
    return t


def _link_input(m: _Ids, st: dict[str, np.ndarray], bsw: np.ndarray) -> np.ndarray:
    """Bus-bus switches (positions ``bsw`` in the switch table) as links."""
    sw = m.grid.switch
    link = initialize_array("input", CT.link, bsw.size)
    link["id"] = m.ids("link", bsw.size)
    link["from_node"] = m.node(sw["bus"][bsw])
    link["to_node"] = m.node(sw["element"][bsw])
    link["from_status"] = st["busswitch"][bsw]
    link["to_status"] = 1
    return link


def _source_input(m: _Ids) -> np.ndarray:
    """Sources: voltage set point pu, angle rad, short-circuit power VA."""
    src = m.grid.source
    s = initialize_array("input", CT.source, len(src))
    s["id"] = m.ids("source", len(src))
    s["node"] = m.node(src["bus"])
    s["status"] = src["in_service"]
    s["u_ref"] = src["vm_pu"]
    s["u_ref_angle"] = np.deg2rad(src["va_deg"])
    s["sk"] = src["sk_mva"] * 1e6
    s["rx_ratio"] = src["rx_ratio"]
    return s


@dataclass
class _LoadRows:
    """sym_load rows collected block by block (node, status, type, P W, Q var)."""

    blocks: list[tuple[str, np.ndarray, np.ndarray, int]] = field(default_factory=list)
    cols: dict[str, list[np.ndarray]] = field(
        default_factory=lambda: {c: [] for c in ("node", "status", "type", "p", "q")}
    )
    k: int = 0

    def add(
        self, comp: str, pos: np.ndarray, share: np.ndarray, rows: tuple[np.ndarray, ...]
    ) -> None:
        """A block of ``comp``'s rows ``pos`` with ``share``; ``rows``: node, status, type, p, q."""
        self.blocks.append((comp, pos, share, self.k))
        for c, v in zip(("node", "status", "type", "p", "q"), rows, strict=True):
            self.cols[c].append(v)
        self.k += pos.size


def _load_rows(m: _Ids) -> _LoadRows:
    """One block per load behaviour (constant power, current, impedance), then storage, EV
    chargers and flexible loads (whose rated power is not consumption: 0, set per step)."""
    out = _LoadRows()
    ld = m.grid.load
    if len(ld):
        i_sh, z_sh = ld["i_share"], ld["z_share"]
        for share, typ in (
            (1.0 - i_sh - z_sh, LoadGenType.const_power),
            (i_sh, LoadGenType.const_current),
            (z_sh, LoadGenType.const_impedance),
        ):
            pos = np.flatnonzero(share > 0)
            if pos.size == 0:
                continue
            p = ld["p_mw"][pos] * share[pos] * 1e6
            q = ld["q_mvar"][pos] * share[pos] * 1e6
            cols = (m.node(ld["bus"][pos]), ld["in_service"][pos], np.full(pos.size, typ), p, q)
            out.add("load", pos, share[pos], cols)
    for comp in ("storage", "ev_charger", "flex_load"):
        tb = m.grid[comp]
        n = len(tb)
        if not n:
            continue
        if comp == "flex_load":
            p, q = np.zeros(n), np.zeros(n)
        else:
            p = tb["p_mw"] * 1e6
            q = (tb["q_mvar"] if "q_mvar" in tb.fields else np.zeros(n)) * 1e6
        kinds = np.full(n, LoadGenType.const_power)
        out.add(comp, np.arange(n), np.ones(n), (m.node(tb["bus"]), tb["in_service"], kinds, p, q))
    return out


def _sym_load_input(m: _Ids, rows: _LoadRows) -> np.ndarray:
    """The sym_load array of the collected rows."""
    k = rows.k
    sl = initialize_array("input", CT.sym_load, k)
    sl["id"] = m.ids("sym_load", k)
    for name, col in (
        ("node", "node"),
        ("status", "status"),
        ("type", "type"),
        ("p_specified", "p"),
        ("q_specified", "q"),
    ):
        sl[name] = np.concatenate(rows.cols[col])
    return sl


def _sym_gen_input(m: _Ids) -> np.ndarray:
    """Generators as constant-power injections (W, var)."""
    gen = m.grid.generator
    g = initialize_array("input", CT.sym_gen, len(gen))
    g["id"] = m.ids("sym_gen", len(gen))
    g["node"] = m.node(gen["bus"])
    g["status"] = gen["in_service"]
    g["type"] = LoadGenType.const_power
    g["p_specified"] = gen["p_mw"] * 1e6
    g["q_specified"] = gen["q_mvar"] * 1e6
    return g


def to_pgm(grid: Grid, switch_closed: np.ndarray | None = None) -> PgmNetwork:
    """power-grid-model input of ``grid`` with the present (or given) switch states."""
    off = _offsets(grid)
    nb = len(grid.bus)
    m = _Ids(grid, off, off["bus"] + np.arange(nb))
    node = initialize_array("input", CT.node, nb)
    node["id"] = m.bus_pgm
    node["u_rated"] = grid.bus["v_nom_kv"] * 1e3
    st = branch_status(grid, switch_closed)
    data: dict[ComponentType, np.ndarray] = {CT.node: node, CT.line: _line_input(m, st)}
    if len(grid.transformer):
        data[CT.transformer] = _trafo_input(m, st)
    bsw = np.flatnonzero(grid.switch["et"] == ElementType.BUS)
    if bsw.size:
        data[CT.link] = _link_input(m, st, bsw)
    data[CT.source] = _source_input(m)
    rows = _load_rows(m)
    if rows.k:
        data[CT.sym_load] = _sym_load_input(m, rows)
    if len(grid.generator):
        data[CT.sym_gen] = _sym_gen_input(m)
    return PgmNetwork(data, rows.blocks, rows.k, bsw)
