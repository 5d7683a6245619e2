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


def to_pgm(grid: Grid, switch_closed: np.ndarray | None = None) -> PgmNetwork:
    """power-grid-model input of ``grid`` with the present (or given) switch states."""
    off = _offsets(grid)
    nb = len(grid.bus)
    bus_pgm = off["bus"] + np.arange(nb)
    node = initialize_array("input", CT.node, nb)
    node["id"] = bus_pgm
    node["u_rated"] = grid.bus["v_nom_kv"] * 1e3
    pm = grid.bus.position_map
    st = branch_status(grid, switch_closed)
    data: dict[ComponentType, np.ndarray] = {CT.node: node}

    ln = grid.line
    line = initialize_array("input", CT.line, len(ln))
    line["id"] = off["line"] + np.arange(len(ln))
    line["from_node"] = bus_pgm[pm(ln["from_bus"], "bus")]
    line["to_node"] = bus_pgm[pm(ln["to_bus"], "bus")]
    line["from_status"] = st["line_from"]
    line["to_status"] = st["line_to"]
    line["r1"] = ln["r_ohm_per_km"] * ln["length_km"]
    line["x1"] = ln["x_ohm_per_km"] * ln["length_km"]
    line["c1"] = ln["c_nf_per_km"] * 1e-9 * ln["length_km"]
    line["tan1"] = 0.0
    line["i_n"] = ln["max_i_ka"] * 1e3
    data[CT.line] = line

    tr = grid.transformer
    if len(tr):
        t = initialize_array("input", CT.transformer, len(tr))
        t["id"] = off["transformer"] + np.arange(len(tr))
        t["from_node"] = bus_pgm[pm(tr["hv_bus"], "bus")]
        t["to_node"] = bus_pgm[pm(tr["lv_bus"], "bus")]
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
        data[CT.transformer] = t

    sw = grid.switch
    bsw = np.flatnonzero(sw["et"] == ElementType.BUS)
    if bsw.size:
        link = initialize_array("input", CT.link, bsw.size)
        link["id"] = off["link"] + np.arange(bsw.size)
        link["from_node"] = bus_pgm[pm(sw["bus"][bsw], "bus")]
        link["to_node"] = bus_pgm[pm(sw["element"][bsw], "bus")]
        link["from_status"] = st["busswitch"][bsw]
        link["to_status"] = 1
        data[CT.link] = link

    src = grid.source
    s = initialize_array("input", CT.source, len(src))
    s["id"] = off["source"] + np.arange(len(src))
    s["node"] = bus_pgm[pm(src["bus"], "bus")]
    s["status"] = src["in_service"]
    s["u_ref"] = src["vm_pu"]
    s["u_ref_angle"] = np.deg2rad(src["va_deg"])
    s["sk"] = src["sk_mva"] * 1e6
    s["rx_ratio"] = src["rx_ratio"]
    data[CT.source] = s

    # loads: one block per behaviour, then storage, EV chargers, flexible loads
    blocks: list[tuple[str, np.ndarray, np.ndarray, int]] = []
    rows_node: list[np.ndarray] = []
    rows_status: list[np.ndarray] = []
    rows_type: list[np.ndarray] = []
    rows_p: list[np.ndarray] = []
    rows_q: list[np.ndarray] = []
    k = 0
    ld = grid.load
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
            blocks.append(("load", pos, share[pos], k))
            rows_node.append(bus_pgm[pm(ld["bus"][pos], "bus")])
            rows_status.append(ld["in_service"][pos])
            rows_type.append(np.full(pos.size, typ))
            rows_p.append(ld["p_mw"][pos] * share[pos] * 1e6)
            rows_q.append(ld["q_mvar"][pos] * share[pos] * 1e6)
            k += pos.size
    for comp in ("storage", "ev_charger", "flex_load"):
        tb = grid[comp]
        if not len(tb):
            continue
        pos = np.arange(len(tb))
        blocks.append((comp, pos, np.ones(len(tb)), k))
        rows_node.append(bus_pgm[pm(tb["bus"], "bus")])
        rows_status.append(tb["in_service"])
        rows_type.append(np.full(len(tb), LoadGenType.const_power))
        if comp == "flex_load":
            rows_p.append(np.zeros(len(tb)))  # rated power is not consumption; set per step
            rows_q.append(np.zeros(len(tb)))
        else:
            rows_p.append(tb["p_mw"] * 1e6)
            rows_q.append((tb["q_mvar"] if "q_mvar" in tb.fields else np.zeros(len(tb))) * 1e6)
        k += len(tb)
    sl = initialize_array("input", CT.sym_load, k)
    if k:
        sl["id"] = off["sym_load"] + np.arange(k)
        sl["node"] = np.concatenate(rows_node)
        sl["status"] = np.concatenate(rows_status)
        sl["type"] = np.concatenate(rows_type)
        sl["p_specified"] = np.concatenate(rows_p)
        sl["q_specified"] = np.concatenate(rows_q)
        data[CT.sym_load] = sl

    gen = grid.generator
    if len(gen):
        g = initialize_array("input", CT.sym_gen, len(gen))
        g["id"] = off["sym_gen"] + np.arange(len(gen))
        g["node"] = bus_pgm[pm(gen["bus"], "bus")]
        g["status"] = gen["in_service"]
        g["type"] = LoadGenType.const_power
        g["p_specified"] = gen["p_mw"] * 1e6
        g["q_specified"] = gen["q_mvar"] * 1e6
        data[CT.sym_gen] = g
    return PgmNetwork(data, blocks, k, bsw)
