"""Weighted-least-squares state estimation with power-grid-model.

:class:`StateEstimator` compiles a grid once (its PGM network and id maps, see
:class:`gridpilot.twin.pgm.PgmNetwork`) and turns :class:`~gridpilot.estimation.Measurements`
into PGM ``sym_voltage_sensor`` / ``sym_power_sensor`` rows. ``estimate`` returns bus
voltages, the residual of every scalar measurement and the chi-square statistic
``J = sum((r / sigma)^2)``; ``diag_sensitivity`` gives, by one batch calculation with each
measurement perturbed in turn, ``K_ii = d z_hat_i / d z_i`` (the diagonal of the hat matrix),
from which the residual variance ``Omega_ii = (1 - K_ii) sigma_i^2`` and the normalised
residuals follow (see :mod:`gridpilot.estimation.baddata`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from power_grid_model import (
    CalculationMethod,
    ComponentType,
    MeasuredTerminalType,
    PowerGridModel,
    initialize_array,
)
from power_grid_model.errors import PowerGridError

from gridpilot.errors import ConvergenceError, ValidationError
from gridpilot.estimation.measurements import Measurements, PowerSensorKind
from gridpilot.estimation.residuals import ChiSquareMixin
from gridpilot.model import Grid
from gridpilot.twin.pgm import PgmNetwork, to_pgm

CT = ComponentType
log = logging.getLogger(__name__)
_TERMINAL = {
    PowerSensorKind.LOAD: MeasuredTerminalType.load,
    PowerSensorKind.LINE_FROM: MeasuredTerminalType.branch_from,
    PowerSensorKind.LINE_TO: MeasuredTerminalType.branch_to,
    PowerSensorKind.SOURCE: MeasuredTerminalType.source,
    PowerSensorKind.BUS: MeasuredTerminalType.node,
    PowerSensorKind.GENERATOR: MeasuredTerminalType.generator,
    PowerSensorKind.STORAGE: MeasuredTerminalType.load,
    PowerSensorKind.EV: MeasuredTerminalType.load,
    PowerSensorKind.FLEX: MeasuredTerminalType.load,
}
_APPLIANCE = {
    PowerSensorKind.STORAGE: "storage",
    PowerSensorKind.EV: "ev_charger",
    PowerSensorKind.FLEX: "flex_load",
}


@dataclass
class EstimationResult(ChiSquareMixin):
    """One state estimate.

    ``v_pu``/``va_deg`` per bus (table order, NaN where not energised); ``residual`` per scalar
    measurement (measured minus estimated, order V, P, Q as :meth:`Measurements.labels`, in pu
    for voltages and MW/Mvar for powers), ``sigma`` the same order; ``chi2`` the weighted sum of
    squared residuals, ``dof`` its degrees of freedom (:func:`redundancy`), ``chi2_limit`` the
    ``1 - alpha`` quantile; ``calc_ms`` the PGM time; ``meta`` the PGM method used (Newton-Raphson,
    or iterative linear where NR's Jacobian was singular) or the error.
    """

    converged: bool
    bus_id: np.ndarray
    v_pu: np.ndarray
    va_deg: np.ndarray
    residual: np.ndarray
    sigma: np.ndarray
    chi2: float
    dof: int
    chi2_limit: float
    calc_ms: float
    meta: dict[str, object] = field(default_factory=dict)

    def max_error_pu(self, v_true_pu: np.ndarray) -> float:
        """Largest |estimated - true| bus voltage in pu (energised buses)."""
        ok = np.isfinite(self.v_pu)
        return (
            float(np.max(np.abs(self.v_pu[ok] - np.asarray(v_true_pu)[ok])))
            if ok.any()
            else float("nan")
        )


# proximal continuation where Newton-Raphson diverges (StateEstimator._continued)
CONT_F0 = 0.5  # first pull towards the real measurements
CONT_F_MIN = 0.01  # give up below this pull
CONT_F_MAX = 0.8  # largest pull (1 would be the cold-start problem again)
CONT_F_GROW = 1.5  # pull growth after a converged step
CONT_TOL = 1e-6  # pu: stop when no voltage moves more (sigmas are ~1e-2)
CONT_MAX_SOLVES = 100
_APPLIANCE_TERMINALS = (
    MeasuredTerminalType.load,
    MeasuredTerminalType.generator,
    MeasuredTerminalType.source,
)


def redundancy(
    net: PgmNetwork, m: Measurements, pw: np.ndarray, energised: np.ndarray | None = None
) -> int:
    """Degrees of freedom of the chi-square ``J``: the measurements PGM's WLS fits, less its
    free states, counted as PGM builds them (docs/estimation.md, *Degrees of freedom*).

    A voltage sensor counts 1, a line-end sensor 2. Appliance sensors (load, generator,
    source, storage, EV, flexible load) are summed per bus into one injection measurement,
    which counts 2 only where every connected appliance of the bus is measured; a second
    sensor on the same appliance counts 2 more; ``BUS`` sensors 2 each. A bus with no
    connected appliance is a zero-injection constraint (zero variance): it removes its 2
    states instead of adding a measurement. States: 2 per energised bus less the angle
    reference. ``pw``: the PGM power-sensor rows; ``energised``: per bus (default all).
    """
    nodes = net.input[CT.node]["id"]
    on_bus = np.ones(nodes.size, bool) if energised is None else np.asarray(energised, bool)
    look = {int(x): i for i, x in enumerate(nodes)}
    appl: dict[int, int] = {}  # connected appliance PGM id -> bus position
    for comp in (CT.sym_load, CT.sym_gen, CT.source):
        a = net.input.get(comp)
        if a is not None and a.size:
            on = a["status"] != 0
            appl.update(
                zip(a["id"][on].tolist(), [look[int(x)] for x in a["node"][on]], strict=True)
            )
    term = pw["measured_terminal_type"] if pw.size else np.zeros(0, np.int8)
    obj = pw["measured_object"] if pw.size else np.zeros(0, np.int64)
    is_appl = np.isin(term, _APPLIANCE_TERMINALS)
    ids, count = np.unique(obj[is_appl], return_counts=True)
    sensors = dict(zip(ids.tolist(), count.tolist(), strict=True))
    conn = np.zeros(nodes.size, np.int64)
    meas = np.zeros(nodes.size, np.int64)
    for a_id, bus in appl.items():
        conn[bus] += 1
        meas[bus] += a_id in sensors
    # several sensors on one appliance: each beyond the first adds its difference
    on_appl = ~np.isin(m.p_kind, (PowerSensorKind.LINE_FROM, PowerSensorKind.LINE_TO,
                                  PowerSensorKind.BUS))  # fmt: skip
    keys = m.p_kind[on_appl].astype(np.int64) * (1 << 40) + m.p_element_id[on_appl]
    dup = int(keys.size - np.unique(keys).size)
    injections = int(np.sum(on_bus & (conn > 0) & (meas == conn)))
    zero_inj = int(np.sum(on_bus & (conn == 0)))
    n_branch = int(np.sum(np.isin(m.p_kind, (PowerSensorKind.LINE_FROM, PowerSensorKind.LINE_TO))))
    n_bus = int(np.sum(m.p_kind == PowerSensorKind.BUS))
    fitted = m.v_pu.size + 2 * (n_branch + n_bus + injections + dup)
    states = 2 * int(on_bus.sum()) - 1 - 2 * zero_inj
    return int(fitted - states)


class StateEstimator:
    """State estimation of one grid (switch states fixed at construction or given per call)."""

    def __init__(
        self,
        grid: Grid,
        switch_closed: np.ndarray | None = None,
        *,
        alpha: float = 0.01,
        method: CalculationMethod = CalculationMethod.newton_raphson,
        tolerance: float = 1e-8,
        max_iterations: int = 50,
    ) -> None:
        self.grid = grid
        self.alpha = alpha
        self.method = method
        self.tolerance = tolerance
        self.max_iterations = max_iterations
        self.net: PgmNetwork = to_pgm(grid, switch_closed)
        self._next_id = 1 + max(int(a["id"].max()) for a in self.net.input.values() if a.size)
        # gridpilot load position -> (sym_load rows, shares)
        self._load_rows: dict[int, list[tuple[int, float]]] = {}
        self._appl_rows: dict[str, np.ndarray] = {}  # storage/ev/flex position -> sym_load row
        for comp, pos, share, start in self.net.load_blocks:
            if comp != "load":
                self._appl_rows[comp] = start + np.arange(pos.size)
                continue
            for k, (p, s) in enumerate(zip(pos, share, strict=True)):
                self._load_rows.setdefault(int(p), []).append((start + k, float(s)))

    # --- building PGM input ---------------------------------------------------------------------
    def _sensors(self, m: Measurements) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # noqa: PLR0915
        """PGM sensor arrays plus, per power-sensor row, the measurement row it came from."""
        g = self.grid
        m.check_against(g)
        net = self.net
        vs = initialize_array("input", CT.sym_voltage_sensor, m.v_pu.size)
        vs["id"] = self._next_id + np.arange(m.v_pu.size)
        bpos = g.bus.index_of(m.v_bus_id)
        vs["measured_object"] = net.input[CT.node]["id"][bpos]
        u_rated = net.input[CT.node]["u_rated"][bpos]
        vs["u_measured"] = m.v_pu * u_rated
        vs["u_sigma"] = m.v_sigma_pu * u_rated
        vs["u_angle_measured"] = np.nan
        obj, term, p, q, ps, qs, src = [], [], [], [], [], [], []
        sign = 1e6
        for i, (kind, eid) in enumerate(zip(m.p_kind, m.p_element_id, strict=True)):
            k = PowerSensorKind(int(kind))
            if k == PowerSensorKind.LOAD:
                rows = self._load_rows.get(int(g.load.index_of(int(eid))[0]), [])
                if not rows:
                    raise ValidationError(
                        f"power sensor on load {eid}: the load has no PGM rows (out of service?)"
                    )
                for r, share in rows:
                    obj.append(net.sym_load_ids[r])
                    term.append(_TERMINAL[k])
                    p.append(m.p_mw[i] * share * sign)
                    q.append(m.q_mvar[i] * share * sign)
                    # variance share * sigma^2: the rows' variances sum to the sensor's
                    ps.append(m.p_sigma_mw[i] * np.sqrt(share) * sign)
                    qs.append(m.q_sigma_mvar[i] * np.sqrt(share) * sign)
                    src.append(i)
                continue
            if k in (PowerSensorKind.LINE_FROM, PowerSensorKind.LINE_TO):
                o = net.input[CT.line]["id"][g.line.index_of(int(eid))[0]]
                f = 1.0
            elif k == PowerSensorKind.SOURCE:
                o = net.input[CT.source]["id"][g.source.index_of(int(eid))[0]]
                f = 1.0
            elif k == PowerSensorKind.GENERATOR:
                o = net.input[CT.sym_gen]["id"][g.generator.index_of(int(eid))[0]]
                f = 1.0
            elif k in _APPLIANCE:
                comp = _APPLIANCE[k]
                o = net.sym_load_ids[self._appl_rows[comp][g[comp].index_of(int(eid))[0]]]
                f = 1.0
            else:  # BUS: net consumption -> node injection
                o = net.input[CT.node]["id"][g.bus.index_of(int(eid))[0]]
                f = -1.0
            obj.append(o)
            term.append(_TERMINAL[k])
            p.append(f * m.p_mw[i] * sign)
            q.append(f * m.q_mvar[i] * sign)
            ps.append(m.p_sigma_mw[i] * sign)
            qs.append(m.q_sigma_mvar[i] * sign)
            src.append(i)
        pw = initialize_array("input", CT.sym_power_sensor, len(obj))
        pw["id"] = self._next_id + m.v_pu.size + np.arange(len(obj))
        pw["measured_object"] = obj
        pw["measured_terminal_type"] = term
        pw["p_measured"] = p
        pw["q_measured"] = q
        pw["p_sigma"] = ps
        pw["q_sigma"] = qs
        pw["power_sigma"] = np.hypot(np.asarray(ps, float), np.asarray(qs, float)) if obj else []
        return vs, pw, np.asarray(src, np.int64), u_rated

    def _model(self, vs: np.ndarray, pw: np.ndarray) -> PowerGridModel:
        data = dict(self.net.input)
        data[CT.sym_voltage_sensor] = vs
        if pw.size:
            data[CT.sym_power_sensor] = pw
        return PowerGridModel(data, system_frequency=self.grid.f_hz)

    def _kwargs(self) -> dict:
        return {
            "symmetric": True,
            "error_tolerance": self.tolerance,
            "max_iterations": self.max_iterations,
            "calculation_method": getattr(self, "_used_method", self.method),
        }

    # --- estimation ---------------------------------------------------------------------------
    def estimate(self, m: Measurements, *, raise_on_failure: bool = False) -> EstimationResult:
        """Estimate the state from ``m``; returns an :class:`EstimationResult`.

        A calculation that fails (unobservable, no convergence) returns ``converged=False`` with
        NaN values, or raises :class:`~gridpilot.errors.ConvergenceError` if ``raise_on_failure``.
        """
        import time

        from scipy.special import chdtri  # chi-square quantile; scipy.stats costs ~1 s to import

        if m.v_pu.size == 0:
            raise ValidationError(
                "measurements: state estimation needs at least one voltage sensor"
            )
        vs, pw, src, u_rated = self._sensors(m)
        nb = len(self.grid.bus)
        t0 = time.perf_counter()
        out, ok, err, meta = self._solve(vs, pw)
        if not ok and raise_on_failure:
            raise ConvergenceError(f"state estimation failed: {err}")
        ms = (time.perf_counter() - t0) * 1e3
        nm = m.n_scalar
        energ = out[CT.node]["energized"] > 0 if ok else None
        dof = redundancy(self.net, m, pw, energ)
        limit = float(chdtri(max(dof, 1), self.alpha))  # = chi2.ppf(1 - alpha, dof)
        sigma = np.concatenate([m.v_sigma_pu, m.p_sigma_mw, m.q_sigma_mvar])
        if not ok:
            nan = np.full(nb, np.nan)
            return EstimationResult(
                False,
                self.grid.bus.ids,
                nan,
                nan.copy(),
                np.full(nm, np.nan),
                sigma,
                float("nan"),
                dof,
                limit,
                ms,
                {"error": err},
            )
        node = out[CT.node]
        energ = node["energized"] > 0
        v = np.where(energ, node["u_pu"], np.nan)
        va = np.where(energ, np.rad2deg(node["u_angle"]), np.nan)
        r = self._residuals(out, m, src, u_rated)
        chi2 = float(np.sum((r / sigma) ** 2))
        return EstimationResult(
            True,
            self.grid.bus.ids,
            v,
            va,
            r,
            sigma,
            chi2,
            dof,
            limit,
            ms,
            meta,
        )

    def _solve(self, vs: np.ndarray, pw: np.ndarray) -> tuple[dict, bool, str, dict[str, object]]:
        """PGM's estimate: the configured method; where Newton-Raphson fails from its cold
        start, the iterative-linear estimate continued to the WLS minimum (:meth:`_continued`),
        or that estimate itself if the continuation fails. Returns (output, ok, error, meta)."""
        model = self._model(vs, pw)
        out, ok, err = {}, False, ""
        for method in dict.fromkeys((self.method, CalculationMethod.iterative_linear)):
            try:
                out = model.calculate_state_estimation(
                    **(self._kwargs() | {"calculation_method": method})
                )
                ok = True
                self._used_method = method
                break
            except PowerGridError as exc:  # e.g. NR diverged: fall back to iterative linear
                err = str(exc).split("\n")[0]
        meta: dict[str, object] = {"method": getattr(self, "_used_method", self.method).name}
        nr = CalculationMethod.newton_raphson
        if ok and self.method == nr and meta["method"] != nr.name:
            cont = self._continued(vs, pw, out)
            if cont is not None:
                out, meta = cont[0], {"method": nr.name, "continuation_solves": cont[1]}
        return out, ok, err, meta

    def _continued(self, vs: np.ndarray, pw: np.ndarray, start: dict) -> tuple[dict, int] | None:
        """The exact WLS minimum where PGM's Newton-Raphson diverges from its cold start, by
        proximal continuation from ``start`` (the iterative-linear estimate); None if it fails.

        Each step solves, with Newton-Raphson, the WLS whose measurements are pulled to the
        last fit: ``z' = h(x) + f (z - h(x))`` with sigmas ``sqrt(f) sigma`` (the weighted
        residual ``W' (z' - h) = W (z - h)`` is unchanged at the fixed point, so the fixed point
        is the WLS minimum of the real measurements; the smaller residuals and the start near
        ``x`` let Newton-Raphson converge; docs/estimation.md, *Newton-Raphson divergence*).
        ``f`` halves after a failed step and grows after a good one; stops when the voltages
        move less than ``CONT_TOL`` pu. Returns PGM's output with the residuals against the
        real measurements, and the number of Newton-Raphson solves.
        """
        kw = self._kwargs() | {"calculation_method": CalculationMethod.newton_raphson}
        out, f, cap = start, CONT_F0, CONT_F_MAX
        has_pw = pw.size > 0
        for k in range(1, CONT_MAX_SOLVES + 1):
            v2 = vs.copy()
            fit_u = vs["u_measured"] - out[CT.sym_voltage_sensor]["u_residual"]
            v2["u_measured"] = fit_u + f * (vs["u_measured"] - fit_u)
            v2["u_sigma"] = vs["u_sigma"] * np.sqrt(f)
            p2 = pw.copy()
            if has_pw:
                po = out[CT.sym_power_sensor]
                for name in ("p", "q"):
                    fit = pw[f"{name}_measured"] - po[f"{name}_residual"]
                    p2[f"{name}_measured"] = fit + f * (pw[f"{name}_measured"] - fit)
                for name in ("p_sigma", "q_sigma", "power_sigma"):
                    p2[name] = pw[name] * np.sqrt(f)
            try:
                new = self._model(v2, p2).calculate_state_estimation(**kw)
            except PowerGridError:
                log.debug("continuation solve %d failed at pull %.3f", k, f)
                cap, f = 0.75 * f, 0.5 * f  # grow no more than near the pull that failed
                if f < CONT_F_MIN:
                    log.info("Newton-Raphson continuation failed after %d solves", k)
                    return None
                continue
            new = dict(new)  # residuals against the real measurements
            vo = new[CT.sym_voltage_sensor].copy()
            vo["u_residual"] = vs["u_measured"] - (v2["u_measured"] - vo["u_residual"])
            new[CT.sym_voltage_sensor] = vo
            if has_pw:
                po = new[CT.sym_power_sensor].copy()
                for name in ("p", "q"):
                    fit = p2[f"{name}_measured"] - po[f"{name}_residual"]
                    po[f"{name}_residual"] = pw[f"{name}_measured"] - fit
                new[CT.sym_power_sensor] = po
            du = np.abs(new[CT.node]["u_pu"] - out[CT.node]["u_pu"])
            out, f = new, min(f * CONT_F_GROW, cap)
            log.debug("continuation solve %d at pull %.3f: max |dV| %.2e pu", k, f, np.nanmax(du))
            if np.nanmax(du, initial=0.0) < CONT_TOL:
                log.debug("Newton-Raphson continuation converged in %d solves", k)
                return out, k
        log.info("Newton-Raphson continuation did not settle in %d solves", CONT_MAX_SOLVES)
        return None

    def _residuals(
        self, out: dict, m: Measurements, src: np.ndarray, u_rated: np.ndarray
    ) -> np.ndarray:
        """Measured minus estimated per scalar measurement (batch outputs: leading axis kept)."""
        ur = out[CT.sym_voltage_sensor]["u_residual"]
        rv = ur / u_rated
        npw = m.p_kind.size
        lead = ur.shape[:-1]
        rp = np.zeros((*lead, npw))
        rq = np.zeros((*lead, npw))
        if npw:
            po = out[CT.sym_power_sensor]
            sgn = np.where(m.p_kind[src] == PowerSensorKind.BUS, -1.0, 1.0)
            for arr, name in ((rp, "p_residual"), (rq, "q_residual")):
                vals = po[name] * sgn / 1e6
                for j in range(npw):  # sum split rows back onto their measurement
                    arr[..., j] = vals[..., src == j].sum(axis=-1)
        return np.concatenate([rv, rp, rq], axis=-1)

    def diag_sensitivity(
        self, m: Measurements, rows: np.ndarray | None = None, rel_step: float = 1.0
    ) -> np.ndarray:
        """``K_ii`` (hat-matrix diagonal, d estimate_i / d measurement_i) for scalar rows ``rows``.

        One PGM batch: scenario k perturbs measurement ``rows[k]`` by ``rel_step`` sigma; the
        change of its residual is ``(1 - K_ii)`` times the perturbation. Returns an array
        aligned with ``rows`` (default: all scalar measurements), clipped to [0, 1]. Scenarios
        whose estimate fails (Newton-Raphson may diverge next to a gross error) are computed
        again, base estimate included, with the iterative linear method; a row that fails
        with both methods gets NaN (its normalised residual cannot be computed).
        """
        s = self.residual_sensitivity(m, rows, rel_step)
        return np.clip(1.0 - np.abs(np.diagonal(s)), 0.0, 1.0)

    def residual_sensitivity(
        self, m: Measurements, rows: np.ndarray | None = None, rel_step: float = 1.0
    ) -> np.ndarray:
        """``S[i, k] = d r_{rows[i]} / d z_{rows[k]}`` (dimensionless) among scalar rows
        ``rows``: the residual sensitivity ``I - K`` restricted to them, from the same batch
        as :meth:`diag_sensitivity` (scenario k perturbs ``rows[k]``; every residual is read
        back). ``S[k, k] = 1 - K_kk``; the residual covariance is ``Omega_ik = S[i, k]
        sigma_k^2``. Column k is NaN where the scenario failed with both methods."""
        vs, pw, src, u_rated = self._sensors(m)
        rows = np.arange(m.n_scalar) if rows is None else np.asarray(rows, np.int64)
        sigma = np.concatenate([m.v_sigma_pu, m.p_sigma_mw, m.q_sigma_mvar])
        out = np.full((rows.size, rows.size), np.nan)
        if rows.size == 0:
            return out
        model = self._model(vs, pw)
        delta = rel_step * sigma[rows]
        upd = self._perturbed(m, vs, pw, src, u_rated, rows, delta)
        todo = np.arange(rows.size)
        used = getattr(self, "_used_method", self.method)
        for method in dict.fromkeys((used, CalculationMethod.iterative_linear)):
            kw = self._kwargs() | {"calculation_method": method}
            try:
                base = model.calculate_state_estimation(**kw)
            except PowerGridError as exc:
                log.info("K_ii base estimate failed with %s: %s", method.name, exc)
                continue
            r0 = self._residuals(base, m, src, u_rated)
            sub = {c: {a: v[todo] for a, v in d.items()} for c, d in upd.items()}
            res = model.calculate_state_estimation(
                update_data=sub, continue_on_batch_error=True, **kw
            )
            err = model.batch_error
            good = np.ones(todo.size, bool)
            if err is not None:
                good[np.asarray(err.failed_scenarios, np.int64)] = False
            r1 = self._residuals(res, m, src, u_rated)
            cols = todo[good]
            d = r1[np.flatnonzero(good)][:, rows] - r0[rows]  # scenario × row
            out[:, cols] = (d / delta[cols, None]).T
            todo = todo[~good]
            if todo.size == 0:
                break
        if todo.size:
            log.warning("K_ii not computable for %d measurement rows: %s", todo.size, rows[todo])
        return out

    def _perturbed(  # noqa: PLR0913
        self,
        m: Measurements,
        vs: np.ndarray,
        pw: np.ndarray,
        src: np.ndarray,
        u_rated: np.ndarray,
        rows: np.ndarray,
        delta: np.ndarray,
    ) -> dict:
        """PGM batch update: scenario k has measurement ``rows[k]`` moved by ``delta[k]``."""
        nv, npw = m.v_pu.size, m.p_kind.size
        t = rows.size
        upd: dict = {}
        u = np.broadcast_to(vs["u_measured"], (t, nv)).copy()
        vr = rows < nv
        u[np.flatnonzero(vr), rows[vr]] += delta[vr] * u_rated[rows[vr]]
        upd[CT.sym_voltage_sensor] = {
            "id": np.broadcast_to(vs["id"], (t, nv)).copy(),
            "u_measured": u,
        }
        if npw:
            p = np.broadcast_to(pw["p_measured"], (t, pw.size)).copy()
            q = np.broadcast_to(pw["q_measured"], (t, pw.size)).copy()
            sgn_m = np.where(m.p_kind == PowerSensorKind.BUS, -1.0, 1.0)
            # share of each PGM row in its measurement (loads split by behaviour)
            var = pw["p_sigma"] ** 2  # share * sigma^2 (see _sensors)
            tot_p = np.bincount(src, weights=var, minlength=npw)
            shares = var / np.where(tot_p[src] > 0, tot_p[src], 1.0)
            for k in np.flatnonzero(~vr):
                j = rows[k] - nv
                arr = p if j < npw else q
                j = j % npw
                cols = np.flatnonzero(src == j)
                arr[k, cols] += delta[k] * sgn_m[j] * shares[cols] * 1e6
            upd[CT.sym_power_sensor] = {
                "id": np.broadcast_to(pw["id"], (t, pw.size)).copy(),
                "p_measured": p,
                "q_measured": q,
            }
        return upd
