"""The true state, the sensors' view of it, and the estimate's error against it.

The truth is the unbalanced twin's power flow with every load following the grid's load
profile (interpolated between its points) times a per-customer factor (log-normal,
``load_sigma``; an AR(1) process in time with correlation ``load_rho`` per 15 min), so that
the profile's pseudo-measurements are off by what a real profile is off by, and the loads
move during a smart meter's delay. Regulator taps and capacitor states are settled by the
twin's static controls at the profile's level, then held (they are known to the estimator).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from gridpilot.errors import ValidationError
from gridpilot.estimation.unbalanced.lnr import detectability, estimate_robust
from gridpilot.estimation.unbalanced.measurements import MAG, UnbalancedMeasurements
from gridpilot.estimation.unbalanced.model import (
    LinearNetwork,
    SeNetwork,
    build_linear_network,
)
from gridpilot.estimation.unbalanced.sensors import SensorSpec, SensorTruth, build_measurements
from gridpilot.estimation.unbalanced.sparse import build_network, check_network_size
from gridpilot.estimation.unbalanced.sparse_wls import estimator_for
from gridpilot.estimation.unbalanced.wls import UnbalancedEstimate
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.inverters import warn_inverters_ignored
from gridpilot.twin.unbalanced.loads import branch_voltage, load_currents

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TruthOptions:
    """When (hour of day), how far each customer strays from the profile, and the seed."""

    hour: float = 7.5
    load_sigma: float = 0.25
    load_rho: float = 0.9
    seed: int = 0

    def check(self) -> None:
        """Raise :class:`ValidationError` naming a bad field."""
        if not 0.0 <= self.hour < 24.0:
            raise ValidationError(f"truth: field 'hour' must be within 0–24, got {self.hour!r}")
        if not 0.0 <= self.load_sigma <= 2.0:
            raise ValidationError(
                f"truth: field 'load_sigma' must be within 0–2, got {self.load_sigma!r}"
            )
        if not 0.0 <= self.load_rho <= 1.0:
            raise ValidationError(
                f"truth: field 'load_rho' must be within 0–1, got {self.load_rho!r}"
            )


@dataclass
class TrueState:
    """The truth at the estimate's time and at the meters' reading time."""

    v_now: np.ndarray
    v_meter: np.ndarray
    truth: SensorTruth
    taps: dict[str, float] = field(default_factory=dict)
    s_now_va: np.ndarray | None = None  # the load branches' powers now (VA)


def _profile(grid: ThreePhaseGrid, hours: np.ndarray) -> np.ndarray:
    """Per load (rows) and time (cols): the load's profile interpolated between its points
    (an OpenDSS shape of fixed interval holds hour k·interval at point k)."""
    smooth = np.ones((len(grid.loads), hours.size))
    default = "default" if "default" in grid.loadshapes else None
    for i, ld in enumerate(grid.loads):
        name = ld.daily or ld.yearly or default
        if ld.status == "fixed" or name is None or name not in grid.loadshapes:
            continue
        shp = grid.loadshapes[name]
        n = len(shp.mult)
        if shp.interval_h > 0 and n:
            span = n * shp.interval_h
            hk = np.arange(1, n + 1) * shp.interval_h
            smooth[i] = np.interp(hours % span, hk, shp.mult, period=span)
        else:
            smooth[i] = shp.at(hours)
    return smooth


def true_state(twin: UnbalancedTwin, delay_s: float, opts: TruthOptions) -> TrueState:
    """Solve the truth now and ``delay_s`` earlier (twin taps settled, then held); the
    twin is left at those taps, so that :func:`build_linear_network` matches it."""
    opts.check()
    g = twin.grid
    hours = np.array([opts.hour - delay_s / 3600.0, opts.hour])
    smooth = _profile(g, hours)
    rng = np.random.default_rng(opts.seed)
    n_loads = len(g.loads)
    rho = opts.load_rho ** (delay_s / 900.0)
    e0 = rng.standard_normal(n_loads)
    e1 = rho * e0 + np.sqrt(max(1.0 - rho * rho, 0.0)) * rng.standard_normal(n_loads)
    sig = opts.load_sigma
    factor = np.exp(sig * np.stack([e0, e1], axis=1) - sig * sig / 2.0) * smooth
    lb = twin.loads
    s = lb.s_va[:, None] * factor[lb.load_of]
    twin.powerflow(control_mode="static", load_mult=float(np.mean(smooth[:, 1])))
    v, _ = twin.solve(s)
    i_load = load_currents(lb, branch_voltage(lb, v), s)
    lin_src = twin.net.terminal_idx([g.source.terminal])
    src = np.array(sorted({int(x) for x in lin_src if x >= 0}), np.int64)
    z = [np.concatenate([i_load[:, k], v[src, k]]) for k in (0, 1)]
    s_prof = lb.s_va * smooth[lb.load_of, 1]  # the operator interpolates the hourly profile
    ratio = smooth[lb.load_of, 1] / np.maximum(smooth[lb.load_of, 0], 1e-9)
    truth = SensorTruth(z[1], z[0], s_prof, ratio)
    return TrueState(v[:, 1], v[:, 0], truth, twin.taps(), s[:, 1])


def state_errors(est: UnbalancedEstimate, v_true: np.ndarray, src0: int) -> dict[str, Any]:
    """|V| error (pu) and angle error (degrees, both referred to the source bus's first
    phase) per node-phase, summarised: max, mean and the worst node-phase."""
    return voltage_errors(est.v, v_true, est.vbase_v, est.nodes, src0)


def voltage_errors(
    v_est: np.ndarray, v_true: np.ndarray, vbase_v: np.ndarray, nodes: list[tuple[str, int]],
    src0: int,
) -> dict[str, Any]:  # fmt: skip
    """As :func:`state_errors` for any complex voltages ``v_est`` (V), each referred to its
    own angle at node ``src0``."""
    ve = v_est * np.exp(-1j * np.angle(v_est[src0]))
    vt = v_true * np.exp(-1j * np.angle(v_true[src0]))
    dv = np.abs(np.abs(ve) - np.abs(vt)) / vbase_v
    da = np.abs(np.angle(ve * np.conj(vt), deg=True))
    worst = int(np.argmax(dv))
    return {
        "v_err_max_pu": float(dv.max()),
        "v_err_mean_pu": float(dv.mean()),
        "angle_err_max_deg": float(da.max()),
        "angle_err_mean_deg": float(da.mean()),
        "worst_node": f"{nodes[worst][0]}.{nodes[worst][1]}",
    }


def baseline_powerflow(
    twin: UnbalancedTwin, lin: SeNetwork, m: UnbalancedMeasurements, ts: TrueState
) -> np.ndarray:
    """The node voltages (V) an operator without an estimator gets: the twin's power flow
    with each metered load at its meter's P/Q (as read: delayed, errors and all) and every
    other load at its profile. The reference the estimate is compared with."""
    s = ts.truth.s_profile_va.copy()
    branch = lin.load_of_rows(m.w)
    for i, lab in enumerate(m.labels):
        if m.source[i] != "meter" or m.kind[i] == MAG:
            continue
        j = int(branch[i])
        val = m.value[i] * 1e3
        s[j] = complex(val, s[j].imag) if lab.startswith("meter P") else complex(s[j].real, val)
    v, _ = twin.solve(s[:, None])
    return v[:, 0]


@dataclass(frozen=True)
class GrossError:
    """A gross error on the row ``label``: the reading times ``factor`` (a wrong meter
    multiplier) plus ``sigmas`` × its σ."""

    label: str
    sigmas: float = 0.0
    factor: float = 1.0


def default_gross_errors(m: UnbalancedMeasurements) -> list[GrossError]:
    """A head P (+25 σ), a regulator |V| (+15 σ) and two smart meters: the P of the largest
    metered load read with a wrong multiplier (× 5, a forgotten CT ratio; a smart meter's P is nearly critical,
    see :func:`detectability`, so a few σ would go unseen) and the |V| of the second
    (-20 σ; another customer) — the ones the tests and the bench corrupt."""
    out = [GrossError(next(x for x in m.labels if x.startswith("head P")), sigmas=25.0)]
    reg = [x for x in m.labels if x.startswith("reg V")]
    if reg:
        out.append(GrossError(reg[0], sigmas=15.0))
    meters = [i for i, x in enumerate(m.labels) if x.startswith("meter P")]
    meters.sort(key=lambda i: -abs(m.value[i]))
    if meters:
        out.append(GrossError(m.labels[meters[0]], factor=5.0))
        load = m.labels[meters[0]].split(" ")[2]
        other = [i for i in meters if m.labels[i].split(" ")[2] != load]
        if other:
            out.append(GrossError(m.labels[other[0]].replace("meter P", "meter V"), sigmas=-20.0))
    return out


def with_gross_errors(
    m: UnbalancedMeasurements, errors: list[GrossError]
) -> UnbalancedMeasurements:
    """A copy of ``m`` with the gross errors added (KeyError naming a missing label)."""
    out = m.copy()
    for e in errors:
        i = out.index(e.label)
        out.value[i] = out.value[i] * e.factor + e.sigmas * out.sigma[i]
    return out


@dataclass
class Case:
    """One study case: its name, the sensors' spec and the gross errors injected."""

    name: str
    spec: SensorSpec
    gross: bool = False


def default_cases(spec: SensorSpec) -> list[Case]:
    """Fresh and delayed meters, each clean and with gross errors; delayed meters aligned to
    the estimate's time (P/Q by the profile's ratio, σ widened for the customers' own
    drift: 25 % of |S| on P/Q — twice the truth's 11 % per 15 min, a conservative choice —
    and its effect through the network on |V|)."""
    fresh = replace(spec, meter_delay_s=0.0)
    widened = replace(spec, delay_sigma_frac=max(spec.delay_sigma_frac, 0.25), align_delayed=True)
    return [
        Case("fresh", fresh),
        Case("fresh+bad", fresh, gross=True),
        Case("delayed", spec),
        Case("delayed aligned", widened),
        Case("delayed+bad", widened, gross=True),
    ]


def run_case(
    grid: ThreePhaseGrid, case: Case, truth_opts: TruthOptions, per_node: bool = False
) -> dict[str, Any]:
    """Truth, sensors, robust estimate and errors of one case (one JSON-ready row; with
    ``per_node`` also ``per_node``: one dict per node-phase, see :func:`node_errors`)."""
    warn_inverters_ignored(grid, "the state-estimation study's truth")
    twin = UnbalancedTwin(grid)
    check_network_size(twin)  # before the truth's power flow
    ts = true_state(twin, case.spec.meter_delay_s, truth_opts)
    lin = build_network(twin)
    m = build_measurements(lin, ts.truth, case.spec)
    injected = default_gross_errors(m) if case.gross else []
    m_used = with_gross_errors(m, injected)
    se = estimator_for(lin)
    t0 = time.perf_counter()
    rep = estimate_robust(se, m_used)
    robust_ms = (time.perf_counter() - t0) * 1e3
    res = rep.result
    det = detectability(rep.first)
    labels = m_used.labels
    pf = voltage_errors(baseline_powerflow(twin, lin, m_used, ts), ts.v_now, lin.vbase_v,
                        lin.nodes, int(lin.src[0]))  # fmt: skip
    row: dict[str, Any] = {
        "grid": grid.name,
        "case": case.name,
        "hour": truth_opts.hour,
        "meter_delay_s": case.spec.meter_delay_s,
        "meter_coverage": case.spec.meter_coverage,
        "node_phases": len(lin.nodes),
        "model": "dense" if isinstance(lin, LinearNetwork) else "sparse",
        "states_real": se.n_free,
        "measurements": m_used.count_by_source(),
        **state_errors(res, ts.v_now, int(lin.src[0])),
        "first_v_err_max_pu": state_errors(rep.first, ts.v_now, int(lin.src[0]))["v_err_max_pu"],
        "pf_baseline_v_err_max_pu": pf["v_err_max_pu"],
        "pf_baseline_v_err_mean_pu": pf["v_err_mean_pu"],
        "iterations": res.iterations,
        "estimate_ms": round(rep.first.calc_ms, 3),
        "robust_ms": round(robust_ms, 3),
        "chi2": round(res.chi2, 2),
        "chi2_limit": round(res.chi2_limit, 2),
        "injected": [e.label for e in injected],
        "removed": rep.removed_labels,
        "injected_removed": (
            all(e.label in rep.removed_labels for e in injected) if injected else None
        ),
        "critical": [labels[i] for i in np.flatnonzero(~np.isfinite(det))],
        "detectable_head_p_kw": _min_det(det, labels, "head P"),
        "detectable_meter_p_kw_median": _min_det(det, labels, "meter P", np.median),
        "detectable_meter_v_pu_median": _min_det(det, labels, "meter V", np.median),
        "note": rep.note,
    }
    if per_node:
        row["per_node"] = node_errors(res, ts.v_now, int(lin.src[0]))
    return row


def node_errors(est: UnbalancedEstimate, v_true: np.ndarray, src0: int) -> list[dict[str, Any]]:
    """Per node-phase: bus, phase, true and estimated |V| (pu), their difference (pu) and
    the angle error (degrees; both referred to the source bus's first phase)."""
    ve = est.v * np.exp(-1j * np.angle(est.v[src0]))
    vt = v_true * np.exp(-1j * np.angle(v_true[src0]))
    vt_pu = np.abs(vt) / est.vbase_v
    ve_pu = np.abs(ve) / est.vbase_v
    da = np.angle(ve * np.conj(vt), deg=True)
    return [
        {"bus": b, "phase": k, "v_true_pu": float(vt_pu[i]), "v_est_pu": float(ve_pu[i]),
         "v_err_pu": float(ve_pu[i] - vt_pu[i]), "angle_err_deg": float(da[i])}
        for i, (b, k) in enumerate(est.nodes)
    ]  # fmt: skip


def _min_det(det: np.ndarray, labels: list[str], prefix: str, how: Any = np.min) -> float | None:
    sel = np.array([x.startswith(prefix) for x in labels]) & np.isfinite(det)
    return round(float(how(det[sel])), 4) if sel.any() else None


def linear_network_for(grid: ThreePhaseGrid) -> tuple[UnbalancedTwin, LinearNetwork]:
    """A twin of ``grid`` at its statically settled taps and the linear model there."""
    twin = UnbalancedTwin(grid)
    twin.powerflow(control_mode="static")
    return twin, build_linear_network(twin)
