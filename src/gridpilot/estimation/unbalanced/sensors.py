"""A realistic sensor set for a three-phase feeder, with documented accuracies and a seed.

* **Feeder head (SCADA, fresh):** per phase |V| at the source bus (σ = 0.2 % of nominal)
  and P, Q out of the source (σ = 1 % of the reading, at least 1 kW/kvar).
* **Regulators (fresh):** per phase of each regulator's monitored winding, |V| (σ = 0.5 %,
  the control PT) and |I| (σ = 1 % of the reading, at least 0.5 A, the CT). The tap
  positions are known from the same controls (the model is built at them).
* **Smart meters** on a share ``meter_coverage`` of the loads (chosen with ``seed``): per
  load phase, |V| across the load (σ = 0.5 %), P and Q (σ = 2 % of the reading, at least
  50 W/var), read ``meter_delay_s`` before the estimate's time (AMI backhaul delay). A
  delayed reading's σ can be widened for the load's drift during the delay
  (``delay_sigma_frac`` of |S|, ``delay_v_sigma_pu``).
* **Pseudo-measurements** on the unmetered loads: P and Q per phase from the load profile
  (nominal power × the profile's value at that hour), σ = ``pseudo_sigma_frac`` of |S|.
* **Zero injections** at every node-phase without a load: exact, by construction of the
  state (see :mod:`.model`); they are not rows here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from gridpilot.errors import ValidationError
from gridpilot.estimation.unbalanced.measurements import MAG, P, Q, UnbalancedMeasurements, _Rows
from gridpilot.estimation.unbalanced.model import SeNetwork

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SensorSpec:
    """Which sensors exist and how accurate they are (σ of a Gaussian error)."""

    head_v_sigma_pu: float = 0.002
    head_pq_sigma_frac: float = 0.01
    head_pq_floor_kw: float = 1.0
    reg_v_sigma_pu: float = 0.005
    reg_i_sigma_frac: float = 0.01
    reg_i_floor_a: float = 0.5
    meter_coverage: float = 0.7
    meter_v_sigma_pu: float = 0.005
    meter_pq_sigma_frac: float = 0.02
    meter_pq_floor_kw: float = 0.05
    meter_delay_s: float = 900.0
    delay_sigma_frac: float = 0.0
    delay_v_sigma_pu: float = 0.0
    align_delayed: bool = False
    pseudo_sigma_frac: float = 0.5
    pseudo: bool = True
    regulators: bool = True
    noise: bool = True
    seed: int = 0

    def check(self) -> None:
        """Raise :class:`ValidationError` naming the first bad field and its value."""
        if not 0.0 <= self.meter_coverage <= 1.0:
            raise ValidationError(
                f"sensors: field 'meter_coverage' must be within 0–1, got {self.meter_coverage!r}"
            )
        if self.meter_delay_s < 0:
            raise ValidationError(
                f"sensors: field 'meter_delay_s' must be ≥ 0 s, got {self.meter_delay_s!r}"
            )
        for name in ("head_v_sigma_pu", "head_pq_sigma_frac", "reg_v_sigma_pu",
                     "reg_i_sigma_frac", "meter_v_sigma_pu", "meter_pq_sigma_frac",
                     "pseudo_sigma_frac"):  # fmt: skip
            val = getattr(self, name)
            if not (np.isfinite(val) and val > 0):
                raise ValidationError(f"sensors: field {name!r} must be > 0, got {val!r}")


@dataclass
class SensorTruth:
    """What the sensors see: the true state now (``z_now``), when the meters read
    (``z_meter``, ``meter_delay_s`` earlier) and the loads' profile powers (VA per load
    branch) for the pseudo-measurements."""

    z_now: np.ndarray
    z_meter: np.ndarray
    s_profile_va: np.ndarray
    profile_ratio: np.ndarray | None = None  # per load branch: profile now / at the reading


def metered_loads(lin: SeNetwork, spec: SensorSpec) -> np.ndarray:
    """Grid load positions that carry a smart meter (``meter_coverage`` of them, by seed)."""
    loads = np.unique(lin.load_of)
    k = round(spec.meter_coverage * loads.size)
    rng = np.random.default_rng(spec.seed)
    return np.sort(rng.choice(loads, size=k, replace=False)) if k else np.zeros(0, np.int64)


def _head(rows: _Rows, lin: SeNetwork) -> None:
    for k, node in enumerate(lin.src):
        bus, ph = lin.nodes[node]
        e = lin.src_v_row(k)
        rows.add(MAG, e, None, lin.vbase_v[node], f"head V {bus}.{ph}", "head")
        for kind, q in ((P, "P"), (Q, "Q")):
            rows.add(kind, e, lin.src_i_row(k), 1e3, f"head {q} {bus}.{ph}", "head")


def _regs(rows: _Rows, lin: SeNetwork) -> None:
    for r in lin.regs:
        rows.add(MAG, r.v_row, None, r.vbase_v, f"reg V {r.name}.{r.phase}", "reg")
        rows.add(MAG, r.i_row, None, 1.0, f"reg I {r.name}.{r.phase}", "reg")


def _loads(rows: _Rows, lin: SeNetwork, metered: np.ndarray, spec: SensorSpec) -> None:
    vrows = lin.branch_v_rows()
    meter = np.isin(lin.load_of, metered)
    for j in range(lin.m):
        e = lin.load_row(j)
        name = lin.load_names[j]
        end = lin.nodes[lin.load_a[j]]
        tag = f"{name} {end[0]}.{end[1]}"
        if meter[j]:
            delayed = spec.meter_delay_s > 0
            rows.add(
                MAG, vrows[j], None, lin.load_vbase_v[j], f"meter V {tag}", "meter", delayed=delayed
            )
            rows.add(P, vrows[j], e, 1e3, f"meter P {tag}", "meter", delayed=delayed)
            rows.add(Q, vrows[j], e, 1e3, f"meter Q {tag}", "meter", delayed=delayed)
        elif spec.pseudo:
            rows.add(P, vrows[j], e, 1e3, f"pseudo P {tag}", "pseudo")
            rows.add(Q, vrows[j], e, 1e3, f"pseudo Q {tag}", "pseudo")


def _sigmas(m: UnbalancedMeasurements, spec: SensorSpec, true: np.ndarray,
            pseudo_mag_kva: np.ndarray) -> np.ndarray:  # fmt: skip
    """σ of each row from the spec and the reading's size."""
    src = np.array(m.source)
    mag = m.kind == MAG
    is_v = np.array([lab.split(" ")[1] == "V" for lab in m.labels])
    sig = np.zeros(m.size)
    a = np.abs(true)
    sig[(src == "head") & mag] = spec.head_v_sigma_pu
    pq = (src == "head") & ~mag
    sig[pq] = np.maximum(spec.head_pq_sigma_frac * a[pq], spec.head_pq_floor_kw)
    sig[(src == "reg") & is_v] = spec.reg_v_sigma_pu
    ri = (src == "reg") & ~is_v
    sig[ri] = np.maximum(spec.reg_i_sigma_frac * a[ri], spec.reg_i_floor_a)
    mv = (src == "meter") & mag
    sig[mv] = np.hypot(spec.meter_v_sigma_pu, spec.delay_v_sigma_pu if spec.meter_delay_s else 0)
    mp = (src == "meter") & ~mag
    base = np.maximum(spec.meter_pq_sigma_frac * a[mp], spec.meter_pq_floor_kw)
    drift = spec.delay_sigma_frac * pseudo_mag_kva[mp] if spec.meter_delay_s else 0.0
    sig[mp] = np.hypot(base, drift)
    ps = src == "pseudo"
    sig[ps] = np.maximum(spec.pseudo_sigma_frac * pseudo_mag_kva[ps], 1e-3)
    return sig


def _widen_delayed_v(
    m: UnbalancedMeasurements, lin: SeNetwork, spec: SensorSpec, truth: SensorTruth
) -> None:
    """Add to each delayed |V| row's σ the spread of its voltage over the delay: every
    load's current moves by ``delay_sigma_frac`` of its profile current (independently),
    mapped through the row's sensitivity to each load current (the linear model)."""
    vbr = np.abs(lin.branch_voltages(truth.z_now))
    di = spec.delay_sigma_frac * np.abs(truth.s_profile_va) / np.maximum(vbr, 1.0)
    rows = np.flatnonzero(m.delayed & (m.kind == MAG))
    drift_v = np.sqrt((np.abs(lin.load_columns(m.u[rows])) ** 2) @ (di**2))
    m.sigma[rows] = np.hypot(m.sigma[rows], drift_v / m.scale[rows])


def _align_delayed(
    m: UnbalancedMeasurements, lin: SeNetwork, s_prof: np.ndarray, ratio: np.ndarray,
    j: np.ndarray,
) -> None:  # fmt: skip
    """Move delayed readings to the estimate's time by the profile's change: P/Q times the
    profile's ratio; |V| by the change the model gives when every load moves by its ratio
    (from the state at the profile's powers before the delay)."""
    rows = m.delayed & (m.kind != MAG)
    m.value[rows] *= ratio[j[rows]]
    z0 = lin.nominal_state(s_prof / ratio)
    z1 = z0.copy()
    z1[: lin.m] *= ratio
    vr = np.flatnonzero(m.delayed & (m.kind == MAG))
    m.value[vr] += (np.abs(m.u[vr] @ lin.full(z1)) - np.abs(m.u[vr] @ lin.full(z0))) / m.scale[vr]


def build_measurements(
    lin: SeNetwork, truth: SensorTruth, spec: SensorSpec = SensorSpec()
) -> UnbalancedMeasurements:
    """The sensor set of ``spec`` on ``lin``, with values from ``truth`` (Gaussian errors of
    the documented σ, drawn with ``spec.seed``, unless ``spec.noise`` is off). Values: V in
    pu, I in A, P/Q in kW/kvar (consumption positive at loads, out of the source at the
    head); pseudo-measurements hold the profile power."""
    spec.check()
    rows = _Rows()
    _head(rows, lin)
    if spec.regulators:
        _regs(rows, lin)
    metered = metered_loads(lin, spec)
    _loads(rows, lin, metered, spec)
    m = rows.build(lin.width)
    true = np.where(m.delayed, 0.0, m.evaluate(lin.full(truth.z_now)))
    if m.delayed.any():
        true[m.delayed] = m.subset(m.delayed).evaluate(lin.full(truth.z_meter))
    src = np.array(m.source)
    j = lin.load_of_rows(m.w)  # the load branch of a load P/Q row
    s_prof = truth.s_profile_va[j] / 1e3
    prof_mag = np.abs(s_prof)
    pseudo = src == "pseudo"
    true[pseudo] = np.where(m.kind[pseudo] == P, s_prof[pseudo].real, s_prof[pseudo].imag)
    instrument = replace(spec, delay_sigma_frac=0.0, delay_v_sigma_pu=0.0)
    rng = np.random.default_rng(spec.seed + 1)
    noise = rng.standard_normal(m.size) * _sigmas(m, instrument, true, prof_mag)
    noise[pseudo] = 0.0  # a pseudo-measurement's error is the profile's, already in it
    m.value = true + (noise if spec.noise else 0.0)
    m.sigma = _sigmas(m, spec, true, prof_mag)  # what the estimator assumes
    if spec.meter_delay_s and spec.delay_sigma_frac > 0:
        _widen_delayed_v(m, lin, spec, truth)
    if spec.meter_delay_s and spec.align_delayed and truth.profile_ratio is not None:
        _align_delayed(m, lin, truth.s_profile_va, truth.profile_ratio, j)
    mpq = (src == "meter") & (m.kind != MAG)
    if spec.pseudo:  # a rejected meter P/Q falls back to the profile, as unmetered loads have
        prof = np.where(m.kind == P, s_prof.real, s_prof.imag)
        m.fallback[mpq, 0] = prof[mpq]
        m.fallback[mpq, 1] = np.maximum(spec.pseudo_sigma_frac * prof_mag[mpq], 1e-3)
    log.debug("%s: %s", lin.grid, m.count_by_source())
    return m
