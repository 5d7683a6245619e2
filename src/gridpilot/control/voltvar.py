"""Inverter volt-var and volt-watt (IEEE 1547-2018 defaults), optimised reactive set points, tap control.

* :class:`Curve` is a piecewise-linear characteristic; :data:`VOLT_VAR_CAT_B` and
  :data:`VOLT_WATT_CAT_B` are IEEE 1547-2018 Category B defaults (Q in pu of the inverter's
  rating, + injects; P limit in pu of the available power).
* :func:`run_curves` applies the curves to the PV generators of a grid over a batch of steps by
  fixed-point iteration with the twin (Q and the P limit from last iteration's voltages).
* :func:`optimise_q` chooses reactive set points (an LP on dV/dQ sensitivities from the twin)
  that keep voltages in the band with the least total |Q|.
* :func:`tap_control` picks a transformer tap per step that brings the regulated buses into a
  band (line-drop-free OLTC rule), verified by a twin run per distinct tap position.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from gridpilot.errors import InfeasibleError, ValidationError
from gridpilot.model import GenKind, Grid
from gridpilot.model.limits import OperatingLimits
from gridpilot.twin import Injections, TimeSeriesResult, Twin, profiles_for, step_injections

log = logging.getLogger(__name__)


def _voltages(
    twin: Twin, steps: int, inj: Mapping[str, np.ndarray], start: int = 0
) -> TimeSeriesResult:
    """Twin batch of ``steps`` power flows from ``start`` with injections ``inj`` ((T, n) arrays,
    MW/Mvar, keyed as :class:`~gridpilot.twin.Injections` names them; an unknown key is a
    :class:`ValidationError`), keeping bus voltages (pu)."""
    injections = Injections.from_mapping(inj)
    return twin.timeseries(steps, start=start, injections=injections, outputs=("v_pu",))


@dataclass(frozen=True)
class Curve:
    """Piecewise-linear characteristic y(v) through points ``v_pu`` (increasing) and ``y``; flat outside."""

    v_pu: tuple[float, ...]
    y: tuple[float, ...]

    def __post_init__(self) -> None:
        v = np.asarray(self.v_pu, float)
        if v.size < 2 or v.size != len(self.y):
            raise ValidationError(
                f"curve: need >= 2 points and as many y as v, got {len(self.v_pu)} v, {len(self.y)} y"
            )
        if np.any(np.diff(v) < 0):
            raise ValidationError(f"curve: field 'v_pu' must be non-decreasing, got {self.v_pu}")

    def __call__(self, v_pu: np.ndarray) -> np.ndarray:
        """y at the given voltages (same shape)."""
        return np.interp(np.asarray(v_pu, float), self.v_pu, self.y)


VOLT_VAR_CAT_B = Curve((0.92, 0.98, 1.02, 1.08), (0.44, 0.0, 0.0, -0.44))
"""IEEE 1547-2018 category B volt/var default: Q (per unit of rating) against V (pu)."""
VOLT_WATT_CAT_B = Curve((1.06, 1.10), (1.0, 0.2))
"""IEEE 1547-2018 category B volt/watt default: P limit (share of available P) against V (pu)."""


@dataclass(frozen=True)
class InverterSettings:
    """How the PV inverters respond and are iterated.

    ``volt_var``/``volt_watt``: the curves (None: that function off); ``s_rated_factor``:
    inverter rating in MVA as a multiple of the generator's p_mw; ``iterations`` and ``damping``
    of :func:`run_curves`' fixed point; ``delta_mvar``: the reactive step (Mvar) by which
    :func:`optimise_q` measures dV/dQ.
    """

    volt_var: Curve | None = VOLT_VAR_CAT_B
    volt_watt: Curve | None = VOLT_WATT_CAT_B
    s_rated_factor: float = 1.1
    iterations: int = 5
    damping: float = 0.6
    delta_mvar: float = 0.05


def _pv(grid: Grid) -> np.ndarray:
    gk = grid.generator["kind"]
    return np.flatnonzero((gk == GenKind.PV) | (gk == GenKind.OTHER))


@dataclass
class CurveResult:
    """Outcome of :func:`run_curves`: (T, n_gen) Q (Mvar) and P (MW), voltage extremes per step."""

    q_mvar: np.ndarray
    p_mw: np.ndarray
    vmin_pu: np.ndarray
    vmax_pu: np.ndarray
    iterations: int
    curtailed_mwh: float
    meta: dict[str, float] = field(default_factory=dict)


def run_curves(
    grid: Grid,
    steps: int,
    start: int = 0,
    settings: InverterSettings | None = None,
    twin: Twin | None = None,
) -> CurveResult:
    """Apply volt-var/volt-watt to the grid's PV over ``steps`` steps (damped fixed point, twin each pass).

    Curves, rating (``s_rated_factor`` x p_mw) and iteration from ``settings``
    (:class:`InverterSettings`, defaults IEEE 1547 Category B); Q is limited to the rating left
    after P.
    Returns a :class:`CurveResult` with the final Q/P and the voltages they give.
    """
    cfg = settings or InverterSettings()
    volt_var, volt_watt, damping = cfg.volt_var, cfg.volt_watt, cfg.damping
    twin = twin or Twin(grid)
    prof, cols = profiles_for(grid, start + steps)
    inj = step_injections(grid, prof, cols, slice(start, start + steps))
    pv = _pv(grid)
    s_rated = cfg.s_rated_factor * grid.generator["p_mw"][pv]
    p_av = inj["gen_p_mw"][:, pv]
    q = np.zeros_like(p_av)
    p = p_av.copy()
    bpos = grid.bus.position_map(grid.generator["bus"][pv])
    ts = _voltages(twin, steps, inj, start)
    it = 0
    for it in range(1, cfg.iterations + 1):  # noqa: B007 - the count is reported
        v = np.nan_to_num(np.asarray(ts.v_pu, float)[:, bpos], nan=1.0)
        p_new = p_av * (volt_watt(v) if volt_watt is not None else 1.0)
        q_lim = np.sqrt(np.clip(s_rated**2 - p_new**2, 0, None))
        q_new = (
            np.clip(volt_var(v) * s_rated, -q_lim, q_lim)
            if volt_var is not None
            else np.zeros_like(q)
        )
        change = max(
            float(np.max(np.abs(q_new - q), initial=0)), float(np.max(np.abs(p_new - p), initial=0))
        )
        q = q + damping * (q_new - q)
        p = p + damping * (p_new - p)
        gp = inj["gen_p_mw"].copy()
        gq = inj.get("gen_q_mvar", np.zeros_like(gp)).copy()
        gp[:, pv] = p
        gq[:, pv] = q
        ts = _voltages(twin, steps, {**inj, "gen_p_mw": gp, "gen_q_mvar": gq}, start)
        if change < 1e-4:
            break
    dt = float(ts.meta.get("step_h", 0.25))
    return CurveResult(q, p, ts.vmin_pu, ts.vmax_pu, it, float(np.sum(p_av - p) * dt))


#: volt/var's default band: tighter than the statutory 0.95..1.05 pu, so that inverters act first
VOLTVAR_BAND = OperatingLimits(0.97, 1.03)


def optimise_q(  # noqa: PLR0913
    grid: Grid,
    step: int = 0,
    vmin_pu: float | None = None,
    vmax_pu: float | None = None,
    settings: InverterSettings | None = None,
    twin: Twin | None = None,
    limits: OperatingLimits | None = None,
) -> dict[str, np.ndarray | float]:
    """Reactive set points of the PV inverters at one step: least total |Q| keeping every bus in the band.

    dV/dQ from a twin batch (one perturbed scenario per inverter), an LP with HiGHS, then a
    twin check. Returns ``q_mvar`` (per PV generator), ``v_before``/``v_after`` (per bus) and
    ``vmin``/``vmax`` after. Raises :class:`InfeasibleError` naming the bus that cannot be held.
    The band (pu) is ``limits`` (shared :class:`OperatingLimits`, default :data:`VOLTVAR_BAND`);
    ``vmin_pu``/``vmax_pu``, the old spelling, override its ends.
    """
    from gridpilot.lp import LP

    band = OperatingLimits.of(limits or VOLTVAR_BAND, vmin_pu=vmin_pu, vmax_pu=vmax_pu)
    vmin_pu, vmax_pu = band.v_min_pu, band.v_max_pu

    cfg = settings or InverterSettings()
    delta_mvar = cfg.delta_mvar
    twin = twin or Twin(grid)
    prof, cols = profiles_for(grid, step + 1)
    inj = step_injections(grid, prof, cols, slice(step, step + 1))
    pv = _pv(grid)
    n = pv.size
    if n == 0:
        raise ValidationError("optimise_q: the grid has no PV inverters")
    rep = {k: np.repeat(v, n + 1, axis=0) for k, v in inj.items()}
    gq = rep.get("gen_q_mvar", np.zeros_like(rep["gen_p_mw"])).copy()
    gq[np.arange(1, n + 1), pv] += delta_mvar
    rep["gen_q_mvar"] = gq
    ts = _voltages(twin, n + 1, rep)
    v = np.asarray(ts.v_pu, float)
    sens = (v[1:] - v[0]).T / delta_mvar  # (n_bus, n)
    live = v[0] > 0.5
    p = inj["gen_p_mw"][0, pv]
    qlim = np.sqrt(np.clip((cfg.s_rated_factor * grid.generator["p_mw"][pv]) ** 2 - p**2, 0, None))
    lp = LP(solver="simplex")
    qp = lp.var("qp", (n,), 0.0, qlim, 1.0)
    qn = lp.var("qn", (n,), 0.0, qlim, 1.0)
    rows = np.flatnonzero(live)
    a = sens[rows]
    r_, c_ = np.nonzero(np.abs(a) > 1e-7)
    lp.rows_add(
        "voltage band",
        rows.size,
        np.concatenate([r_, r_]),
        np.concatenate([qp[c_], qn[c_]]),
        np.concatenate([a[r_, c_], -a[r_, c_]]),
        vmin_pu - v[0, rows],
        vmax_pu - v[0, rows],
    )
    try:
        x, _ = lp.solve(30.0)
    except InfeasibleError as exc:
        log.info("optimise_q: the LP is infeasible at step %d: %s", step, exc)
        worst = rows[int(np.argmax(np.maximum(v[0, rows] - vmax_pu, vmin_pu - v[0, rows])))]
        raise InfeasibleError(
            f"optimise_q: reactive power alone cannot hold [{vmin_pu}, {vmax_pu}] pu at step {step}",
            binding=f"voltage band at bus {int(grid.bus.ids[worst])}",
        ) from exc
    q = np.zeros(len(grid.generator))
    q[pv] = lp.value(x, "qp") - lp.value(x, "qn")
    gq = inj.get("gen_q_mvar", np.zeros((1, len(grid.generator))))[0] + q
    now = {k: inj[k][0] for k in ("load_p_mw", "load_q_mvar", "gen_p_mw")}  # storage: the grid's
    after = twin.powerflow(Injections.from_mapping(now, gen_q_mvar=gq))
    return {
        "q_mvar": q,
        "v_before": v[0],
        "v_after": after.v_pu,
        "vmin": after.vmin_pu,
        "vmax": after.vmax_pu,
    }


def tap_control(
    grid: Grid,
    steps: int,
    start: int = 0,
    trafo_id: int | None = None,
    band_pu: tuple[float, float] = (0.97, 1.03),
    buses: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """OLTC set points per step: the tap that centres the regulated buses (default: all energised) in ``band_pu``.

    Taps are chosen from the voltage range seen at the present tap and the tap step; each
    distinct tap position is then verified with a twin run. Returns ``tap`` (per step),
    ``vmin_before/after``, ``vmax_before/after`` (per step, pu).
    """
    tr = grid.transformer
    if len(tr) == 0:
        raise ValidationError("tap_control: the grid has no transformer")
    pos = 0 if trafo_id is None else int(tr.index_of(trafo_id)[0])
    step_pct = float(tr["tap_step_percent"][pos])
    if step_pct <= 0 or tr["tap_max"][pos] == tr["tap_min"][pos]:
        raise ValidationError(f"tap_control: transformer {int(tr.ids[pos])} has no tap range")
    twin = Twin(grid)
    ts = twin.timeseries(steps, start=start, outputs=("v_pu",))
    v = np.asarray(ts.v_pu, float)
    sel = np.ones(v.shape[1], bool) if buses is None else np.isin(grid.bus.ids, buses)
    vv = np.where((v > 0.5) & sel[None, :], v, np.nan)
    lo, hi = np.nanmin(vv, axis=1), np.nanmax(vv, axis=1)
    mid = 0.5 * (band_pu[0] + band_pu[1])
    # HV-side tap: +1 tap lowers the LV voltage by step_pct
    sign = 1.0 if int(tr["tap_side"][pos]) == 0 else -1.0
    now = int(tr["tap_pos"][pos])
    move = np.round(sign * (0.5 * (lo + hi) - mid) / (step_pct / 100.0))
    tap = np.clip(now + move, tr["tap_min"][pos], tr["tap_max"][pos]).astype(np.int64)
    vmin_after = np.empty(steps)
    vmax_after = np.empty(steps)
    for tp in np.unique(tap):
        rows = np.flatnonzero(tap == tp)
        g2 = grid.copy()
        # parallel transformers on the same buses move together
        same = (tr["hv_bus"] == tr["hv_bus"][pos]) | (tr["lv_bus"] == tr["lv_bus"][pos])
        g2.transformer["tap_pos"][same] = tp
        tw2 = Twin(g2)
        ts2 = tw2.timeseries(steps, start=start, outputs=())
        vmin_after[rows] = ts2.vmin_pu[rows]
        vmax_after[rows] = ts2.vmax_pu[rows]
    return {
        "tap": tap,
        "vmin_before": ts.vmin_pu,
        "vmax_before": ts.vmax_pu,
        "vmin_after": vmin_after,
        "vmax_after": vmax_after,
    }
