"""Pack a twin into the compiled QSTS step loop (:mod:`.faststep`) and drive it in chunks.

The Python runner of :mod:`.qsts` stays the reference (and the path for twins whose
``solve`` is overridden other than by :class:`~.inverters.InverterTwin`, whose control
iterations run in the loop too, see :mod:`.fastinv`); this one runs the same rules step by
step in compiled code, with load powers built chunk by chunk so that memory
does not grow with the number of steps.
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from gridpilot.model.threephase import capacitor_yprim, transformer_yprim
from gridpilot.twin.unbalanced.branchcur import branch_groups
from gridpilot.twin.unbalanced.controls import ldc_active, watches_reverse
from gridpilot.twin.unbalanced.fastctl import QMAX, Caps, Regs, Stamps, restamp_all
from gridpilot.twin.unbalanced.fastinv import pack_inverters
from gridpilot.twin.unbalanced.faststep import LoadArr, Run, StatArr, make_work
from gridpilot.twin.unbalanced.loads import load_arr
from gridpilot.twin.unbalanced.predict import make_pred
from gridpilot.twin.unbalanced.qsts_stats import Accumulator
from gridpilot.twin.unbalanced.response import LoadOp
from gridpilot.twin.unbalanced.restart import make_restart
from gridpilot.twin.unbalanced.schur import SchurLU, build_schur
from gridpilot.twin.unbalanced.schur_update import schur_exact

if TYPE_CHECKING:
    from gridpilot.twin.unbalanced.twin import UnbalancedTwin

log = logging.getLogger(__name__)

_CAP_TYPES = {"kvar": 0, "voltage": 1, "current": 2, "pf": 3, "time": 4}


def unsupported(twin: UnbalancedTwin) -> str | None:
    """Why the compiled loop cannot run this twin (None when it can)."""
    from gridpilot.twin.unbalanced.inverters import InverterTwin
    from gridpilot.twin.unbalanced.twin import UnbalancedTwin

    if type(twin).solve not in (UnbalancedTwin.solve, InverterTwin.solve):
        return f"{type(twin).__name__} overrides solve()"
    caps = {c.name.lower(): c for c in twin.grid.capacitors}
    for cs in twin.caps:
        if cs.cap not in twin.net.cap_stamps or cs.cap not in caps:
            return f"capcontrol {cs.ctl.name} switches a disabled or unknown capacitor"
    return None


def _pad(
    arrs: list[np.ndarray], shape: tuple[int, ...], dtype: type, fill: float = 0
) -> np.ndarray:
    """Stack arrays of up to ``shape`` into one (len(arrs), *shape) array, padded."""
    out: np.ndarray = np.full((len(arrs), *shape), fill, dtype)
    for i, a in enumerate(arrs):
        a = np.asarray(a)
        sl: tuple[int | slice, ...] = (i, *(slice(0, d) for d in a.shape))
        out[sl] = a
    return out


def _xf_parts(twin: UnbalancedTwin, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tap-free Yprim, anti-float part and conductor windings of a regulating transformer;
    checked against the model's own Yprim at the present taps."""
    t = twin.grid.transformers[twin.net.xf_index[name]]
    t1 = copy.deepcopy(t)
    for w in t1.windings:
        w.tap = 1.0
    full = transformer_yprim(t1)
    t1.ppm_antifloat = 0.0
    core = transformer_yprim(t1)
    nc = t.phases + 1
    wind = np.repeat(np.arange(len(t.windings)), nc)
    taps = np.array([w.tap for w in t.windings])
    inv = 1.0 / taps[wind]
    y = core * np.outer(inv, inv) + (full - core)
    if not np.allclose(y, twin.net.xf_stamps[name].y, rtol=1e-12, atol=1e-12 * np.abs(y).max()):
        raise ValueError(f"transformer {name}: Yprim does not scale with its taps")
    return core, full - core, wind


def _stamps(twin: UnbalancedTwin, f: SchurLU) -> tuple[Stamps, dict[str, int]]:
    net = twin.net
    local = {int(n): i for i, n in enumerate(f.kn)}
    names, kinds, cores, afs, winds, taps, kvars, states = ([] for _ in range(8))
    for name in net.xf_stamps:
        core, af, wind = _xf_parts(twin, name)
        t = twin.grid.transformers[net.xf_index[name]]
        names.append(("xf", name))
        kinds.append(0)
        cores.append(core)
        afs.append(af)
        winds.append(wind)
        taps.append(np.array([w.tap for w in t.windings]))
        kvars.append(np.zeros(1))
        states.append(np.zeros(1, np.int64))
    caps = {c.name.lower(): c for c in twin.grid.capacitors}
    for name, st in net.cap_stamps.items():
        c = caps[name]
        c1 = copy.deepcopy(c)
        c1.kvar, c1.states = [1.0], [1]
        names.append(("cap", name))
        kinds.append(1)
        cores.append(capacitor_yprim(c1))
        afs.append(np.zeros_like(st.y))
        winds.append(np.zeros(len(st.idx), np.int64))
        taps.append(np.ones(1))
        kvars.append(np.asarray(c.kvar, float)[: len(c.states)])
        states.append(np.asarray(c.states, np.int64))
    every = [*net.xf_stamps.values(), *net.cap_stamps.values()]  # the loops' order
    nodes = [np.asarray(st.idx, np.int64) for st in every]
    locs = [np.array([local.get(int(i), -1) for i in x], np.int64) for x in nodes]
    nc = max([len(x) for x in locs] + [1])
    nw = max([len(x) for x in taps] + [1])
    nst = max([len(x) for x in states] + [1])
    y = _pad([st.y for st in every], (nc, nc), complex)
    stamps = Stamps(
        np.array(kinds, np.int64), np.array([len(x) for x in locs], np.int64),
        _pad(locs, (nc,), np.int64, -1), y, y.copy(), _pad(cores, (nc, nc), complex),
        _pad(afs, (nc, nc), complex), _pad(winds, (nc,), np.int64), _pad(taps, (nw,), float, 1.0),
        _pad(kvars, (nst,), float), _pad(states, (nst,), np.int64),
        np.array([len(x) for x in states], np.int64), y.copy(),
        _pad(nodes, (nc,), np.int64, -1),
    )  # fmt: skip
    return stamps, {f"{k}:{n}": i for i, (k, n) in enumerate(names)}


def _regs(twin: UnbalancedTwin, where: dict[str, int], nc: int) -> Regs:
    rows, idx, meta, his, los, conds = [], [], [], [], [], []
    for s in twin.regs:
        c = s.ctl
        t = twin.grid.transformer(s.xf)
        w = t.windings[c.tap_winding - 1]
        rows.append([s.base_v, c.vreg_v, c.band_v, c.ptratio, c.r_v, c.x_v, c.ctprim_a,
                     c.delay_s, c.tapdelay_s, float(c.tap_winding != c.winding), w.tap_step,
                     w.min_tap, w.max_tap, s.vratio, float(s.ldc), float(c.max_tap_change),
                     c.rev_vreg_v, c.rev_band_v, c.rev_r_v, c.rev_x_v,
                     c.rev_threshold_kw * 1e3, c.rev_delay_s, float(watches_reverse(s)),
                     (c.winding - 1) * (s.nph + 1), s.nph + 1, float(c.rev_neutral),
                     float(c.cogen), float(c.inverse_time), c.ldc_z_v, c.rev_ldc_z_v,
                     c.vlimit_v, float(ldc_active(c)), s.loc_hi, s.loc_lo])  # fmt: skip
        idx.append(twin.net.xf_stamps[s.xf].idx)
        his.append(s.his)
        los.append(s.los)
        conds.append(s.conds)
        meta.append((where[f"xf:{s.xf}"], c.tap_winding - 1, len(s.his), s.select))
    r = len(rows)
    m = np.array(meta, np.int64).reshape(r, 4)
    p = max([len(x) for x in his] + [1])
    return Regs(
        m[:, 0].copy(), m[:, 1].copy(), _pad(his, (p,), np.int64, -1),
        _pad(los, (p,), np.int64, -1), _pad(idx, (nc,), np.int64, -1),
        _pad(conds, (p,), np.int64), np.array(rows, float).reshape(r, 34),
        np.zeros(r, np.int64), np.zeros(r, np.int64), np.full(r, np.nan),
        np.zeros((r, QMAX)), np.zeros(r, np.int64), np.zeros(r, np.int64), np.zeros(r),
        np.zeros((r, QMAX)), m[:, 2].copy(), m[:, 3].copy(), np.zeros(r, np.int64),
        np.full(r, np.nan), np.zeros(r), np.zeros(r),
    )  # fmt: skip


def _caps(twin: UnbalancedTwin, where: dict[str, int]) -> Caps:
    rows, idx, ymon, trows, meta, vbus = [], [], [], [], [], []
    for s, y in zip(twin.caps, twin._cap_y, strict=True):
        vbus.append(np.zeros(0, np.int64) if s.vbus is None else s.vbus[: len(s.rows)])
        c = s.ctl
        rows.append([c.on_setting, c.off_setting, c.vmin_v, c.vmax_v, float(c.volt_override),
                     c.delay_s, c.delay_off_s, c.dead_time_s, c.ptratio, c.ctratio,
                     s.kvar_open, s.kvar_more])  # fmt: skip
        idx.append(s.idx)
        ymon.append(y[s.rows])
        trows.append(np.asarray(s.rows, np.int64))
        meta.append((where[f"cap:{s.cap}"], _CAP_TYPES[c.type], len(s.rows), s.v_row, s.i_row,
                     s.v_mode, s.i_mode, s.v_next, s.n_ct))  # fmt: skip
    n = len(rows)
    k = max([len(x) for x in idx] + [1])
    nr = max([len(x) for x in trows] + [1])
    m = np.array(meta, np.int64).reshape(n, 9)
    dead = np.array([s.ctl.dead_time_s for s in twin.caps], float)
    return Caps(
        m[:, 0].copy(), m[:, 1].copy(), np.array(rows, float).reshape(n, 12),
        _pad(idx, (k,), np.int64, -1), _pad(ymon, (nr, k), complex), _pad(trows, (nr,), np.int64),
        m[:, 2].copy(), m[:, 3].copy(), m[:, 4].copy(), np.zeros(n, np.int64), np.zeros(n),
        np.zeros(n, np.int64), -dead, np.zeros(n, np.int64), m[:, 5].copy(), m[:, 6].copy(),
        m[:, 7].copy(), m[:, 8].copy(), _pad(vbus, (max([len(x) for x in vbus] + [1]),),
        np.int64, -1), np.array([len(x) for x in vbus], np.int64),
    )  # fmt: skip


def stat_arrays(twin: UnbalancedTwin, acc: Accumulator, rating: np.ndarray) -> StatArr:
    """The statistics arrays of ``acc`` (updated in place by the loop) and their inputs."""
    net = twin.net
    br = net.branch_rows
    rows = branch_groups(np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0, complex))
    if br is not None:
        br = br.copy()
        br.sum_duplicates()  # canonical: sorted columns, one entry each (lanes.layout)
        rows = branch_groups(br.indptr, br.indices, br.data)
    st = net.src_stamp
    n1 = len(st.idx) // 2
    return StatArr(
        net.vbase_v.astype(float), acc.vmin, acc.vmax, acc.outside, acc.tri.astype(np.int64),
        acc.vuf_max, acc.vuf_above, rows, rating, acc.overload, acc.max_loading,
        st.idx[:n1].astype(np.int64), np.ascontiguousarray(st.y[:n1, :n1], complex),
        net.i_source.astype(complex), 1.0 / net.vbase_v.astype(float) ** 2,
    )  # fmt: skip


class Engine(NamedTuple):
    """The parts of a packed twin that do not change between runs (built once per twin)."""

    f: SchurLU
    st: Stamps
    where: dict[str, int]
    ld: LoadArr
    frozen: np.ndarray  # stamps of the capacitors no control switches: factorised as they are
    frozen_state: np.ndarray  # their step states at the factorisation


def engine(twin: UnbalancedTwin) -> Engine:
    """The twin's packed engine (factorised on first use), its stamps set to the twin's
    present taps and capacitor states.

    Only the capacitors a CapControl switches are among the Schur nodes (ieee123: K 24 →
    18; each solve and each update works on K × K); the others are factorised at their
    steps, and a later change of those steps (``set_cap``) factorises again."""
    eng = twin._compiled
    if not isinstance(eng, Engine):
        controlled = {cs.cap for cs in twin.caps}
        f = build_schur(twin.net, twin.y_loads, controlled)
        st, where = _stamps(twin, f)
        ld = load_arr(twin.loads, twin.yeq_b, twin.net.n)
        frozen = np.array([i for k, i in where.items()
                           if k.startswith("cap:") and k[4:] not in controlled], np.int64)  # fmt: skip
        eng = twin._compiled = Engine(f, st, where, ld, frozen, st.state[frozen].copy())
        twin.factorisations += 1
    net = twin.net
    for name, t in ((n, net.grid.transformers[net.xf_index[n]]) for n in net.xf_stamps):
        eng.st.taps[eng.where[f"xf:{name}"], : len(t.windings)] = [w.tap for w in t.windings]
    for c in twin.grid.capacitors:
        e = eng.where.get(f"cap:{c.name.lower()}")
        if e is not None:
            eng.st.state[e, : len(c.states)] = c.states
    if not np.array_equal(eng.st.state[eng.frozen], eng.frozen_state):
        log.info("%s: an uncontrolled capacitor changed: factorising again", twin.grid.name)
        twin._compiled = None
        return engine(twin)
    restamp_all(eng.st)
    schur_exact(eng.st, eng.f)
    return eng


def pack(
    twin: UnbalancedTwin, acc: Accumulator, rating: np.ndarray, opt: np.ndarray,
    s_op: np.ndarray | None = None,
) -> Run:  # fmt: skip
    """Everything the compiled loop needs, from the twin's present state (fresh control
    timers and statistics; the factorisation is the twin's, built once). ``s_op``: load
    powers (VA per branch) at which the re-solve response is linearised (None: nominal)."""
    eng = engine(twin)
    n, m = twin.net.n, twin.loads.m
    w = make_work(n, m, opt)
    rg, cp = _regs(twin, eng.where, eng.st.y.shape[1]), _caps(twin, eng.where)
    sa = stat_arrays(twin, acc, rating)
    op = LoadOp(twin.net, twin.loads, twin.inc, eng.ld, sa,
                twin.loads.s_va if s_op is None else s_op)  # fmt: skip
    rs = make_restart(eng.f, eng.st, rg, cp, twin.net.i_source.astype(complex), opt[4] != 0.0, op)
    return Run(eng.f, eng.ld, sa, eng.st, rg, cp, w,
               pack_inverters(twin), make_pred(int(opt[3]), n, m), rs)  # fmt: skip


def write_back(twin: UnbalancedTwin, run: Run) -> None:
    """Leave the twin's taps and capacitor states where the run left them."""
    for i, s in enumerate(twin.regs):
        twin.set_tap(s.ctl.name, float(run.st.taps[run.rg.stamp[i], run.rg.wind[i]]))
    cap_names = list(twin.net.cap_stamps)
    for j, e in enumerate(np.flatnonzero(run.st.kind == 1)):
        n = int(run.st.nsteps[e])
        twin.set_cap(cap_names[j], [int(x) for x in run.st.state[e, :n]])
