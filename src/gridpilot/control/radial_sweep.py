"""The numba kernel of :mod:`gridpilot.control.radialpf`: for each candidate set of conducting
branches, build its radial tree breadth-first from the roots and run the backward/forward
sweep until that candidate converges (outputs written into the caller's buffers)."""

from __future__ import annotations

import numpy as np
from numba import njit


# long: numba, one fused loop per candidate, no dataclass args; splitting the same sweep cost 5-18 % in twin/radial_kernel._sweep
@njit(cache=True, nogil=True, error_model="numpy")
def sweep_batch(  # noqa: C901, PLR0912, PLR0913, PLR0915
    # kept whole (196 lines, 33 arrays): one fused numba loop per candidate, numba takes no
    # dataclass, and a split into jitted helpers has not been benchmarked (issue #15)
    cond: np.ndarray,
    bf: np.ndarray,
    bt: np.ndarray,
    adj_ptr: np.ndarray,
    adj_br: np.ndarray,
    adj_oth: np.ndarray,
    roots: np.ndarray,
    v_root: np.ndarray,
    z: np.ndarray,
    ratio: np.ndarray,
    y_from: np.ndarray,
    y_to: np.ndarray,
    s_p: np.ndarray,
    s_i: np.ndarray,
    s_z: np.ndarray,
    has_iz: bool,
    is_line: np.ndarray,
    line_scale: np.ndarray,
    trafo_scale: np.ndarray,
    real: np.ndarray,
    tol: float,
    max_iter: int,
    warm: bool,
    vm_out: np.ndarray,
    sup_out: np.ndarray,
    load_out: np.ndarray,
    loss_out: np.ndarray,
    radial_out: np.ndarray,
    conv_out: np.ndarray,
    iter_out: np.ndarray,
    root_s_out: np.ndarray,
    vmin_out: np.ndarray,
    vmax_out: np.ndarray,
) -> None:
    """Per candidate: breadth-first supply tree from the roots, then the backward/forward sweep.

    Each tree edge is an ideal ratio ``tn`` (parent voltage / child-side voltage) followed by
    the series impedance on the child side; node currents (constant P, I and Z shares of the
    load plus the shunts of conducting branches) are summed backward, referred through the
    ratios, and voltages updated forward. Roots are held at ``v_root``; their own injections
    are not part of the sweep (they are the upstream grid's). Only ``real`` buses count in the
    voltage extremes, and only branches fed from real buses in the losses (virtual Thevenin roots
    and their branches do not).
    """
    t_n, k = cond.shape
    m = s_p.size
    nr = roots.size
    order = np.empty(m, np.int64)
    par = np.empty(m, np.int64)
    pbr = np.empty(m, np.int64)
    tn = np.ones(m)
    vis = np.zeros(m, np.bool_)
    v = np.zeros(m, np.complex128)
    ib = np.zeros(m, np.complex128)
    ysh = np.zeros(m, np.complex128)
    sp_conj = np.conj(s_p)
    tol2 = tol * tol
    ok2 = max(tol, 1e-6) ** 2
    v_warm = np.zeros(m, np.complex128)  # first candidate's voltages (0 where it supplies nothing)
    pos = np.zeros(m, np.int64)
    po = np.zeros(m, np.int64)
    itn = np.ones(m)
    zo = np.zeros(m, np.complex128)
    so = np.zeros(m, np.complex128)
    yo = np.zeros(m, np.complex128)
    sio = np.zeros(m, np.complex128)
    szo = np.zeros(m, np.complex128)
    vo = np.zeros(m, np.complex128)
    ibo = np.zeros(m, np.complex128)
    for t in range(t_n):
        vis[:] = False
        n_ord = 0
        for j in range(nr):
            r = roots[j]
            if vis[r]:
                continue
            vis[r] = True
            order[n_ord] = r
            par[r] = -1
            pbr[r] = -1
            tn[r] = 1.0
            v[r] = v_root[j]
            n_ord += 1
        n_root = n_ord
        head = 0
        while head < n_ord:
            x = order[head]
            head += 1
            for e in range(adj_ptr[x], adj_ptr[x + 1]):
                br = adj_br[e]
                if not cond[t, br]:
                    continue
                y = adj_oth[e]
                if vis[y]:
                    continue
                vis[y] = True
                par[y] = x
                pbr[y] = br
                tn[y] = ratio[br] if bf[br] == x else 1.0 / ratio[br]
                v[y] = v_warm[y] if warm and t > 0 and v_warm[y] != 0 else v[x] / tn[y]
                order[n_ord] = y
                n_ord += 1
        # radial: exactly one conducting branch per supplied non-root bus
        live = 0
        for br in range(k):
            ysh[bf[br]] = 0.0
            ysh[bt[br]] = 0.0
        for br in range(k):
            if cond[t, br] and vis[bf[br]]:
                live += 1
                ysh[bf[br]] += y_from[br]
                ysh[bt[br]] += y_to[br]
        radial_out[t] = live == n_ord - n_root
        # the sweep runs on copies in breadth-first order: contiguous, parents before children
        for idx in range(n_ord):
            pos[order[idx]] = idx
        for idx in range(n_ord):
            c = order[idx]
            vo[idx] = v[c]
            so[idx] = sp_conj[c]
            yo[idx] = ysh[c]
            if has_iz:
                sio[idx] = np.conj(s_i[c])
                szo[idx] = np.conj(s_z[c])
            if idx >= n_root:
                po[idx] = pos[par[c]]
                itn[idx] = 1.0 / tn[c]
                zo[idx] = z[pbr[c]]
        # sweep (squared voltage changes: no square roots in the loop)
        d2 = np.inf
        it = 0
        while it < max_iter:
            it += 1
            for idx in range(n_ord):
                ibo[idx] = 0.0
            for idx in range(n_ord - 1, n_root - 1, -1):
                vc = vo[idx]
                a2 = vc.real * vc.real + vc.imag * vc.imag
                cur = so[idx] * vc / a2 + yo[idx] * vc
                if has_iz:
                    cur += sio[idx] * vc / np.sqrt(a2) + szo[idx] * vc
                ibo[idx] += cur
                ibo[po[idx]] += ibo[idx] * itn[idx]
            d2 = 0.0
            for idx in range(n_root, n_ord):
                nv = vo[po[idx]] * itn[idx] - zo[idx] * ibo[idx]
                dv = nv - vo[idx]
                e = dv.real * dv.real + dv.imag * dv.imag
                if not e <= d2:  # also catches NaN
                    d2 = e
                vo[idx] = nv
            if d2 < tol2 or d2 != d2:  # converged, or NaN (diverged)
                break
        for idx in range(n_ord):
            c = order[idx]
            v[c] = vo[idx]
            ib[c] = ibo[idx]
        iter_out[t] = it
        if warm and t == 0 and d2 < ok2:
            for idx in range(n_ord):
                v_warm[order[idx]] = v[order[idx]]
        conv_out[t] = d2 < ok2
        vlo = np.inf
        vhi = -np.inf
        loss = 0.0
        for idx in range(n_ord):
            c = order[idx]
            a = abs(v[c])
            vm_out[t, c] = a
            sup_out[t, c] = True
            if real[c]:
                vlo = min(vlo, a) if a == a else a
                vhi = max(vhi, a) if a == a else a
            if idx < n_root:
                continue
            br = pbr[c]
            cur = abs(ib[c])
            if is_line[br]:
                pct = cur * line_scale[br] * 100.0
            else:  # transformers: larger apparent power of the two sides (S/Sn, as the twin)
                s_lv = v[c] * np.conj(ib[c])
                s_hv = s_lv + z[br] * cur * cur
                if bf[br] == par[c]:  # fed from its 'from' (HV) side: add the magnetising power
                    vp = abs(v[par[c]])
                    s_hv += vp * vp * np.conj(y_from[br])
                pct = max(abs(s_lv), abs(s_hv)) * trafo_scale[br] * 100.0
            load_out[t, br] = pct if np.isfinite(pct) else 0.0
            if real[par[c]]:
                loss += cur * cur * z[br].real * 1e3
        loss_out[t] = loss
        vmin_out[t] = vlo
        vmax_out[t] = vhi
        for j in range(nr):
            r = roots[j]
            root_s_out[t, j] = v_root[j] * np.conj(ib[r])


def warm_radial_kernel() -> None:
    """Compile (or load from numba's cache) the sweep kernel on a two-bus region."""
    c = np.ones((1, 1), bool)
    i1 = np.zeros(1, np.int64)
    z1 = np.full(1, 0.01 + 0.01j)
    s1 = np.array([0.0j, 0.01 + 0.0j])
    out = [
        np.zeros((1, 2)),
        np.zeros((1, 2), bool),
        np.zeros((1, 1)),
        np.zeros(1),
        np.zeros(1, bool),
        np.zeros(1, bool),
        np.zeros(1, np.int64),
        np.zeros((1, 1), complex),
        np.zeros(1),
        np.zeros(1),
    ]
    sweep_batch(
        c,
        i1,
        i1 + 1,
        np.array([0, 1, 2]),
        np.array([0, 0]),
        np.array([1, 0]),
        i1,
        np.ones(1, complex),
        z1,
        np.ones(1),
        np.zeros(1, complex),
        np.zeros(1, complex),
        s1,
        s1 * 0,
        s1 * 0,
        False,
        np.ones(1, bool),
        np.ones(1),
        np.zeros(1),
        np.ones(2, bool),
        1e-9,
        5,
        False,
        *out,
    )
