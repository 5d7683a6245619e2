"""Anomaly detection at the meter edge: energy theft and false data injection (FDI).

Edge detectors are vectorised over meters but each meter's state is a handful of numbers, so
the same logic fits in a meter or its gateway:

* :class:`TheftDetector` (per meter: baseline, cusum, day count: 3 floats). Once a day the
  meter's reported import energy ``E`` is compared with its own baseline (the mean of
  ``log(E + 0.5 kWh)`` over a learning period; afterwards a slow EWMA, frozen while alarmed),
  minus the median of the same statistic over its neighbours (the meters behind the same
  gateway: this removes weather and seasonal changes common to all). A one-sided CUSUM on the
  drop raises the alarm: ``S = max(0, S - x - k)``, alarm when ``S > h``.
* :class:`FdiDetector` (per meter: voltage offset to neighbours plus yesterday's interval
  powers, about 100 floats). Two checks a day: *cross-device* — the mean deviation of the
  meter's voltage from the neighbours' median, beyond its own learned offset (meters behind one
  transformer see nearly the same voltage, so a forged voltage stands out even when it is small
  enough to pass the state estimator's residual test); *temporal* — a replay of earlier
  readings makes today's interval powers nearly equal to yesterday's, whereas real households
  differ a lot from day to day (mean |log ratio| over the intervals with consumption).
* :func:`feeder_balance`: feeder-head (or lateral-head) energy minus the meters behind it minus
  estimated losses: energy that nobody reports, which localises theft to a feeder section.
* :func:`threshold_baseline`: the plain rule to compare with (daily energy below a fixed share of
  the meter's own mean, or voltage outside a fixed band).

Thresholds come from :func:`calibrate_threshold` on a period without known attacks, at the
wanted false-positive rate per meter-day.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridpilot.errors import Issue, ValidationError


def group_median(x: np.ndarray, group: np.ndarray, n_groups: int | None = None) -> np.ndarray:
    """Per element, the median of ``x`` over its group (same length as ``x``). NaN are ignored."""
    x = np.asarray(x, np.float64)
    group = np.asarray(group, np.int64)
    if x.shape != group.shape:
        raise ValidationError(
            issues=[Issue("group_median", "group", f"shape {group.shape} != {x.shape}")]
        )
    order = np.lexsort((x, group))
    gs = group[order]
    xs = x[order]
    ok = ~np.isnan(xs)
    n = n_groups if n_groups is not None else (int(group.max()) + 1 if group.size else 0)
    cnt = np.bincount(gs[ok], minlength=n)
    start = np.searchsorted(gs, np.arange(n))  # NaN sort last within a group
    lo = start + np.maximum(cnt - 1, 0) // 2
    hi = start + cnt // 2
    lo = np.minimum(lo, xs.size - 1)
    hi = np.minimum(hi, xs.size - 1)
    med = np.where(cnt > 0, 0.5 * (xs[lo] + xs[hi]), np.nan)
    return med[group]


def calibrate_threshold(scores: np.ndarray, fpr: float) -> float:
    """Threshold such that a fraction ``fpr`` of ``scores`` (from a period without attacks) exceed it."""
    s = np.asarray(scores, np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        raise ValidationError(issues=[Issue("calibration", "scores", "no finite scores")])
    return float(np.quantile(s, 1.0 - fpr))


@dataclass
class TheftDetector:
    """Per-meter edge detector of energy theft (see the module docstring).

    ``group``: each meter's neighbourhood (e.g. its gateway or transformer); ``k``: CUSUM
    allowance (log units, 0.2 ~ an 18 % drop is tolerated); ``h``: alarm threshold;
    ``learn_days``: days that only build the baseline; ``alpha``: EWMA weight afterwards.
    """

    group: np.ndarray
    k: float = 0.2
    h: float = 0.5
    learn_days: int = 7
    alpha: float = 0.05
    offset_kwh: float = 0.5

    def __post_init__(self) -> None:
        self.group = np.asarray(self.group, np.int64)
        n = self.group.size
        self.baseline = np.zeros(n)
        self.cusum = np.zeros(n)
        self.days = 0
        self._n_groups = int(self.group.max()) + 1 if n else 0

    @property
    def state_floats_per_meter(self) -> int:
        """Numbers a meter keeps (baseline, cusum, plus the shared day counter)."""
        return 3

    def update_day(self, e_import_kwh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feed one day's reported import energy per meter (kWh, NaN = no data).

        Returns ``(score, alarm)``: the CUSUM value after the day (0 while learning) and
        ``score > h``.
        """
        e = np.asarray(e_import_kwh, np.float64)
        if e.shape != self.group.shape:
            raise ValidationError(
                issues=[
                    Issue(
                        "theft detector",
                        "e_import_kwh",
                        f"expected {self.group.size} values, got {e.shape}",
                    )
                ]
            )
        le = np.log(np.maximum(e, 0.0) + self.offset_kwh)
        d = self.days
        self.days += 1
        if d < self.learn_days:
            ok = np.isfinite(le)
            self.baseline[ok] = (self.baseline[ok] * d + le[ok]) / (d + 1)
            return np.zeros_like(le), np.zeros(le.size, bool)
        x = le - self.baseline
        x = x - np.nan_to_num(group_median(x, self.group, self._n_groups))
        x = np.nan_to_num(x, nan=0.0)
        self.cusum = np.maximum(0.0, self.cusum - x - self.k)
        alarm = self.cusum > self.h
        upd = ~alarm & np.isfinite(le)
        self.baseline[upd] += self.alpha * (le[upd] - self.baseline[upd])
        return self.cusum.copy(), alarm


@dataclass
class FdiDetector:
    """Per-meter edge detector of false data (see the module docstring).

    ``group``: each meter's neighbourhood; ``intervals_per_day``: readings a day (96 at 15 min);
    ``h_v_pu``: alarm when the day's mean voltage deviation beyond the meter's own offset exceeds
    it; ``h_replay``: alarm when the day's mean |log ratio| to yesterday falls below it;
    ``learn_days``: days that only learn the voltage offsets.
    """

    group: np.ndarray
    intervals_per_day: int = 96
    h_v_pu: float = 0.006
    h_replay: float = 0.05
    learn_days: int = 2
    alpha: float = 0.1
    min_kw: float = 0.05

    def __post_init__(self) -> None:
        self.group = np.asarray(self.group, np.int64)
        n = self.group.size
        self._n_groups = int(self.group.max()) + 1 if n else 0
        self.v_offset = np.zeros(n)
        self.yesterday = np.full((self.intervals_per_day, n), np.nan, np.float32)
        self.today = np.full((self.intervals_per_day, n), np.nan, np.float32)
        self._dev_sum = np.zeros(n)
        self._dev_n = np.zeros(n)
        self._rep_sum = np.zeros(n)
        self._rep_n = np.zeros(n)
        self.slot = 0
        self.days = 0

    @property
    def state_floats_per_meter(self) -> int:
        """Numbers a meter keeps: voltage offset, two day-sums each for the checks, yesterday's powers."""
        return 5 + self.intervals_per_day

    def update_interval(self, p_kw: np.ndarray, v_pu: np.ndarray) -> None:
        """Feed one interval's reported power (kW) and voltage (pu) per meter (NaN = missing)."""
        p = np.asarray(p_kw, np.float64)
        v = np.asarray(v_pu, np.float64)
        v = np.where(v > 0.5, v, np.nan)  # 0 V = outage, not data
        dev = v - group_median(v, self.group, self._n_groups)
        ok = np.isfinite(dev)
        self._dev_sum[ok] += dev[ok]
        self._dev_n[ok] += 1
        y = self.yesterday[self.slot]
        use = np.isfinite(p) & np.isfinite(y) & ((p > self.min_kw) | (y > self.min_kw))
        r = np.abs(np.log((np.maximum(p, 0) + self.min_kw) / (np.maximum(y, 0) + self.min_kw)))
        self._rep_sum[use] += r[use]
        self._rep_n[use] += 1
        self.today[self.slot] = p
        self.slot += 1

    def end_day(self) -> dict[str, np.ndarray]:
        """Close the day; returns per-meter ``v_score`` (pu), ``replay_score`` (log units; NaN when
        there is no yesterday), and the alarms ``v_alarm``, ``replay_alarm``, ``alarm``."""
        mean_dev = np.where(self._dev_n > 0, self._dev_sum / np.maximum(self._dev_n, 1), np.nan)
        v_score = np.abs(mean_dev - self.v_offset)
        rep = np.where(self._rep_n >= 8, self._rep_sum / np.maximum(self._rep_n, 1), np.nan)
        learning = self.days < self.learn_days
        if learning:
            ok = np.isfinite(mean_dev)
            self.v_offset[ok] = (self.v_offset[ok] * self.days + mean_dev[ok]) / (self.days + 1)
            v_alarm = np.zeros(v_score.size, bool)
        else:
            v_alarm = np.nan_to_num(v_score) > self.h_v_pu
            upd = ~v_alarm & np.isfinite(mean_dev)
            self.v_offset[upd] += self.alpha * (mean_dev[upd] - self.v_offset[upd])
        replay_alarm = np.nan_to_num(rep, nan=np.inf) < self.h_replay
        self.yesterday, self.today = self.today, self.yesterday
        self.today[:] = np.nan
        self._dev_sum[:] = 0
        self._dev_n[:] = 0
        self._rep_sum[:] = 0
        self._rep_n[:] = 0
        self.slot = 0
        self.days += 1
        return {
            "v_score": np.where(learning, 0.0, v_score),
            "replay_score": rep,
            "v_alarm": v_alarm,
            "replay_alarm": replay_alarm,
            "alarm": v_alarm | replay_alarm,
        }


def feeder_balance(
    head_kwh: np.ndarray,
    meter_kwh: np.ndarray,
    meter_section: np.ndarray,
    losses_kwh: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Unexplained energy per section (kWh): head measurement - sum of its meters - losses.

    ``head_kwh`` (n_sections,), ``meter_kwh`` (n_meters,) reported (already scaled to grid
    power), ``meter_section`` the section of each meter (-1 = none), ``losses_kwh`` estimated
    technical losses per section. Positive = energy consumed but not reported (theft or errors).
    """
    head = np.asarray(head_kwh, np.float64)
    sec = np.asarray(meter_section, np.int64)
    m = sec >= 0
    s = np.bincount(sec[m], weights=np.asarray(meter_kwh, np.float64)[m], minlength=head.size)
    return head - s - np.asarray(losses_kwh, np.float64)


def threshold_baseline(
    e_day_kwh: np.ndarray,
    e_mean_kwh: np.ndarray,
    v_day_mean_pu: np.ndarray,
    drop_share: float = 0.5,
    v_band_pu: float = 0.05,
) -> np.ndarray:
    """The plain rule: alarm if the day's energy is below ``drop_share`` of the meter's own mean,
    or its mean voltage is outside ``1 ± v_band_pu``. Returns a bool per meter."""
    e = np.asarray(e_day_kwh, np.float64)
    v = np.asarray(v_day_mean_pu, np.float64)
    return (e < drop_share * np.asarray(e_mean_kwh)) | (
        np.abs(np.nan_to_num(v, nan=1.0) - 1.0) > v_band_pu
    )
