"""The batch radial power flow: a backward/forward sweep over the feeder tree, numba, all steps at once.

:func:`radial_topology` orders the energised network once for given switch states: buses
joined by closed bus-bus switches become one electrical node, parallel branches with the same
ratio are merged, and the nodes are numbered breadth-first from each source. Weakly meshed
networks (up to :data:`MAX_LOOPS` loops, each closed by a line or a branch without ratio) keep
a spanning tree and one *chord* per loop, solved by the compensation method (the chord replaced
by its current, corrected through the loop impedance matrix). Other meshes (more loops, two
sources in one island, a loop closed by a transformer with ratio, parallel transformers of
different ratio) get ``None`` and a reason: the twin then uses power-grid-model.

:class:`RadialEngine` solves many load states of one topology with
:func:`~gridpilot.twin.radial_kernel.solve_batch`: per step, injections are summed per node,
then iterations of backward current summation and forward voltage update run until the
largest voltage change is below ``tolerance`` (pu). Steps run in parallel (numba ``prange``
over blocks of consecutive steps; each block warm-starts from its previous step).

The model is power-grid-model's, term by term (1 MVA base, nominal bus voltages): lines as
pi sections (series r + jx, half the charging at each end), transformers with the off-nominal
ratio from their rated voltages and tap, the clock phase shift, series impedance from vk/vkr and
magnetising admittance from i0/pfe split over both ends, branches open at one end as shunts,
loads as constant power, current or impedance (by their ``i_share``/``z_share``), generators as
negative loads, storage/EV/flexible loads as loads, and each source behind its short-circuit
impedance.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gridpilot.errors import ValidationError
from gridpilot.model import Grid
from gridpilot.twin.radial_tree import (
    BASE_VA,
    MAX_LOOPS,
    NUM_TOL,
    SQRT3,
    RadialTopology,
    branch_parameters,
    radial_topology,
)

log = logging.getLogger(__name__)

__all__ = [
    "BASE_VA",
    "MAX_LOOPS",
    "NUM_TOL",
    "SQRT3",
    "RadialEngine",
    "RadialSolution",
    "RadialTopology",
    "SolveOptions",
    "branch_parameters",
    "radial_topology",
]


@dataclass
class RadialSolution:
    """Raw results of :meth:`RadialEngine.solve` (one row per step; node order of the topology)."""

    converged: np.ndarray
    iterations: np.ndarray
    vmin_pu: np.ndarray
    vmin_node: np.ndarray
    vmax_pu: np.ndarray
    vmax_node: np.ndarray
    losses_mw: np.ndarray
    source_p_mw: np.ndarray
    max_loading: np.ndarray
    v: np.ndarray | None
    v_abs: np.ndarray | None
    loading: np.ndarray | None
    calc_s: float


@dataclass
class SolveOptions:
    """Options of :meth:`RadialEngine.solve` (see there; tolerance pu)."""

    complex_v: bool = False
    v_abs: bool = False
    loading: bool = False
    tolerance: float = 1e-8
    max_iterations: int = 50
    threads: int | None = None
    extrapolate: bool = False


@dataclass
class _Buffers:
    """The kernel's output arrays for ``t`` steps (optional ones empty when not asked for)."""

    vc: np.ndarray
    va: np.ndarray
    el: np.ndarray
    conv: np.ndarray
    its: np.ndarray
    vmin: np.ndarray
    kmin: np.ndarray
    vmax: np.ndarray
    kmax: np.ndarray
    loss: np.ndarray
    psrc: np.ndarray
    mx: np.ndarray

    @classmethod
    def alloc(cls, t: int, topo: RadialTopology, o: SolveOptions) -> _Buffers:
        """Uninitialised outputs for ``t`` steps on ``topo``."""
        n, ne = topo.n, topo.el_f.size
        return cls(
            vc=np.empty((t if o.complex_v else 0, n if o.complex_v else 0), np.complex128),
            va=np.empty((t if o.v_abs else 0, n if o.v_abs else 0), np.float32),
            el=np.empty((t if o.loading else 0, ne if o.loading else 0), np.float32),
            conv=np.zeros(t, np.bool_),
            its=np.zeros(t, np.int64),
            vmin=np.empty(t),
            kmin=np.empty(t, np.int64),
            vmax=np.empty(t),
            kmax=np.empty(t, np.int64),
            loss=np.empty(t),
            psrc=np.empty(t),
            mx=np.empty(t),
        )

    def kernel_outputs(self) -> tuple[np.ndarray, ...]:
        """The arrays in the order :func:`~gridpilot.twin.radial_kernel.solve_batch` fills them."""
        return (
            self.vc,
            self.va,
            self.el,
            self.conv,
            self.its,
            self.vmin,
            self.kmin,
            self.vmax,
            self.kmax,
            self.loss,
            self.psrc,
            self.mx,
        )

    def result(self, o: SolveOptions, secs: float) -> RadialSolution:
        """The :class:`RadialSolution` of these outputs (``secs`` the kernel's wall time)."""
        return RadialSolution(
            self.conv,
            self.its,
            self.vmin,
            self.kmin,
            self.vmax,
            self.kmax,
            self.loss,
            self.psrc,
            self.mx,
            self.vc if o.complex_v else None,
            self.va if o.v_abs else None,
            self.el if o.loading else None,
            secs,
        )


class RadialEngine:
    """The radial kernel on one grid: topologies cached per switch state, batch solves.

    ``name`` is ``"radial"``. :meth:`topology` returns the ordered tree (or ``None`` and why
    when meshed); :meth:`solve` runs a batch of injections on a topology.
    """

    name = "radial"

    def __init__(self, grid: Grid, threads: int | None = None) -> None:
        self.grid = grid
        self.params = branch_parameters(grid)
        self.threads = threads
        self._topos: dict[bytes, tuple[RadialTopology | None, str]] = {}
        self._rows = self._row_layout()
        # each component's rows are one contiguous range (see _row_layout)
        comp = self._rows["comp"]
        self._span: dict[str, slice] = {}
        for c in ("load", "generator", "storage", "ev_charger", "flex_load"):
            idx = np.flatnonzero(comp == c)
            if idx.size:
                assert idx[-1] - idx[0] + 1 == idx.size
                self._span[c] = slice(int(idx[0]), int(idx[-1]) + 1)
        ld = self._span.get("load")
        self._load_plain = ld is not None and bool(
            np.array_equal(self._rows["pos"][ld], np.arange(len(grid.load)))
            and np.all(self._rows["share"][ld] == 1.0)
        )

    def topology(
        self, switch_closed: np.ndarray | None = None
    ) -> tuple[RadialTopology | None, str]:
        """The radial topology for the switch states (cached), or ``(None, reason)`` if meshed."""
        sc = (
            self.grid.switch["closed"] if switch_closed is None else np.asarray(switch_closed, bool)
        )
        if sc.shape != (len(self.grid.switch),):
            raise ValidationError(
                f"switch_closed: expected {len(self.grid.switch)} values, got shape {sc.shape}"
            )
        key = np.packbits(sc).tobytes()
        hit = self._topos.get(key)
        if hit is None:
            if len(self._topos) > 256:
                self._topos.clear()
            hit = radial_topology(self.grid, sc, self.params)
            if hit[0] is None:
                log.debug("%s: not radial for these switch states (%s)", self.grid.name, hit[1])
            self._topos[key] = hit
        return hit

    def _row_layout(self) -> dict[str, np.ndarray]:
        """Injection rows: load behaviour blocks, generators, storage, EV chargers, flexible loads."""
        g = self.grid
        ld = g.load
        comp, pos, share, typ, sign = [], [], [], [], []
        if len(ld):
            i_sh, z_sh = ld["i_share"], ld["z_share"]
            for ty, sh in enumerate((1.0 - i_sh - z_sh, i_sh, z_sh)):
                p = np.flatnonzero(sh > 0)
                comp += ["load"] * p.size
                pos.append(p)
                share.append(sh[p])
                typ.append(np.full(p.size, ty))
                sign.append(np.ones(p.size))
        for c, sg in (
            ("generator", -1.0),
            ("storage", 1.0),
            ("ev_charger", 1.0),
            ("flex_load", 1.0),
        ):
            n = len(g[c])
            comp += [c] * n
            pos.append(np.arange(n))
            share.append(np.ones(n))
            typ.append(np.zeros(n))
            sign.append(np.full(n, sg))
        cat = np.array(comp, dtype=object)
        return {
            "comp": cat,
            "pos": np.concatenate(pos).astype(np.int64) if pos else np.zeros(0, np.int64),
            "share": np.concatenate(share) if share else np.zeros(0),
            "type": np.concatenate(typ).astype(np.int8) if typ else np.zeros(0, np.int8),
            "sign": np.concatenate(sign) if sign else np.zeros(0),
        }

    def row_nodes(self, topo: RadialTopology) -> np.ndarray:
        """Node of every injection row in ``topo`` (-1: out of service or not energised)."""
        g = self.grid
        r = self._rows
        out = np.full(r["pos"].size, -1, np.int64)
        for c in ("load", "generator", "storage", "ev_charger", "flex_load"):
            m = r["comp"] == c
            if not np.any(m):
                continue
            tb = g[c]
            p = r["pos"][m]
            node = topo.node_of_bus[g.bus.position_map(tb["bus"][p], "bus")]
            out[m] = np.where(tb["in_service"][p], node, -1)
        return out

    def injections(
        self, t: int, inj: Mapping[str, np.ndarray | None]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(T, rows) active and reactive power of every injection row, MW and Mvar.

        ``inj`` holds (T, n) or (n,) arrays by key (``load_p_mw`` ...); missing ones take the
        grid's values (flexible loads 0, as in the power-grid-model adapter).
        """
        g = self.grid
        r = self._rows
        m = r["pos"].size
        p_out = np.empty((t, m))
        q_out = np.zeros((t, m))

        def arr(key: str, comp_name: str, field: str | None) -> np.ndarray:
            n = len(g[comp_name])
            v = inj.get(key)
            if v is None:
                base = g[comp_name][field] if field is not None else np.zeros(n)
                return np.broadcast_to(base, (t, n))
            a = np.asarray(v, dtype=np.float64)
            if a.ndim == 1:
                a = a[None, :]
            if a.shape[1] != n or a.shape[0] not in (1, t):
                raise ValidationError(
                    f"{key}: expected shape ({n},) or ({t}, {n}), got {np.shape(v)}"
                )
            if not np.all(np.isfinite(a)):
                raise ValidationError(f"{key}: contains NaN or infinite values")
            return np.broadcast_to(a, (t, n))

        sl = self._span.get("load")
        if sl is not None:
            lp, lq = arr("load_p_mw", "load", "p_mw"), arr("load_q_mvar", "load", "q_mvar")
            if self._load_plain:  # one constant-power row per load, in table order
                p_out[:, sl] = lp
                q_out[:, sl] = lq
            else:
                pos, sh = r["pos"][sl], r["share"][sl]
                np.multiply(np.take(lp, pos, axis=1), sh, out=p_out[:, sl])
                np.multiply(np.take(lq, pos, axis=1), sh, out=q_out[:, sl])
        for c, pk, qk, pf, qf in (
            ("generator", "gen_p_mw", "gen_q_mvar", "p_mw", "q_mvar"),
            ("storage", "storage_p_mw", None, "p_mw", "q_mvar"),
            ("ev_charger", "ev_p_mw", None, "p_mw", None),
            ("flex_load", "flex_p_mw", None, None, None),
        ):
            s = self._span.get(c)
            if s is None:
                continue
            p_out[:, s] = arr(pk, c, pf)
            if qk is not None:
                q_out[:, s] = arr(qk, c, qf)
            elif qf is not None:
                q_out[:, s] = g[c][qf]
        return p_out, q_out

    def solve(  # noqa: PLR0913
        self,
        topo: RadialTopology,
        p_mw: np.ndarray,
        q_mvar: np.ndarray,
        *,
        complex_v: bool = False,
        v_abs: bool = False,
        loading: bool = False,
        tolerance: float = 1e-8,
        max_iterations: int = 50,
        threads: int | None = None,
        extrapolate: bool = False,
    ) -> RadialSolution:
        """Solve every row of ``p_mw``/``q_mvar`` (from :meth:`injections`) on ``topo``.

        Optional outputs: complex node voltages (``complex_v``), float32 node voltage magnitudes
        (``v_abs``), float32 element loading as a fraction (``loading``). ``threads``: numba
        threads for this call (default: the engine's, else all). A step stops when no node
        voltage changed by more than ``tolerance`` pu (power-grid-model's rule); each lane starts
        from its previous step (``extrapolate``: from the straight line through the last two).
        Returns a
        :class:`RadialSolution`; non-converged steps have ``converged`` False and NaN values.
        """
        opts = SolveOptions(
            complex_v, v_abs, loading, tolerance, max_iterations, threads, extrapolate
        )
        return self.solve_with(topo, p_mw, q_mvar, opts)

    def solve_with(
        self, topo: RadialTopology, p_mw: np.ndarray, q_mvar: np.ndarray, opts: SolveOptions
    ) -> RadialSolution:
        """:meth:`solve` with its options as one :class:`SolveOptions`; returns the :class:`RadialSolution`."""
        buf = _Buffers.alloc(p_mw.shape[0], topo, opts)
        t0 = time.perf_counter()
        if topo.n:
            self._run_kernel(topo, (p_mw, q_mvar), opts, buf)
        else:  # nothing energised
            buf.conv[:] = True
            buf.vmin[:] = buf.vmax[:] = np.nan
            buf.kmin[:] = buf.kmax[:] = -1
            buf.loss[:] = buf.psrc[:] = buf.mx[:] = 0.0
        return buf.result(opts, time.perf_counter() - t0)

    def _run_kernel(
        self,
        topo: RadialTopology,
        pq: tuple[np.ndarray, np.ndarray],
        opts: SolveOptions,
        buf: _Buffers,
    ) -> None:
        """Run :func:`~gridpilot.twin.radial_kernel.solve_batch` on ``opts.threads`` numba threads into ``buf``."""
        import numba

        from gridpilot.twin.radial_kernel import solve_batch

        t = pq[0].shape[0]
        nodes = self.row_nodes(topo)
        typ = self._rows["type"]
        has_iz = bool(np.any((typ > 0) & (nodes >= 0)))
        before = numba.get_num_threads()
        n_max = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # set at numba import
        threads = max(1, min(opts.threads or self.threads or n_max, n_max))
        n_blocks = threads * 4 if t >= 1024 * threads else threads
        numba.set_num_threads(threads)
        try:
            solve_batch(
                np.ascontiguousarray(pq[0], np.float64),
                np.ascontiguousarray(pq[1], np.float64),
                nodes,
                typ,
                self._rows["sign"],
                has_iz,
                topo.parent,
                topo.kp,
                topo.kc,
                topo.z,
                topo.yshp,
                topo.yshc,
                topo.y_node,
                topo.u_src,
                topo.z_src,
                topo.el_f,
                topo.el_t,
                topo.yff,
                topo.yft,
                topo.ytf,
                topo.ytt,
                topo.el_sf,
                topo.el_st,
                topo.el_trafo,
                float(opts.tolerance),
                int(opts.max_iterations),
                int(n_blocks),
                bool(opts.extrapolate),
                topo.ch_a,
                topo.ch_b,
                topo.ch_z,
                topo.ch_y,
                *buf.kernel_outputs(),
            )
        finally:
            numba.set_num_threads(before)

    def branch_flows(
        self, topo: RadialTopology, v: np.ndarray, p_mw: np.ndarray, q_mvar: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Element flows and source powers of one solved step (``v`` complex per node).

        Returns per element (lines then transformers) ``p_from_mw``, ``q_from_mvar``,
        ``p_to_mw``, ``i_ka`` (larger end), ``loading`` (fraction), and per source
        ``source_p_mw``/``source_q_mvar``.
        """
        vf = (
            np.where(topo.el_f >= 0, v[np.maximum(topo.el_f, 0)], 0.0)
            if v.size
            else np.zeros(topo.el_f.size)
        )
        vt = (
            np.where(topo.el_t >= 0, v[np.maximum(topo.el_t, 0)], 0.0)
            if v.size
            else np.zeros(topo.el_t.size)
        )
        i_f = topo.yff * vf + topo.yft * vt
        i_t = topo.ytf * vf + topo.ytt * vt
        s_f = vf * np.conj(i_f)
        s_t = vt * np.conj(i_t)
        amp_f, amp_t = np.abs(i_f) * topo.base_i_f, np.abs(i_t) * topo.base_i_t
        ld = np.where(
            topo.el_trafo,
            np.maximum(np.abs(s_f) * topo.el_sf, np.abs(s_t) * topo.el_st),
            np.maximum(np.abs(i_f) * topo.el_sf, np.abs(i_t) * topo.el_st),
        )
        # current drawn from each node: branches, dangling shunts (in yff/ytt) and injections
        drawn = np.zeros(topo.n, np.complex128)
        np.add.at(drawn, topo.el_f[topo.el_f >= 0], i_f[topo.el_f >= 0])
        np.add.at(drawn, topo.el_t[topo.el_t >= 0], i_t[topo.el_t >= 0])
        nodes = self.row_nodes(topo)
        ok = nodes >= 0
        s = self._rows["sign"][ok] * (p_mw[ok] + 1j * q_mvar[ok])
        vn = v[nodes[ok]]
        typ = self._rows["type"][ok]
        s_act = s * np.where(typ == 0, 1.0, np.where(typ == 1, np.abs(vn), np.abs(vn) ** 2))
        np.add.at(drawn, nodes[ok], np.conj(s_act / vn))
        ns = len(self.grid.source)
        sp = np.zeros(ns)
        sq = np.zeros(ns)
        roots = np.flatnonzero(topo.root_source >= 0)
        s_src = v[roots] * np.conj(drawn[roots])
        sp[topo.root_source[roots]] = s_src.real
        sq[topo.root_source[roots]] = s_src.imag
        return {
            "p_from_mw": s_f.real,
            "q_from_mvar": s_f.imag,
            "p_to_mw": s_t.real,
            "i_ka": np.maximum(amp_f, amp_t) / 1e3,
            "loading": ld,
            "source_p_mw": sp,
            "source_q_mvar": sq,
        }
