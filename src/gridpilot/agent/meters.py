"""The households' smart-meter telemetry in the loop, with edge anomaly checks (issue #9).

On the field world (:class:`~gridpilot.agent.fieldworld.FieldWorld`) the households' meters
report every 15 minutes; their gateways (``gw-<load id>``, one per grid load) sign the rows.
:class:`MeterPath` is the control side's receiver: every meter interval it takes the field's
signed payloads (:meth:`FieldWorld.meter_frames`), verifies them against the field's enrolment
registry (public keys only) and stores what passes in an embedded DuckDB store (in memory) with
:class:`~gridpilot.telemetry.Ingestor`; refused frames are counted and reported. The rows it
uses are read back from the store, never from the simulator.

Checks (see docs/estimation.md, "In the loop"):

* **every interval** — :func:`~gridpilot.estimation.anomaly.feeder_balance` per section (a grid
  load's secondary substation: its metered energy over the interval, minus the energy its
  households' meters report) and for the whole feeder (head energy from the feeder-head flow
  sensor, minus the grid devices' metered energy, minus the households' meters, minus the
  technical losses of the observation's balance). Each balance is taken as a share of its head
  energy; the first ``learn_intervals`` intervals learn its mean and spread per section, then
  ``non_technical_loss`` is raised where the share exceeds ``mean + max(k_sigma * std,
  floor_share)`` on ``confirm`` intervals in a row (naming the sections);
* **daily** — :class:`~gridpilot.estimation.anomaly.TheftDetector` on each meter's day import
  energy and :class:`~gridpilot.estimation.anomaly.FdiDetector` on its interval powers and
  voltages (neighbours = the meters behind the same gateway); alarms ``theft_suspected`` and
  ``false_data`` name the meters and hold until the next day's verdict.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from gridpilot.errors import Issue, ValidationError
from gridpilot.estimation.anomaly import FdiDetector, TheftDetector, feeder_balance

if TYPE_CHECKING:
    from gridpilot.agent.worldtypes import MeteredWorld

_Q = ("p_kw", "v_pu", "e_import_kwh")


@dataclass
class MeterStepReport:
    """What one loop step got from the meters: rows stored, frames refused (by reason), alarms raised."""

    rows: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    raised: list[str] = field(default_factory=list)


def _positive_int(name: str, value: Any) -> int:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or int(value) != value
        or value < 1
    ):
        raise ValidationError(
            issues=[Issue("meters", name, "must be a whole number >= 1", value=value)]
        )
    return int(value)


def _positive(name: str, value: Any) -> float:
    if not (isinstance(value, int | float) and np.isfinite(value) and value > 0):
        raise ValidationError(
            issues=[Issue("meters", name, "must be a finite number > 0", value=value)]
        )
    return float(value)


class MeterPath:
    """Receive the field's signed meter rows and run the edge anomaly checks (module docstring).

    ``MeterPath(world, grid, learn_intervals=24, k_sigma=5.0, floor_share=0.03, confirm=2)``:
    ``world`` offers ``meter_registry()`` and ``meter_frames()`` (the field world); ``grid`` the
    controller's model (load ids name the sections). :meth:`step` is called once per loop step
    with the (verified) observation; :attr:`alarms` holds the active meter alarms.
    """

    def __init__(  # noqa: PLR0913
        self,
        world: MeteredWorld,
        grid: Any,
        *,
        learn_intervals: int = 24,
        k_sigma: float = 5.0,
        floor_share: float = 0.03,
        confirm: int = 2,
        theft_learn_days: int = 7,
    ) -> None:
        from gridpilot.telemetry import DuckDBStore, Ingestor

        self.learn_intervals = _positive_int("learn_intervals", learn_intervals)
        self.k_sigma = _positive("k_sigma", k_sigma)
        self.floor_share = _positive("floor_share", floor_share)
        self.confirm = _positive_int("confirm", confirm)
        self.registry = world.meter_registry()  # the field's enrolment: public keys only
        self._world = world
        self._now_ms = 0
        self.store = DuckDBStore()  # embedded, in memory
        self.ingestor = Ingestor(
            self.registry, self.store, clock=lambda: self._now_ms / 1000.0, log_rejections=False
        )
        reg = self.registry.frame()
        m = reg[reg["kind"] == "meter"]
        self.meter_ids = [str(x) for x in m["device_id"]]
        self._meter_pos = {d: i for i, d in enumerate(self.meter_ids)}
        load_ids = np.asarray(grid.load.ids, np.int64)
        self.load_ids = load_ids
        feeder_load = np.array([int(str(f).rsplit("-", 1)[-1]) for f in m["feeder"]], np.int64)
        sec = np.searchsorted(load_ids, feeder_load)
        sec = np.where(
            (sec < load_ids.size) & (load_ids[np.minimum(sec, load_ids.size - 1)] == feeder_load),
            sec,
            -1,
        )
        self.section = sec.astype(np.int64)  # each meter's section: the grid load's position
        nm, ns = len(self.meter_ids), load_ids.size
        grp = np.where(self.section >= 0, self.section, ns)
        self.theft = TheftDetector(grp, learn_days=theft_learn_days)
        self.fdi = FdiDetector(grp)
        self._e_prev = np.full(nm, np.nan)
        self._e_day = np.zeros(nm)
        self._e_day_n = np.zeros(nm, np.int64)
        # per-interval accumulators (kWh) since the last meter interval
        self._sec_head_kwh = np.zeros(ns)
        self._feeder_kwh = 0.0
        self._steps = 0
        # calibration: per-section shares learned over the first intervals
        self._learn: list[np.ndarray] = []
        self._learn_feeder: list[float] = []
        self.band: dict[str, Any] | None = None
        self._over = np.zeros(ns + 1, np.int64)  # consecutive intervals over the band (+feeder)
        self.intervals = 0
        self.days = 0
        self.rows = 0
        self.rejected = 0
        self.alarms: dict[str, dict[str, Any]] = {}
        self.last_balance: dict[str, Any] = {}
        self._foreign: list[bytes] = []

    def receive_foreign(self, frames: list[bytes]) -> None:
        """Frames from elsewhere on the meter channel (e.g. forged ones), read at the next interval."""
        self._foreign.extend(frames)

    # --- per step -------------------------------------------------------------------------------
    def step(self, obs: Any) -> MeterStepReport:
        """Accumulate this step's head energies; on a meter interval ingest the field's signed
        rows, run the balance (and, at day end, the daily detectors). Returns the step's report."""
        h = float(obs.step_s) / 3600.0
        self._sec_head_kwh += np.nan_to_num(np.asarray(obs.load_p_mw, np.float64)) * 1e3 * h
        dev = float(
            np.sum(obs.ev_p_mw)
            + np.sum(obs.flex_p_mw)
            + np.sum(obs.storage_p_mw)
            - np.sum(obs.gen_p_mw)
        )
        loss = float(obs.losses_kw) if np.isfinite(obs.losses_kw) else 0.0
        self._feeder_kwh += (float(obs.source_p_mw) * 1e3 - dev * 1e3 - loss) * h
        self._steps += 1
        out = MeterStepReport()
        sent = list(self._world.meter_frames())  # non-empty once a meter interval has ended
        frames = sent + self._foreign
        self._foreign = []
        if not frames:
            return out
        self._now_ms = int(np.datetime64(obs.time, "ms").astype(np.int64))
        rep = self.ingestor.ingest(frames)
        out.rejected = dict(rep.rejected_by_reason)
        self.rejected += rep.rejected
        if not sent:  # foreign frames only: counted, nothing to balance
            return out
        p_kw, v_pu, e_imp = self._read_back()  # NaN for meters whose rows did not arrive
        n_rows = int(np.isfinite(p_kw).sum())
        out.rows = n_rows
        self.rows += n_rows
        out.raised = self._interval(p_kw, v_pu, e_imp)
        return out

    def _read_back(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This interval's rows from the store, per meter (NaN where none arrived)."""
        df = self.store.range(None, self._now_ms - 1, self._now_ms + 1)
        nm = len(self.meter_ids)
        vals = {q: np.full(nm, np.nan) for q in _Q}
        if len(df):
            pos = df["device_id"].map(self._meter_pos)
            ok = pos.notna().to_numpy()
            pos_i = pos.to_numpy()[ok].astype(np.int64)
            qs = df["quantity"].to_numpy()[ok]
            v = df["value"].to_numpy(np.float64)[ok]
            for q in _Q:
                k = qs == q
                vals[q][pos_i[k]] = v[k]
        return vals["p_kw"], vals["v_pu"], vals["e_import_kwh"]

    def _interval(self, p_kw: np.ndarray, v_pu: np.ndarray, e_imp: np.ndarray) -> list[str]:
        """One meter interval: feeder balance, calibration or band check, daily detectors."""
        hours = self._steps * float(self._world.step_s) / 3600.0
        meter_kwh = np.nan_to_num(p_kw) * hours
        ns = self.load_ids.size
        head = self._sec_head_kwh
        u_sec = feeder_balance(head, meter_kwh, self.section)
        u_fdr = float(
            feeder_balance(
                np.array([self._feeder_kwh]), meter_kwh, np.where(self.section >= 0, 0, -1)
            )[0]
        )
        # a section with a meter missing this interval (lost or refused frame) is not judged
        gone = self.section[~np.isfinite(p_kw) & (self.section >= 0)]
        incomplete = np.bincount(gone, minlength=ns) > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where((head > 1e-3) & ~incomplete, u_sec / head, np.nan)
        fshare = (
            u_fdr / self._feeder_kwh
            if self._feeder_kwh > 1e-3 and not incomplete.any()
            else float("nan")
        )
        self.last_balance = {
            "unexplained_kwh": round(u_fdr, 3),
            "feeder_kwh": round(self._feeder_kwh, 3),
            "share": None if not np.isfinite(fshare) else round(fshare, 5),
        }
        self._sec_head_kwh = np.zeros(ns)
        self._feeder_kwh = 0.0
        self._steps = 0
        self.intervals += 1
        raised: list[str] = []
        if self.band is None:
            self._learn.append(share)
            self._learn_feeder.append(fshare)
            if len(self._learn) >= self.learn_intervals:
                self._calibrate()
        else:
            raised += self._check(share, fshare, u_sec, u_fdr)
        raised += self._daily(p_kw, v_pu, e_imp)
        return raised

    def _calibrate(self) -> None:
        """The band: per section (and for the feeder) mean + max(k_sigma * std, floor_share) of
        the unexplained share over the learning intervals."""
        a = np.vstack(self._learn)
        f = np.asarray(self._learn_feeder, np.float64)
        # a section with no valid share in any learning interval (all NaN) gets mean 0 and
        # std 0 (the floor band) below; numpy's "empty slice" warnings say only that
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(np.vstack([a.T, f[None, :]]), axis=1) if a.size else np.zeros(1)
            std = np.nanstd(np.vstack([a.T, f[None, :]]), axis=1, ddof=1)
        mean = np.nan_to_num(mean)
        std = np.nan_to_num(std)
        self.band = {
            "mean": mean,
            "limit": mean + np.maximum(self.k_sigma * std, self.floor_share),
            "intervals": len(self._learn),
        }
        self._learn, self._learn_feeder = [], []

    def _check(
        self, share: np.ndarray, fshare: float, u_sec: np.ndarray, u_fdr: float
    ) -> list[str]:
        assert self.band is not None
        s = np.append(share, fshare)
        over = np.nan_to_num(s, nan=-np.inf) > self.band["limit"]
        self._over = np.where(over, self._over + 1, 0)
        hit = self._over >= self.confirm
        was = "non_technical_loss" in self.alarms
        if hit.any():
            secs = np.flatnonzero(hit[:-1])
            names = [f"load {int(self.load_ids[k])}" for k in secs]
            kwh = float(u_sec[secs].sum()) if secs.size else u_fdr
            where = (
                ", ".join(names[:8]) + (" …" if len(names) > 8 else "") if names else "the feeder"
            )
            self.alarms["non_technical_loss"] = {
                "severity": "major",
                "text": (
                    f"unexplained energy {kwh:.1f} kWh in the last interval beyond the learned band "
                    f"(feeder balance; sections: {where})"
                ),
                "sections": [int(self.load_ids[k]) for k in secs],
                "unexplained_kwh": round(kwh, 3),
            }
            return [] if was else ["non_technical_loss"]
        self.alarms.pop("non_technical_loss", None)
        return []

    def _daily(self, p_kw: np.ndarray, v_pu: np.ndarray, e_imp: np.ndarray) -> list[str]:
        """Feed the daily detectors; at the day's end update them and set their alarms."""
        d = e_imp - self._e_prev
        ok = np.isfinite(d)
        self._e_day[ok] += np.maximum(d[ok], 0.0)
        self._e_day_n[ok] += 1
        self._e_prev = np.where(np.isfinite(e_imp), e_imp, self._e_prev)
        self.fdi.update_interval(p_kw, v_pu)
        if self.fdi.slot < self.fdi.intervals_per_day:
            return []
        e_day = np.where(self._e_day_n > 0, self._e_day, np.nan)
        _, theft = self.theft.update_day(e_day)
        fdi = self.fdi.end_day()
        self._e_day[:] = 0.0
        self._e_day_n[:] = 0
        self.days += 1
        raised = []
        for key, mask, what in (
            (
                "theft_suspected",
                theft,
                "daily energy dropped against its own baseline and its neighbours",
            ),
            ("false_data", fdi["alarm"], "voltage off its neighbours or readings replayed"),
        ):
            ids = [self.meter_ids[k] for k in np.flatnonzero(mask)]
            if ids:
                if key not in self.alarms:
                    raised.append(key)
                self.alarms[key] = {
                    "severity": "major",
                    "text": f"{len(ids)} meter(s) {what}: "
                    + ", ".join(ids[:10])
                    + (" …" if len(ids) > 10 else ""),
                    "meters": ids[:50],
                }
            else:
                self.alarms.pop(key, None)
        return raised
