"""The numba kernel of the batch radial power flow (backward/forward sweep, parallel over steps).

Everything is per unit on a 1 MVA base and each node's nominal voltage (the same base as
power-grid-model). Nodes are numbered in breadth-first order from their source, so a node's
parent always has a smaller number: the backward sweep runs ``n-1 .. 0`` and the forward
sweep ``0 .. n-1``.

Each tree edge (parent ``p`` to child ``c``) is an ideal transformer of ratio ``kp`` at the
parent side (``V_ip = V_p / kp``), a series impedance ``z``, shunts ``yshp``/``yshc`` at the
inner ends, and an ideal ratio ``kc`` at the child side (``V_c = kc * V_ic``); lines have
``kp = kc = 1``. Roots are fed by their source: ``u_src`` behind ``z_src``.

Layout: the steps are cut into ``n_blocks`` blocks run in parallel (``prange``); inside a
block, ``LANES`` runs of consecutive steps advance in lock-step, so every node update is a
short loop over lanes that the compiler turns into SIMD instructions (real and imaginary parts
in separate arrays), and the dependency chain along a feeder is shared by all lanes. Each lane
warm-starts from its previous step's voltages.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

LANES = 8


# long: numba, one kernel: splitting _sweep into @njit _backward/_forward cost 5-18 % radial steps/s (case33bw, cigre-mv; +7 % on synthetic:2000; 1 thread, CPU time, 5 paired runs)
@njit(cache=True, nogil=True, error_model="numpy")
def _sweep(  # noqa: C901, PLR0912, PLR0913, PLR0915
    vr: np.ndarray,
    vi: np.ndarray,
    jr: np.ndarray,
    ji: np.ndarray,
    sr: np.ndarray,
    si_: np.ndarray,
    spr: np.ndarray,
    spi: np.ndarray,
    sir: np.ndarray,
    sii: np.ndarray,
    szr: np.ndarray,
    szi: np.ndarray,
    has_iz: bool,
    ynr: np.ndarray,
    yni: np.ndarray,
    parent: np.ndarray,
    plain: np.ndarray,
    ikpr: np.ndarray,
    ikpi: np.ndarray,
    kcr: np.ndarray,
    kci: np.ndarray,
    ikcr: np.ndarray,
    ikci: np.ndarray,
    zr: np.ndarray,
    zi: np.ndarray,
    ypr: np.ndarray,
    ypi: np.ndarray,
    ycr: np.ndarray,
    yci: np.ndarray,
    usr: np.ndarray,
    usi: np.ndarray,
    zsr: np.ndarray,
    zsi: np.ndarray,
    d2: np.ndarray,
    forward: bool,
    ch_a: np.ndarray,
    ch_b: np.ndarray,
    cjr: np.ndarray,
    cji: np.ndarray,
) -> None:
    """One backward sweep (node currents ``j``) and, if ``forward``, one forward sweep.

    ``d2`` gets the largest squared voltage change per lane. Loop-closing branches (chords
    ``ch_a[c] -> ch_b[c]``) enter as their present currents ``cj[c]``: drawn at ``a``, fed in at
    ``b``.
    """
    n = parent.size
    jr[:, :] = 0.0
    ji[:, :] = 0.0
    for c in range(ch_a.size):
        a_, b_ = ch_a[c], ch_b[c]
        for k in range(LANES):
            jr[a_, k] += cjr[c, k]
            ji[a_, k] += cji[c, k]
            jr[b_, k] -= cjr[c, k]
            ji[b_, k] -= cji[c, k]
    for i in range(n - 1, -1, -1):
        # the node's own current: conj(S) * V / |V|^2 + y_node * V (+ constant I and Z parts),
        # added to what its children already pushed into j[i]
        a, b = ynr[i], yni[i]
        for k in range(LANES):
            x = vr[i, k]
            y = vi[i, k]
            w = 1.0 / (x * x + y * y)
            jr[i, k] += (spr[i, k] * x + spi[i, k] * y) * w + a * x - b * y
            ji[i, k] += (spr[i, k] * y - spi[i, k] * x) * w + a * y + b * x
        if has_iz:
            for k in range(LANES):
                x = vr[i, k]
                y = vi[i, k]
                m = np.sqrt(x * x + y * y)
                jr[i, k] += (sir[i, k] * x + sii[i, k] * y) / m + szr[i, k] * x + szi[i, k] * y
                ji[i, k] += (sir[i, k] * y - sii[i, k] * x) / m + szr[i, k] * y - szi[i, k] * x
        p = parent[i]
        if p < 0:
            continue
        if plain[i]:
            a, b = ycr[i], yci[i]
            c, d = ypr[i], ypi[i]
            for k in range(LANES):
                x = vr[i, k]
                y = vi[i, k]
                s_r = jr[i, k] + a * x - b * y
                s_i = ji[i, k] + a * y + b * x
                sr[i, k] = s_r
                si_[i, k] = s_i
                xp = vr[p, k]
                yp = vi[p, k]
                jr[p, k] += s_r + c * xp - d * yp
                ji[p, k] += s_i + c * yp + d * xp
        else:
            kr, ki = ikcr[i], ikci[i]
            cr_, ci_ = kcr[i], -kci[i]  # conj(kc)
            a, b = ycr[i], yci[i]
            c, d = ypr[i], ypi[i]
            pr, pi = ikpr[i], ikpi[i]
            # 1 / conj(kp) = conj(1 / kp)
            qr, qi = ikpr[i], -ikpi[i]
            for k in range(LANES):
                x = vr[i, k] * kr - vi[i, k] * ki  # V_ic = V_c / kc
                y = vr[i, k] * ki + vi[i, k] * kr
                s_r = jr[i, k] * cr_ - ji[i, k] * ci_ + a * x - b * y
                s_i = jr[i, k] * ci_ + ji[i, k] * cr_ + a * y + b * x
                sr[i, k] = s_r
                si_[i, k] = s_i
                xp = vr[p, k] * pr - vi[p, k] * pi  # V_ip = V_p / kp
                yp = vr[p, k] * pi + vi[p, k] * pr
                ur = s_r + c * xp - d * yp
                ui = s_i + c * yp + d * xp
                jr[p, k] += ur * qr - ui * qi
                ji[p, k] += ur * qi + ui * qr
    if not forward:
        return
    for k in range(LANES):
        d2[k] = 0.0
    for i in range(n):
        p = parent[i]
        if p < 0:
            a, b = zsr[i], zsi[i]
            for k in range(LANES):
                nr = usr[i] - (a * jr[i, k] - b * ji[i, k])
                ni = usi[i] - (a * ji[i, k] + b * jr[i, k])
                dr = nr - vr[i, k]
                di = ni - vi[i, k]
                e = dr * dr + di * di
                d2[k] = max(d2[k], e) if e == e else np.inf
                vr[i, k] = nr
                vi[i, k] = ni
        elif plain[i]:
            a, b = zr[i], zi[i]
            for k in range(LANES):
                nr = vr[p, k] - (a * sr[i, k] - b * si_[i, k])
                ni = vi[p, k] - (a * si_[i, k] + b * sr[i, k])
                dr = nr - vr[i, k]
                di = ni - vi[i, k]
                e = dr * dr + di * di
                d2[k] = max(d2[k], e) if e == e else np.inf
                vr[i, k] = nr
                vi[i, k] = ni
        else:
            a, b = zr[i], zi[i]
            pr, pi = ikpr[i], ikpi[i]
            kr, ki = kcr[i], kci[i]
            for k in range(LANES):
                xr = vr[p, k] * pr - vi[p, k] * pi - (a * sr[i, k] - b * si_[i, k])
                xi = vr[p, k] * pi + vi[p, k] * pr - (a * si_[i, k] + b * sr[i, k])
                nr = kr * xr - ki * xi
                ni = kr * xi + ki * xr
                dr = nr - vr[i, k]
                di = ni - vi[i, k]
                e = dr * dr + di * di
                d2[k] = max(d2[k], e) if e == e else np.inf
                vr[i, k] = nr
                vi[i, k] = ni


# long: numba, one kernel: the per-step parts share the lanes' arrays with the sweep loop; a split of the hot sweep alone already cost 5-18 % (see _sweep)
@njit(parallel=True, cache=True, error_model="numpy")
def solve_batch(  # noqa: C901, PLR0912, PLR0913, PLR0915
    p_mw: np.ndarray,
    q_mvar: np.ndarray,
    row_node: np.ndarray,
    row_type: np.ndarray,
    row_sign: np.ndarray,
    has_iz: bool,
    parent: np.ndarray,
    kp: np.ndarray,
    kc: np.ndarray,
    z: np.ndarray,
    yshp: np.ndarray,
    yshc: np.ndarray,
    y_node: np.ndarray,
    u_src: np.ndarray,
    z_src: np.ndarray,
    el_f: np.ndarray,
    el_t: np.ndarray,
    yff: np.ndarray,
    yft: np.ndarray,
    ytf: np.ndarray,
    ytt: np.ndarray,
    el_sf: np.ndarray,
    el_st: np.ndarray,
    el_trafo: np.ndarray,
    tol: float,
    max_iter: int,
    n_blocks: int,
    extrapolate: bool,
    ch_a: np.ndarray,
    ch_b: np.ndarray,
    ch_z: np.ndarray,
    ch_y: np.ndarray,
    v_cplx: np.ndarray,
    v_abs: np.ndarray,
    el_load: np.ndarray,
    converged: np.ndarray,
    iterations: np.ndarray,
    vmin: np.ndarray,
    vmin_node: np.ndarray,
    vmax: np.ndarray,
    vmax_node: np.ndarray,
    losses: np.ndarray,
    p_src: np.ndarray,
    max_load: np.ndarray,
) -> None:
    """Solve ``T = p_mw.shape[0]`` steps; results go into the output arrays (row per step).

    ``p_mw``/``q_mvar`` (T, m): injection rows, each on ``row_node`` (-1: not energised) with
    behaviour ``row_type`` (0 constant power, 1 constant current, 2 constant impedance) and
    ``row_sign`` (+1 consumes, -1 feeds in). Optional outputs ``v_cplx`` (T, n) complex,
    ``v_abs`` (T, n) float32 and ``el_load`` (T, n_el) float32 are skipped when they have no
    rows. A step that does not converge within ``max_iter`` gets ``converged`` False and NaN
    results, and its lane starts flat again.

    Weakly meshed networks: each loop is cut at a chord branch ``ch_a[c] -> ch_b[c]`` (series
    impedance ``ch_z[c]``, its shunts already in ``y_node``) that is replaced by its current
    (the compensation method of Shirmohammadi et al., 1988). After every sweep the chord
    currents are corrected by ``ch_y`` (the inverse loop impedance matrix) times the voltage
    mismatch across the cuts, ``V_a - V_b - z J``; a step has converged when both the voltage
    change and that mismatch are below ``tol``.
    """
    t_all = p_mw.shape[0]
    n = parent.size
    m = row_node.size
    ne = el_f.size
    tol2 = tol * tol
    want_c = v_cplx.shape[0] > 0
    want_a = v_abs.shape[0] > 0
    want_l = el_load.shape[0] > 0
    plain = np.empty(n, np.bool_)
    for i in range(n):
        plain[i] = kp[i] == 1.0 and kc[i] == 1.0
    ikp = 1.0 / kp
    ikc = 1.0 / kc
    ikpr, ikpi = ikp.real.copy(), ikp.imag.copy()
    ikcr, ikci = ikc.real.copy(), ikc.imag.copy()
    kcr, kci = kc.real.copy(), kc.imag.copy()
    zr, zi = z.real.copy(), z.imag.copy()
    ypr, ypi = yshp.real.copy(), yshp.imag.copy()
    ycr, yci = yshc.real.copy(), yshc.imag.copy()
    ynr, yni = y_node.real.copy(), y_node.imag.copy()
    usr, usi = u_src.real.copy(), u_src.imag.copy()
    zsr, zsi = z_src.real.copy(), z_src.imag.copy()
    yffr, yffi = yff.real.copy(), yff.imag.copy()
    yftr, yfti = yft.real.copy(), yft.imag.copy()
    ytfr, ytfi = ytf.real.copy(), ytf.imag.copy()
    yttr, ytti = ytt.real.copy(), ytt.imag.copy()
    nc = ch_a.size
    czr, czi = ch_z.real.copy(), ch_z.imag.copy()
    cyr, cyi = ch_y.real.copy(), ch_y.imag.copy()
    nb = max(1, min(n_blocks, (t_all + LANES - 1) // LANES))
    for b in prange(nb):
        a0 = b * t_all // nb
        a1 = (b + 1) * t_all // nb
        run = (a1 - a0 + LANES - 1) // LANES  # steps per lane
        vr = np.empty((n, LANES))
        vi = np.empty((n, LANES))
        jr = np.empty((n, LANES))
        ji = np.empty((n, LANES))
        sr = np.zeros((n, LANES))
        si_ = np.zeros((n, LANES))
        spr = np.zeros((n, LANES))
        spi = np.zeros((n, LANES))
        izn = n if has_iz else 0
        sir = np.zeros((izn, LANES))
        sii = np.zeros((izn, LANES))
        szr = np.zeros((izn, LANES))
        szi = np.zeros((izn, LANES))
        d2 = np.zeros(LANES)
        cjr = np.zeros((nc, LANES))
        cji = np.zeros((nc, LANES))
        dvr = np.zeros((nc, LANES))
        dvi = np.zeros((nc, LANES))
        done = np.zeros(LANES, np.int64)
        warm = np.zeros(LANES, np.bool_)
        has_prev = np.zeros(LANES, np.bool_)
        pvr = np.empty((n if extrapolate else 0, LANES))
        pvi = np.empty((n if extrapolate else 0, LANES))
        for s in range(run):
            # injections of each lane's step
            spr[:, :] = 0.0
            spi[:, :] = 0.0
            if has_iz:
                sir[:, :] = 0.0
                sii[:, :] = 0.0
                szr[:, :] = 0.0
                szi[:, :] = 0.0
            for k in range(LANES):
                t = a0 + k * run + s
                if t >= a1:
                    t = a1 - 1  # an idle lane repeats the block's last step (not written)
                for r in range(m):
                    nd = row_node[r]
                    if nd < 0:
                        continue
                    pr = row_sign[r] * p_mw[t, r]
                    qr = row_sign[r] * q_mvar[t, r]
                    ty = row_type[r]
                    if ty == 0:
                        spr[nd, k] += pr
                        spi[nd, k] += qr
                    elif ty == 1:
                        sir[nd, k] += pr
                        sii[nd, k] += qr
                    else:
                        szr[nd, k] += pr
                        szi[nd, k] += qr
                if warm[k] and extrapolate:
                    # start from the straight-line continuation of the lane's last two steps
                    if has_prev[k]:
                        for i in range(n):
                            x = vr[i, k]
                            y = vi[i, k]
                            vr[i, k] = 2.0 * x - pvr[i, k]
                            vi[i, k] = 2.0 * y - pvi[i, k]
                            pvr[i, k] = x
                            pvi[i, k] = y
                    else:
                        for i in range(n):
                            pvr[i, k] = vr[i, k]
                            pvi[i, k] = vi[i, k]
                    has_prev[k] = True
                if not warm[k]:
                    has_prev[k] = False
                    for c in range(nc):
                        cjr[c, k] = 0.0
                        cji[c, k] = 0.0
                    for i in range(n):
                        p = parent[i]
                        if p < 0:
                            vr[i, k] = usr[i]
                            vi[i, k] = usi[i]
                        else:
                            xr = vr[p, k] * ikpr[i] - vi[p, k] * ikpi[i]
                            xi = vr[p, k] * ikpi[i] + vi[p, k] * ikpr[i]
                            vr[i, k] = kcr[i] * xr - kci[i] * xi
                            vi[i, k] = kcr[i] * xi + kci[i] * xr
                done[k] = 0
            it = 0
            while it < max_iter:
                it += 1
                _sweep(
                    vr,
                    vi,
                    jr,
                    ji,
                    sr,
                    si_,
                    spr,
                    spi,
                    sir,
                    sii,
                    szr,
                    szi,
                    has_iz,
                    ynr,
                    yni,
                    parent,
                    plain,
                    ikpr,
                    ikpi,
                    kcr,
                    kci,
                    ikcr,
                    ikci,
                    zr,
                    zi,
                    ypr,
                    ypi,
                    ycr,
                    yci,
                    usr,
                    usi,
                    zsr,
                    zsi,
                    d2,
                    True,
                    ch_a,
                    ch_b,
                    cjr,
                    cji,
                )
                if nc:
                    # mismatch across each cut, then the Newton correction of the chord currents
                    for c in range(nc):
                        a_, b_ = ch_a[c], ch_b[c]
                        for k in range(LANES):
                            xr = vr[a_, k] - vr[b_, k] - (czr[c] * cjr[c, k] - czi[c] * cji[c, k])
                            xi = vi[a_, k] - vi[b_, k] - (czr[c] * cji[c, k] + czi[c] * cjr[c, k])
                            dvr[c, k] = xr
                            dvi[c, k] = xi
                            e = xr * xr + xi * xi
                            d2[k] = max(d2[k], e) if e == e else np.inf
                    for c in range(nc):
                        for d in range(nc):
                            yr_, yi_ = cyr[c, d], cyi[c, d]
                            for k in range(LANES):
                                cjr[c, k] += yr_ * dvr[d, k] - yi_ * dvi[d, k]
                                cji[c, k] += yr_ * dvi[d, k] + yi_ * dvr[d, k]
                alldone = True
                for k in range(LANES):
                    if done[k] == 0:
                        if d2[k] < tol2:
                            done[k] = it
                        else:
                            alldone = False
                if alldone:
                    break
                blown = True
                for k in range(LANES):
                    if done[k] == 0 and d2[k] < 1e6:
                        blown = False
                if blown:
                    break
            for k in range(LANES):
                t = a0 + k * run + s
                if t >= a1:
                    continue
                ok = done[k] > 0
                converged[t] = ok
                iterations[t] = done[k] if ok else it
                if not ok:
                    warm[k] = False
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
                warm[k] = True
                lo = np.inf
                hi = -np.inf
                klo = -1
                khi = -1
                cons = 0.0  # consumed active power; the source delivers it plus the losses
                for i in range(n):
                    x = vr[i, k]
                    y = vi[i, k]
                    a2 = x * x + y * y
                    if a2 < lo:
                        lo = a2
                        klo = i
                    if a2 > hi:
                        hi = a2
                        khi = i
                    cons += spr[i, k]
                    if has_iz:
                        cons += sir[i, k] * np.sqrt(a2) + szr[i, k] * a2
                    if want_c:
                        v_cplx[t, i] = complex(x, y)
                    if want_a:
                        v_abs[t, i] = np.sqrt(a2)
                lo = np.sqrt(lo)
                hi = np.sqrt(hi)
                vmin[t] = lo
                vmax[t] = hi
                vmin_node[t] = klo
                vmax_node[t] = khi
                loss = 0.0
                mx = 0.0
                for e in range(ne):
                    f = el_f[e]
                    g = el_t[e]
                    xf = vr[f, k] if f >= 0 else 0.0
                    yf = vi[f, k] if f >= 0 else 0.0
                    xt = vr[g, k] if g >= 0 else 0.0
                    yt = vi[g, k] if g >= 0 else 0.0
                    ifr = yffr[e] * xf - yffi[e] * yf + yftr[e] * xt - yfti[e] * yt
                    ifi = yffr[e] * yf + yffi[e] * xf + yftr[e] * yt + yfti[e] * xt
                    itr = ytfr[e] * xf - ytfi[e] * yf + yttr[e] * xt - ytti[e] * yt
                    iti = ytfr[e] * yf + ytfi[e] * xf + yttr[e] * yt + ytti[e] * xt
                    loss += xf * ifr + yf * ifi + xt * itr + yt * iti
                    i2f = ifr * ifr + ifi * ifi
                    i2t = itr * itr + iti * iti
                    if el_trafo[e]:  # |S| = |V| |I|
                        i2f *= xf * xf + yf * yf
                        i2t *= xt * xt + yt * yt
                    ld2 = max(i2f * el_sf[e] * el_sf[e], i2t * el_st[e] * el_st[e])
                    if ld2 > mx:
                        mx = ld2
                    if want_l:
                        el_load[t, e] = np.sqrt(ld2)
                losses[t] = loss
                max_load[t] = np.sqrt(mx)
                p_src[t] = loss + cons
