"""The numba kernel of the batch radial power flow (backward/forward sweep, parallel over steps).

Everything is per unit on a 1 MVA base and each node's nominal voltage (the same base as
power-grid-model). Nodes are numbered in breadth-first order from their source, so a node's
parent always has a smaller number: the backward sweep runs ``n-1 .. 0`` and the forward
sweep ``0 .. n-1`` over contiguous arrays that stay in the core's cache for one step.

Each tree edge (parent ``p`` to child ``c``) is an ideal transformer of ratio ``kp`` at the
parent side (``V_ip = V_p / kp``), a series impedance ``z``, shunts ``yshp``/``yshc`` at the
inner ends, and an ideal ratio ``kc`` at the child side (``V_c = kc * V_ic``); lines have
``kp = kc = 1``. Roots are fed by their source: ``u_src`` behind ``z_src``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, fastmath=False, nogil=True)
def _flat_start(v: np.ndarray, parent: np.ndarray, inv_kp: np.ndarray, kc: np.ndarray,
                u_src: np.ndarray) -> None:
    n = v.size
    for i in range(n):
        p = parent[i]
        if p < 0:
            v[i] = u_src[i]
        else:
            v[i] = kc[i] * (v[p] * inv_kp[i])


@njit(cache=True, fastmath=False, nogil=True)
def _backward(v: np.ndarray, j: np.ndarray, i_s: np.ndarray, sp: np.ndarray, si: np.ndarray, sz: np.ndarray,
              has_iz: bool, y_node: np.ndarray, parent: np.ndarray, inv_kp: np.ndarray, inv_ckp: np.ndarray,
              inv_kc: np.ndarray, ckc: np.ndarray, yshp: np.ndarray, yshc: np.ndarray) -> None:
    n = v.size
    for i in range(n):
        vi = v[i]
        a2 = vi.real * vi.real + vi.imag * vi.imag
        # constant power: I = conj(S / V) = conj(S) * V / |V|^2
        cur = np.conj(sp[i]) * vi / a2 + y_node[i] * vi
        if has_iz:
            cur += np.conj(si[i]) * vi / np.sqrt(a2) + np.conj(sz[i]) * vi
        j[i] = cur
    for i in range(n - 1, -1, -1):
        p = parent[i]
        if p < 0:
            continue
        v_ic = v[i] * inv_kc[i]
        s = j[i] * ckc[i] + yshc[i] * v_ic
        i_s[i] = s
        v_ip = v[p] * inv_kp[i]
        j[p] += (s + yshp[i] * v_ip) * inv_ckp[i]


@njit(cache=True, fastmath=False, nogil=True)
def _forward(v: np.ndarray, j: np.ndarray, i_s: np.ndarray, parent: np.ndarray, inv_kp: np.ndarray,
             kc: np.ndarray, z: np.ndarray, u_src: np.ndarray, z_src: np.ndarray) -> float:
    n = v.size
    dmax = 0.0
    for i in range(n):
        p = parent[i]
        vn = u_src[i] - z_src[i] * j[i] if p < 0 else kc[i] * (v[p] * inv_kp[i] - z[i] * i_s[i])
        d = vn - v[i]
        d2 = d.real * d.real + d.imag * d.imag
        if not d2 <= dmax:  # also catches NaN
            dmax = d2 if d2 == d2 else np.inf
        v[i] = vn
    return dmax


@njit(parallel=True, cache=True, fastmath=False)
def solve_batch(p_mw: np.ndarray, q_mvar: np.ndarray, row_node: np.ndarray, row_type: np.ndarray,
                row_sign: np.ndarray, has_iz: bool,
                parent: np.ndarray, inv_kp: np.ndarray, inv_ckp: np.ndarray, kc: np.ndarray, inv_kc: np.ndarray,
                ckc: np.ndarray, z: np.ndarray, yshp: np.ndarray, yshc: np.ndarray, y_node: np.ndarray,
                u_src: np.ndarray, z_src: np.ndarray,
                el_f: np.ndarray, el_t: np.ndarray, yff: np.ndarray, yft: np.ndarray, ytf: np.ndarray,
                ytt: np.ndarray, el_sf: np.ndarray, el_st: np.ndarray, el_trafo: np.ndarray,
                tol: float, max_iter: int, n_blocks: int,
                v_cplx: np.ndarray, v_abs: np.ndarray, el_load: np.ndarray,
                converged: np.ndarray, iterations: np.ndarray, vmin: np.ndarray, vmin_node: np.ndarray,
                vmax: np.ndarray, vmax_node: np.ndarray, losses: np.ndarray, p_src: np.ndarray,
                max_load: np.ndarray) -> None:
    """Solve ``T = p_mw.shape[0]`` steps; results go into the output arrays (row per step).

    ``p_mw``/``q_mvar`` (T, m): injection rows, each on ``row_node`` (-1: not energised) with
    behaviour ``row_type`` (0 constant power, 1 constant current, 2 constant impedance) and
    ``row_sign`` (+1 consumes, -1 feeds in). Optional outputs ``v_cplx`` (T, n) complex,
    ``v_abs`` (T, n) float32 and ``el_load`` (T, n_el) float32 are skipped when they have no
    rows. A step that does not converge within ``max_iter`` gets ``converged`` False and NaN
    results, and the next step starts flat again.
    """
    t_all = p_mw.shape[0]
    n = parent.size
    m = row_node.size
    ne = el_f.size
    tol2 = tol * tol
    want_c = v_cplx.shape[0] > 0
    want_a = v_abs.shape[0] > 0
    want_l = el_load.shape[0] > 0
    nb = min(n_blocks, t_all)
    for b in prange(nb):
        a0 = b * t_all // nb
        a1 = (b + 1) * t_all // nb
        v = np.empty(n, np.complex128)
        j = np.empty(n, np.complex128)
        i_s = np.zeros(n, np.complex128)
        sp = np.empty(n, np.complex128)
        si = np.empty(n, np.complex128)
        sz = np.empty(n, np.complex128)
        warm = False
        for t in range(a0, a1):
            sp[:] = 0.0
            if has_iz:
                si[:] = 0.0
                sz[:] = 0.0
            for r in range(m):
                nd = row_node[r]
                if nd < 0:
                    continue
                s = row_sign[r] * (p_mw[t, r] + 1j * q_mvar[t, r])
                ty = row_type[r]
                if ty == 0:
                    sp[nd] += s
                elif ty == 1:
                    si[nd] += s
                else:
                    sz[nd] += s
            if not warm:
                _flat_start(v, parent, inv_kp, kc, u_src)
            ok = False
            it = 0
            while it < max_iter:
                it += 1
                _backward(v, j, i_s, sp, si, sz, has_iz, y_node, parent, inv_kp, inv_ckp, inv_kc, ckc, yshp, yshc)
                d2 = _forward(v, j, i_s, parent, inv_kp, kc, z, u_src, z_src)
                if d2 < tol2:
                    ok = True
                    break
                if not d2 < 1e6:
                    break
            converged[t] = ok
            iterations[t] = it
            if not ok:
                warm = False
                vmin[t] = np.nan
                vmax[t] = np.nan
                vmin_node[t] = -1
                vmax_node[t] = -1
                losses[t] = np.nan
                p_src[t] = np.nan
                max_load[t] = np.nan
                if want_c:
                    v_cplx[t, :] = np.nan
                if want_a:
                    v_abs[t, :] = np.nan
                if want_l:
                    el_load[t, :] = np.nan
                continue
            warm = True
            # final currents consistent with the converged voltages
            _backward(v, j, i_s, sp, si, sz, has_iz, y_node, parent, inv_kp, inv_ckp, inv_kc, ckc, yshp, yshc)
            lo = np.inf
            hi = -np.inf
            klo = -1
            khi = -1
            ps = 0.0
            for i in range(n):
                a = np.abs(v[i])
                if a < lo:
                    lo = a
                    klo = i
                if a > hi:
                    hi = a
                    khi = i
                if parent[i] < 0:
                    ps += (v[i] * np.conj(j[i])).real
                if want_c:
                    v_cplx[t, i] = v[i]
                if want_a:
                    v_abs[t, i] = a
            vmin[t] = lo
            vmax[t] = hi
            vmin_node[t] = klo
            vmax_node[t] = khi
            p_src[t] = ps
            loss = 0.0
            mx = 0.0
            for e in range(ne):
                f = el_f[e]
                g = el_t[e]
                vf = v[f] if f >= 0 else 0.0j
                vt = v[g] if g >= 0 else 0.0j
                i_f = yff[e] * vf + yft[e] * vt
                i_t = ytf[e] * vf + ytt[e] * vt
                s_f = vf * np.conj(i_f)
                s_t = vt * np.conj(i_t)
                loss += s_f.real + s_t.real
                if el_trafo[e]:
                    ld = max(np.abs(s_f) * el_sf[e], np.abs(s_t) * el_st[e])
                else:
                    ld = max(np.abs(i_f) * el_sf[e], np.abs(i_t) * el_st[e])
                if ld > mx:
                    mx = ld
                if want_l:
                    el_load[t, e] = ld
            losses[t] = loss
            max_load[t] = mx
