"""Linear network model of a feeder for the scheduler, from the twin.

* Voltage sensitivities dV/dP and dV/dQ (pu per MW / Mvar consumed at each bus with devices)
  by finite differences: one :meth:`Twin.timeseries` batch with two perturbed scenarios (P and
  Q) per device bus, the same linearisation for both.
* Branch flows as the sum of net load below each branch of the supply tree (lossless
  DistFlow on the radial tree from :func:`gridpilot.twin.supply_tree`; meshes are cut the way
  the tree cuts them, so parallel transformers are checked as one, which is conservative).
* Base voltages and feeder power of the window from a twin run with the devices at zero.

The grid is extended with one zero "fleet aggregate" load per device bus so that device
power can be fed to the twin per bus without touching the grid's own loads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix

from gridpilot.errors import ValidationError
from gridpilot.model import Grid, branch_status
from gridpilot.twin import Injections, Twin, profiles_for, step_injections, supply_tree

SQRT3 = float(np.sqrt(3.0))


def extend_grid(grid: Grid, buses: np.ndarray) -> tuple[Grid, np.ndarray]:
    """A copy of ``grid`` with one zero load per bus in ``buses``; returns it and their load positions."""
    g = grid.copy()
    n0 = len(g.load)
    start = int(g.load.ids.max()) + 1 if n0 else 0
    g.add(
        "load",
        id=np.arange(start, start + buses.size),
        bus=buses,
        p_mw=np.zeros(buses.size),
        q_mvar=np.zeros(buses.size),
        customers=np.zeros(buses.size, np.int64),
    )
    return g, np.arange(n0, n0 + buses.size)


@dataclass
class NetworkModel:
    """Linearised feeder around the no-device operating point.

    ``v_sens`` (n_bus, n_flex) pu/MW and ``v_sens_q`` (n_bus, n_flex) pu/Mvar, both per unit of
    power *consumed* at the device bus (load convention: absorbing vars lowers voltage); ``ptdf`` (n_edge, n_flex) and ``ptdf_all`` (n_edge, n_bus)
    0/1 subtree matrices; ``edge_s_max_mva`` ratings of the tree edges (inf where unrated);
    ``edge_name`` what each edge is (``line 12``); ``trafo_s_max_mva`` total transformer rating.
    """

    grid: Grid
    twin: Twin
    flex_bus_id: np.ndarray
    flex_load_pos: np.ndarray
    v_sens: np.ndarray
    ptdf: csr_matrix
    ptdf_all: csr_matrix
    edge_s_max_mva: np.ndarray
    edge_name: list[str]
    trafo_s_max_mva: float
    v_sens_q: np.ndarray | None = None

    def injections(self, t0: int, steps: int) -> dict[str, np.ndarray]:
        """The grid's own (T, n) injections for steps ``t0 .. t0 + steps`` (fleet loads at 0)."""
        prof, cols = profiles_for(self.grid, t0 + steps)
        return step_injections(self.grid, prof, cols, slice(t0, t0 + steps))

    def bus_net_load(self, inj: dict[str, np.ndarray], key_p: str = "p") -> np.ndarray:
        """(T, n_bus) net active (``p``) or reactive (``q``) load per bus, MW/Mvar."""
        g = self.grid
        bpos = g.bus.position_map
        n = len(g.bus)
        lm = csr_matrix(
            (np.ones(len(g.load)), (bpos(g.load["bus"]), np.arange(len(g.load)))),
            shape=(n, len(g.load)),
        )
        if key_p == "q":
            return np.asarray((lm @ inj["load_q_mvar"].T).T)
        gm = csr_matrix(
            (np.ones(len(g.generator)), (bpos(g.generator["bus"]), np.arange(len(g.generator)))),
            shape=(n, len(g.generator)),
        )
        out = (lm @ inj["load_p_mw"].T).T - (gm @ inj["gen_p_mw"].T).T
        if "storage_p_mw" in inj and len(g.storage):
            sm = csr_matrix(
                (np.ones(len(g.storage)), (bpos(g.storage["bus"]), np.arange(len(g.storage)))),
                shape=(n, len(g.storage)),
            )
            out = out + (sm @ inj["storage_p_mw"].T).T
        return np.asarray(out)


def _tree_edges(grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], float]:
    """Tree edges (child bus positions), their parents, ratings (MVA) and names; trafo rating."""
    tree = supply_tree(grid)
    st = branch_status(grid)
    bpos = grid.bus.position_map
    ln, tr = grid.line, grid.transformer
    rating: dict[tuple[int, int], float] = {}
    names: dict[tuple[int, int], str] = {}
    lon = np.flatnonzero(st["line_from"] & st["line_to"])
    if lon.size:
        a, b = bpos(ln["from_bus"][lon]), bpos(ln["to_bus"][lon])
        s = SQRT3 * grid.bus["v_nom_kv"][a] * ln["max_i_ka"][lon]
        for i, j, sv, lid in zip(
            a.tolist(), b.tolist(), s.tolist(), ln.ids[lon].tolist(), strict=True
        ):
            key = (min(i, j), max(i, j))
            rating[key] = rating.get(key, 0.0) + sv
            names[key] = (
                names.get(key, f"line {lid}") if key not in names else names[key] + f"+{lid}"
            )
    ton = np.flatnonzero(st["trafo_hv"] & st["trafo_lv"])
    if ton.size:
        a, b = bpos(tr["hv_bus"][ton]), bpos(tr["lv_bus"][ton])
        for i, j, sv, tid in zip(
            a.tolist(), b.tolist(), tr["sn_mva"][ton].tolist(), tr.ids[ton].tolist(), strict=True
        ):
            key = (min(i, j), max(i, j))
            rating[key] = rating.get(key, 0.0) + sv
            names[key] = f"transformer {tid}"
    child = np.flatnonzero(tree.parent >= 0)
    par = tree.parent[child]
    s_max = np.array(
        [
            rating.get((min(i, j), max(i, j)), np.inf)
            for i, j in zip(child.tolist(), par.tolist(), strict=True)
        ]
    )
    nm = [
        names.get((min(i, j), max(i, j)), f"bus link {int(grid.bus.ids[j])}-{int(grid.bus.ids[i])}")
        for i, j in zip(child.tolist(), par.tolist(), strict=True)
    ]
    trafo_total = float(tr["sn_mva"][ton].sum()) if ton.size else float("inf")
    return child, tree.parent, s_max, nm, trafo_total


def build_network(
    grid: Grid,
    flex_buses: np.ndarray,
    t_ref: int = 0,
    delta_mw: float = 0.05,
    engine: str = "auto",
) -> NetworkModel:
    """A :class:`NetworkModel` of ``grid`` for devices at ``flex_buses`` (bus ids).

    dV/dP and dV/dQ come from one twin batch at step ``t_ref`` of the grid's profiles with
    ``delta_mw`` (MW, then Mvar) added at one device bus per scenario. A device bus outside the
    grid is an UnknownComponentError. ``engine``: the twin's power-flow engine (``auto``,
    ``pgm``, ...).
    """
    flex_buses = np.asarray(flex_buses, np.int64)
    grid.bus.position_map(flex_buses, "bus")
    g, fpos = extend_grid(grid, flex_buses)
    twin = Twin(g, engine=engine)
    nf = flex_buses.size
    prof, cols = profiles_for(g, t_ref + 1)
    inj = step_injections(g, prof, cols, slice(t_ref, t_ref + 1))
    rep = {k: np.repeat(v, 2 * nf + 1, axis=0) for k, v in inj.items()}
    rep["load_p_mw"][np.arange(1, nf + 1), fpos] += delta_mw
    rep["load_q_mvar"][np.arange(nf + 1, 2 * nf + 1), fpos] += delta_mw
    scenarios = Injections.from_mapping(rep)
    ts = twin.timeseries(2 * nf + 1, injections=scenarios, outputs=("v_pu",))
    if not np.all(ts.converged):
        raise ValidationError(
            "network: power flow for the sensitivities did not converge at step "
            f"{t_ref}; try another reference step"
        )
    v = np.asarray(ts.v_pu, np.float64)
    v_sens = ((v[1 : nf + 1] - v[0]) / delta_mw).T  # (n_bus, nf)
    v_sens[np.abs(v_sens) < 1e-5] = 0.0  # float32 noise of the engine output
    v_sens_q = ((v[nf + 1 :] - v[0]) / delta_mw).T
    v_sens_q[np.abs(v_sens_q) < 1e-5] = 0.0
    child, parent, s_max, names, trafo = _tree_edges(g)
    n = len(g.bus)
    edge_of_child = np.full(n, -1, np.int64)
    edge_of_child[child] = np.arange(child.size)
    rows, cols_ = [], []
    cur = np.arange(n)
    col = np.arange(n)
    for _ in range(n):
        m = (cur >= 0) & (parent[np.clip(cur, 0, None)] >= 0)
        if not m.any():
            break
        rows.append(edge_of_child[cur[m]])
        cols_.append(col[m])
        cur = np.where(m, parent[np.clip(cur, 0, None)], -1)
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols_) if cols_ else np.zeros(0, np.int64)
    ptdf_all = coo_matrix((np.ones(r.size), (r, c)), shape=(child.size, n)).tocsr()
    ptdf = ptdf_all[:, g.bus.position_map(flex_buses)]
    return NetworkModel(
        g, twin, flex_buses, fpos, v_sens, ptdf.tocsr(), ptdf_all, s_max, names, trafo, v_sens_q
    )
