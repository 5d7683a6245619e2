"""A batched AC power flow for radial networks (backward/forward sweep), for candidate plans.

FLISR must check dozens of candidate switchings in a few milliseconds. This solver takes a
region of the grid (a set of buses, the branches among them and one or more root buses held
at known voltages), compiled once by :meth:`RadialSolver.prepare`, and many candidate sets of
conducting branches; one numba loop builds each candidate's radial tree (breadth-first from
the roots) and runs the classic backward/forward sweep on it until that candidate converges.

It stays separate from the twin's batch kernel (:mod:`gridpilot.twin.radial_kernel`): that one
solves many load states on *one* topology ordered in Python beforehand, while here every
candidate has its own topology, found inside the kernel at microsecond cost.

Model (per unit on 1 MVA and the buses' nominal voltages): lines as pi sections (series
impedance, half the charging at each end); transformers as an ideal ratio (from rated
voltages and tap) followed by the short-circuit impedance, magnetising admittance at the HV
side; loads as ZIP (constant power, current, impedance shares); generators, storage and EV
chargers at their set points. It agrees with power-grid-model to about 1e-4 pu on radial
grids (see tests). Not modelled: the source's short-circuit impedance (roots are ideal),
charging of lines open at one end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridpilot.control.radial_sweep import sweep_batch
from gridpilot.control.radial_sweep import warm_radial_kernel as warm_radial_kernel  # kept path
from gridpilot.errors import ValidationError
from gridpilot.model import ElementType, Grid

S_BASE_MVA = 1.0


@dataclass
class RadialBatchResult:
    """Results of a batch of candidate configurations over one region.

    ``v_pu`` (T, m) bus voltage magnitudes (0 where not supplied); ``supplied`` (T, m);
    ``loading_pct`` (T, k) loading of region branches (0 where not conducting);
    ``vmin_pu``, ``vmax_pu``, ``max_loading_pct`` per candidate; ``radial`` False where a
    candidate closes a loop; ``converged`` per candidate; ``iterations`` of the sweep.
    """

    v_pu: np.ndarray
    supplied: np.ndarray
    loading_pct: np.ndarray
    vmin_pu: np.ndarray
    vmax_pu: np.ndarray
    max_loading_pct: np.ndarray
    losses_kw: np.ndarray
    radial: np.ndarray
    converged: np.ndarray
    iterations: int
    root_s_mva: np.ndarray  # (T, n_roots) complex power drawn from each root


@dataclass
class RadialRegion:
    """A region compiled for :meth:`RadialSolver.run`: local numbering and parameters.

    ``bf``/``bt``: local end buses of the ``k`` branches; ``adj_*``: CSR adjacency over the
    ``m`` local buses (branch and far bus of each incidence); ``roots``: local root buses held
    at ``v_root`` (pu); the rest are the branch and bus parameters of :class:`RadialSolver`
    restricted to the region (``has_iz``: some load has constant-current or -impedance parts).
    """

    m: int
    k: int
    bf: np.ndarray
    bt: np.ndarray
    adj_ptr: np.ndarray
    adj_br: np.ndarray
    adj_oth: np.ndarray
    roots: np.ndarray
    v_root: np.ndarray
    z: np.ndarray
    ratio: np.ndarray
    y_from: np.ndarray
    y_to: np.ndarray
    s_p: np.ndarray
    s_i: np.ndarray
    s_z: np.ndarray
    has_iz: bool
    is_line: np.ndarray
    line_scale: np.ndarray
    trafo_scale: np.ndarray
    n_virtual: int = 0  # Thevenin roots appended after the m real buses / k real branches
    real: np.ndarray | None = None  # (m + n_virtual) bool: real bus (checked for vmin/vmax)

    @property
    def m_real(self) -> int:
        """Number of real buses (the first ``m_real`` local buses)."""
        return self.m - self.n_virtual

    @property
    def k_real(self) -> int:
        """Number of real branches (the first ``k_real`` local branches)."""
        return self.k - self.n_virtual


class RadialSolver:
    """Per-unit branch and injection data of a whole grid, compiled once.

    Branches are lines, then transformers, then bus-bus switches (zero impedance, modelled
    as 1e-6 pu). ``branch_from``/``branch_to`` are bus positions.
    """

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        pm = grid.bus.position_map
        vkv = grid.bus["v_nom_kv"].astype(float)
        ln, tr, sw = grid.line, grid.transformer, grid.switch
        w = 2 * np.pi * grid.f_hz
        lf, lt = pm(ln["from_bus"], "bus"), pm(ln["to_bus"], "bus")
        zb = vkv[lf] ** 2 / S_BASE_MVA
        z_l = (ln["r_ohm_per_km"] + 1j * ln["x_ohm_per_km"]) * ln["length_km"] / zb
        y_l = 1j * w * ln["c_nf_per_km"] * 1e-9 * ln["length_km"] * zb / 2
        th, tl = pm(tr["hv_bus"], "bus"), pm(tr["lv_bus"], "bus")
        sn = tr["sn_mva"]
        z_t, ratio, y_m = _trafo_params(grid, vkv)
        bsw = np.flatnonzero(sw["et"] == ElementType.BUS)
        bf, bt = pm(sw["bus"][bsw], "bus"), pm(sw["element"][bsw], "bus")
        nl, nt, nbs = len(ln), len(tr), bsw.size
        self.n_line, self.n_trafo = nl, nt
        self.bus_switch_pos = bsw
        self.branch_from = np.concatenate([lf, th, bf]).astype(np.int64)
        self.branch_to = np.concatenate([lt, tl, bt]).astype(np.int64)
        self.z = np.concatenate([z_l, z_t, np.full(nbs, 1e-6 + 0j)])
        self.ratio = np.concatenate([np.ones(nl), ratio, np.ones(nbs)])
        self.y_from = np.concatenate([y_l, y_m, np.zeros(nbs)])
        self.y_to = np.concatenate([y_l, np.zeros(nt), np.zeros(nbs)])
        # ratings: current base at the branch's 'to' side
        self.i_base_ka = S_BASE_MVA / (np.sqrt(3) * vkv[self.branch_to])
        self.max_i_ka = np.concatenate([ln["max_i_ka"], np.full(nt + nbs, np.inf)])
        self.sn_mva = np.concatenate([np.full(nl, np.inf), sn, np.full(nbs, np.inf)])
        self.in_service = np.concatenate([ln["in_service"], tr["in_service"], np.ones(nbs, bool)])
        # loading per unit of branch current (pu on the 'to' side): lines by ampacity (I/Imax),
        # transformers by apparent power S/Sn, the larger of the two sides (the twin's
        # definition, see docs/flisr.md), bus switches not at all
        self.is_line = np.arange(nl + nt + nbs) < nl
        self.line_scale = np.where(
            self.is_line, self.i_base_ka / np.where(self.is_line, self.max_i_ka, 1.0), 0.0
        )
        self.trafo_scale = S_BASE_MVA / self.sn_mva
        self.s_p, self.s_i, self.s_z = _injections(grid)

    def prepare(
        self,
        buses: np.ndarray,
        branches: np.ndarray,
        roots: np.ndarray,
        v_root_pu: np.ndarray,
        z_root_pu: np.ndarray | None = None,
        s_root_pu: np.ndarray | None = None,
    ) -> RadialRegion:
        """Compile a region once (local numbering, adjacency, parameters) for many batches.

        ``buses``: bus positions of the region (m); ``branches``: branch indices of the region
        (k, both ends in ``buses``); ``roots``: bus positions held at ``v_root_pu``. With
        ``z_root_pu`` (complex, pu on 1 MVA and the root bus's nominal voltage, one per root)
        each root is fed instead through that Thevenin impedance from a virtual bus held at
        ``v_root_pu``: the root's own voltage then drops as the region draws more (what lies
        upstream of a feeder head: transformer, HV grid, source impedance). ``s_root_pu``
        (complex, load convention) adds a constant-power load at each root bus (what the root
        feeds outside the region). Returns a :class:`RadialRegion` for :meth:`run`.
        """
        buses = np.asarray(buses, np.int64)
        branches = np.asarray(branches, np.int64)
        m, k = buses.size, branches.size
        loc = np.full(len(self.grid.bus), -1, np.int64)
        loc[buses] = np.arange(m)
        bf = loc[self.branch_from[branches]]
        bt = loc[self.branch_to[branches]]
        if k and (bf.min() < 0 or bt.min() < 0):
            raise ValidationError("branches: every region branch needs both end buses in 'buses'")
        rl = loc[np.asarray(roots, np.int64)]
        if rl.size and rl.min() < 0:
            raise ValidationError("roots: every root bus must be in 'buses'")
        # adjacency of the region (CSR over local buses): branch and far end of each incidence
        ends = np.concatenate([bf, bt])
        order = np.argsort(ends, kind="stable")
        adj_ptr = np.zeros(m + 1, np.int64)
        np.cumsum(np.bincount(ends, minlength=m), out=adj_ptr[1:])
        s_i, s_z = self.s_i[buses], self.s_z[buses]
        s_p = self.s_p[buses]
        if s_root_pu is not None and rl.size:
            s_p = s_p.copy()
            np.add.at(s_p, rl, np.asarray(s_root_pu, complex).reshape(-1))
        reg = RadialRegion(
            m=m,
            k=k,
            bf=bf,
            bt=bt,
            adj_ptr=adj_ptr,
            adj_br=np.concatenate([np.arange(k), np.arange(k)])[order],
            adj_oth=np.concatenate([bt, bf])[order],
            roots=rl,
            v_root=np.ascontiguousarray(np.asarray(v_root_pu, complex).reshape(-1)),
            z=self.z[branches],
            ratio=self.ratio[branches],
            y_from=self.y_from[branches],
            y_to=self.y_to[branches],
            s_p=s_p,
            s_i=s_i,
            s_z=s_z,
            has_iz=bool(np.any(s_i != 0) or np.any(s_z != 0)),
            is_line=self.is_line[branches],
            line_scale=self.line_scale[branches],
            trafo_scale=self.trafo_scale[branches],
            real=np.ones(m, bool),
        )
        if z_root_pu is not None and rl.size:
            _add_thevenin_roots(reg, np.asarray(z_root_pu, complex).reshape(-1))
        return reg

    def run(
        self,
        reg: RadialRegion,
        conducting: np.ndarray,
        tol: float = 1e-9,
        max_iter: int = 30,
        warm_from_first: bool = False,
    ) -> RadialBatchResult:
        """Power flow of T candidates over a prepared region.

        ``conducting``: (T, k) bool, which region branches conduct in each candidate. Buses not
        reached from a root are unsupplied. Returns a :class:`RadialBatchResult`; each candidate
        iterates until its own largest voltage change is below ``tol`` (pu) or ``max_iter``.
        With ``warm_from_first`` the other candidates start from the first one's voltages where
        it supplies the bus (fewer iterations when candidates differ by a few switchings).
        """
        cond = np.atleast_2d(np.asarray(conducting, bool))
        t_n, k = cond.shape
        if k != reg.k_real:
            raise ValidationError(
                f"conducting: expected {reg.k_real} columns (one per branch), got {k}"
            )
        if reg.n_virtual:  # the Thevenin branches of the roots always conduct
            cond = np.concatenate([cond, np.ones((t_n, reg.n_virtual), bool)], axis=1)
        cond = np.ascontiguousarray(cond)
        buf = _Buffers.empty(t_n, reg.m, reg.k, reg.roots.size)
        if t_n == 0 or reg.m == 0:
            return buf.result(reg, empty=True)
        real = reg.real if reg.real is not None else np.ones(reg.m, bool)
        sweep_batch(
            cond,
            reg.bf,
            reg.bt,
            reg.adj_ptr,
            reg.adj_br,
            reg.adj_oth,
            reg.roots,
            reg.v_root,
            reg.z,
            reg.ratio,
            reg.y_from,
            reg.y_to,
            reg.s_p,
            reg.s_i,
            reg.s_z,
            reg.has_iz,
            reg.is_line,
            reg.line_scale,
            reg.trafo_scale,
            real,
            float(tol),
            int(max_iter),
            bool(warm_from_first),
            *buf.arrays(),
        )
        return buf.result(reg)

    def solve(  # noqa: PLR0913
        self,
        buses: np.ndarray,
        branches: np.ndarray,
        roots: np.ndarray,
        v_root_pu: np.ndarray,
        conducting: np.ndarray,
        tol: float = 1e-9,
        max_iter: int = 30,
    ) -> RadialBatchResult:
        """Power flow of T candidates over a region: :meth:`prepare` then :meth:`run`.

        ``buses``: bus positions of the region (m); ``branches``: branch indices of the region
        (k, both ends in ``buses``); ``roots``: bus positions held at ``v_root_pu``;
        ``conducting``: (T, k) bool, which region branches conduct in each candidate. Returns a
        :class:`RadialBatchResult`.
        """
        return self.run(self.prepare(buses, branches, roots, v_root_pu), conducting, tol, max_iter)


def _trafo_params(grid: Grid, vkv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per transformer (pu on the bus voltages, ``vkv`` kV per bus): short-circuit impedance on
    the LV side, off-nominal ratio with the tap, and magnetising admittance at the HV side."""
    pm = grid.bus.position_map
    tr = grid.transformer
    th, tl = pm(tr["hv_bus"], "bus"), pm(tr["lv_bus"], "bus")
    sn = tr["sn_mva"]
    zk = (
        tr["vk_percent"] / 100 * S_BASE_MVA / sn * (tr["vn_lv_kv"] / np.maximum(vkv[tl], 1e-9)) ** 2
    )
    rk = (
        tr["vkr_percent"]
        / 100
        * S_BASE_MVA
        / sn
        * (tr["vn_lv_kv"] / np.maximum(vkv[tl], 1e-9)) ** 2
    )
    z_t = rk + 1j * np.sqrt(np.maximum(zk**2 - rk**2, 0.0))
    tap = 1 + (tr["tap_pos"] - tr["tap_neutral"]) * tr["tap_step_percent"] / 100
    ratio = (tr["vn_hv_kv"] / vkv[th]) / (tr["vn_lv_kv"] / vkv[tl])
    ratio = np.where(tr["tap_side"] == 0, ratio * tap, ratio / tap)
    g0 = tr["pfe_kw"] / 1e3 / S_BASE_MVA
    y0 = np.maximum(tr["i0_percent"] / 100 * sn / S_BASE_MVA, g0)
    y_m = g0 - 1j * np.sqrt(np.maximum(y0**2 - g0**2, 0.0))
    return z_t, ratio, y_m


def _injections(grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bus, load convention, pu: constant-power, constant-current and constant-impedance
    shares of the loads, with generators, storage and EV chargers as constant power."""
    pm = grid.bus.position_map
    nb = len(grid.bus)
    s_p = np.zeros(nb, complex)
    s_i = np.zeros(nb, complex)
    s_z = np.zeros(nb, complex)
    ld = grid.load
    if len(ld):
        on = ld["in_service"]
        pos = pm(ld["bus"], "bus")
        s = (ld["p_mw"] + 1j * ld["q_mvar"]) * on / S_BASE_MVA
        zs, is_ = ld["z_share"], ld["i_share"]
        np.add.at(s_p, pos, s * (1 - zs - is_))
        np.add.at(s_i, pos, s * is_)
        np.add.at(s_z, pos, s * zs)
    for comp, sign in (("generator", -1.0), ("storage", 1.0), ("ev_charger", 1.0)):
        tb = grid[comp]
        if len(tb):
            q = tb["q_mvar"] if "q_mvar" in tb.fields else np.zeros(len(tb))
            np.add.at(
                s_p,
                pm(tb["bus"], "bus"),
                sign * (tb["p_mw"] + 1j * q) * tb["in_service"] / S_BASE_MVA,
            )
    return s_p, s_i, s_z


@dataclass
class _Buffers:
    """The sweep kernel's output buffers for T candidates over a region of m buses, k branches."""

    vm: np.ndarray
    supplied: np.ndarray
    load: np.ndarray
    losses: np.ndarray
    radial: np.ndarray
    conv: np.ndarray
    iters: np.ndarray
    root_s: np.ndarray
    vmin: np.ndarray
    vmax: np.ndarray

    @classmethod
    def empty(cls, t_n: int, m: int, k: int, n_roots: int) -> _Buffers:
        """Zeroed buffers (vmin/vmax uninitialised: the kernel writes every row)."""
        return cls(
            np.zeros((t_n, m)),
            np.zeros((t_n, m), bool),
            np.zeros((t_n, k)),
            np.zeros(t_n),
            np.zeros(t_n, bool),
            np.zeros(t_n, bool),
            np.zeros(t_n, np.int64),
            np.zeros((t_n, n_roots), complex),
            np.empty(t_n),
            np.empty(t_n),
        )

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The buffers in the kernel's argument order."""
        return (
            self.vm,
            self.supplied,
            self.load,
            self.losses,
            self.radial,
            self.conv,
            self.iters,
            self.root_s,
            self.vmin,
            self.vmax,
        )

    def result(self, reg: RadialRegion, empty: bool = False) -> RadialBatchResult:
        """The :class:`RadialBatchResult` over the region's real buses and branches (``empty``:
        nothing was solved, extremes at their neutral values)."""
        t_n = self.losses.size
        if empty:
            return RadialBatchResult(
                self.vm,
                self.supplied,
                self.load,
                np.full(t_n, np.inf),
                np.full(t_n, -np.inf),
                np.zeros(t_n),
                self.losses,
                self.radial,
                self.conv,
                0,
                self.root_s,
            )
        mr, kr = reg.m_real, reg.k_real
        return RadialBatchResult(
            self.vm[:, :mr],
            self.supplied[:, :mr],
            self.load[:, :kr],
            self.vmin,
            self.vmax,
            self.load.max(axis=1, initial=0.0),
            self.losses,
            self.radial,
            self.conv,
            int(self.iters.max(initial=0)),
            self.root_s * S_BASE_MVA,
        )


def _add_thevenin_roots(reg: RadialRegion, z_root: np.ndarray) -> None:
    """Append one virtual bus and branch per root (in place): the virtual bus becomes the root,
    held at the root's voltage, and feeds the real root bus through ``z_root`` (pu)."""
    nr, m, k = reg.roots.size, reg.m, reg.k
    if z_root.size != nr:
        raise ValidationError(f"z_root_pu: expected {nr} values (one per root), got {z_root.size}")
    vb = m + np.arange(nr)
    bf = np.concatenate([reg.bf, vb])
    bt = np.concatenate([reg.bt, reg.roots])
    ends = np.concatenate([bf, bt])
    order = np.argsort(ends, kind="stable")
    reg.adj_ptr = np.zeros(m + nr + 1, np.int64)
    np.cumsum(np.bincount(ends, minlength=m + nr), out=reg.adj_ptr[1:])
    reg.adj_br = np.concatenate([np.arange(k + nr), np.arange(k + nr)])[order]
    reg.adj_oth = np.concatenate([bt, bf])[order]
    reg.bf, reg.bt, reg.roots = bf, bt, vb.astype(np.int64)
    zero_c = np.zeros(nr, complex)
    reg.z = np.concatenate([reg.z, np.where(np.abs(z_root) > 1e-9, z_root, 1e-9 + 0j)])
    reg.ratio = np.concatenate([reg.ratio, np.ones(nr)])
    reg.y_from = np.concatenate([reg.y_from, zero_c])
    reg.y_to = np.concatenate([reg.y_to, zero_c])
    reg.s_p = np.concatenate([reg.s_p, zero_c])
    reg.s_i = np.concatenate([reg.s_i, zero_c])
    reg.s_z = np.concatenate([reg.s_z, zero_c])
    reg.is_line = np.concatenate([reg.is_line, np.zeros(nr, bool)])
    reg.line_scale = np.concatenate([reg.line_scale, np.zeros(nr)])
    reg.trafo_scale = np.concatenate([reg.trafo_scale, np.zeros(nr)])
    reg.real = np.concatenate([np.ones(m, bool), np.zeros(nr, bool)])
    reg.m, reg.k, reg.n_virtual = m + nr, k + nr, nr
