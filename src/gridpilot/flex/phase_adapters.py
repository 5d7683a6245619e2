"""The frequency-response and market paths on the same :class:`PhaseFleet`, per phase.

Both are thin adapters: they read the one fleet object the phase-aware schedule uses and hand
the existing engines what they take, keeping the phase of every device visible.

* :func:`phase_headroom` / :func:`frequency_response`: each phase's up/down headroom at a step
  (batteries, plugged-in EVs, heaters that are on) and the
  :class:`~gridpilot.control.frequency.FleetResponse` of their sum, for
  :func:`~gridpilot.control.frequency.compare`. ``balanced=True`` limits every phase to the
  weakest phase's headroom, so that the response changes no phase more than the others.
* :func:`phase_orders` / :func:`clear_by_phase`: one interval's offers (PV surplus, battery
  discharge) and bids (EV charging need, battery charging) with the device's phase as the
  auction zone, cleared by :func:`~gridpilot.market.clear` local-first: trades inside a phase
  clear first (they leave the phase balance as it is), the rest across phases.

Phases here are feeder (primary) phases (``PhaseFleet.feeder_phase``): on a split-phase
service the legs, or a 240 V device across both, count on the primary phase behind it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from gridpilot.control.frequency import FleetResponse
from gridpilot.errors import ValidationError
from gridpilot.flex.phase_fleet import PhaseFleet
from gridpilot.flex.phase_network import SOLAR_SHAPE, daily
from gridpilot.market import ClearingResult, clear

log = logging.getLogger(__name__)


def _plugged(pf: PhaseFleet, step: int) -> np.ndarray:
    ev = pf.fleet.ev
    return np.flatnonzero((ev.arrival <= step) & (ev.departure > step))


def phase_headroom(pf: PhaseFleet, step: int, ev_mw: np.ndarray | None = None) -> dict[str, Any]:
    """Up (less demand) and down (more demand) headroom per phase at ``step``, MW.

    ``ev_mw``: each EV session's planned charging power (MW, default its full rating while
    plugged in, i.e. uncontrolled). Batteries can swing from idle to full discharge (up) or
    charge (down); a plugged EV can stop (up; V2G adds its discharge) or charge up to its
    rating (down); a heater that is on can switch off (up), one that is off on (down).
    """
    f = pf.fleet
    plugged = _plugged(pf, step)
    ev_p = f.ev.p_max_mw if ev_mw is None else np.asarray(ev_mw, np.float64)
    if ev_p.shape != (len(f.ev),):
        raise ValidationError(
            f"phase_headroom: field 'ev_mw' needs one value per session ({len(f.ev)})",
        )
    up = np.zeros(3)
    down = np.zeros(3)
    np.add.at(up, pf.feeder_phase["battery"] - 1, f.batteries.p_max_mw)
    np.add.at(down, pf.feeder_phase["battery"] - 1, f.batteries.p_max_mw)
    on = ev_p[plugged]
    v2g = np.where(f.ev.v2g[plugged], f.ev.p_max_mw[plugged], 0.0)
    np.add.at(up, pf.feeder_phase["ev"][plugged] - 1, on + v2g)
    np.add.at(down, pf.feeder_phase["ev"][plugged] - 1, f.ev.p_max_mw[plugged] - on)
    wh = f.water_heaters
    np.add.at(up, pf.feeder_phase["water_heater"] - 1, np.where(wh.heating, wh.p_rated_mw, 0.0))
    np.add.at(down, pf.feeder_phase["water_heater"] - 1, np.where(wh.heating, 0.0, wh.p_rated_mw))
    return {
        "step": step,
        "per_phase": {
            str(p + 1): {"up_mw": float(up[p]), "down_mw": float(down[p])} for p in range(3)
        },
        "up_mw": float(up.sum()),
        "down_mw": float(down.sum()),
    }


def frequency_response(
    pf: PhaseFleet, step: int, *, balanced: bool = False, replicas: float = 1.0
) -> tuple[FleetResponse, dict[str, Any]]:
    """The fleet's :class:`FleetResponse` at ``step`` (``replicas`` copies) and its per-phase
    headroom; ``balanced`` uses three times the weakest phase's headroom."""
    if not replicas > 0:
        raise ValidationError(f"frequency_response: field 'replicas' must be > 0, got {replicas}")
    h = phase_headroom(pf, step)
    ph = h["per_phase"]
    if balanced:
        up = 3 * min(v["up_mw"] for v in ph.values())
        down = 3 * min(v["down_mw"] for v in ph.values())
    else:
        up, down = h["up_mw"], h["down_mw"]
    h["balanced"] = balanced
    return FleetResponse(up * replicas, down * replicas), h


@dataclass
class PhaseOrders:
    """One interval's orders: prices (EUR/kWh), quantities (Wh), zone = phase index (0..2),
    and which device placed each (kind, device id)."""

    bid_price: np.ndarray
    bid_qty_wh: np.ndarray
    bid_zone: np.ndarray
    bid_from: list[tuple[str, int]]
    offer_price: np.ndarray
    offer_qty_wh: np.ndarray
    offer_zone: np.ndarray
    offer_from: list[tuple[str, int]]


def phase_orders(pf: PhaseFleet, step: int, ev_price: float = 0.30) -> PhaseOrders:
    """Orders for the interval at ``step``: PV output offered at 0.05 EUR/kWh, batteries above
    half charge offer at 0.20 and below bid at 0.08, plugged EVs with energy still to get bid
    at ``ev_price`` for what their charger can take in the interval."""
    f, h = pf.fleet, pf.fleet.step_h
    pv_wh = pf.pv_peak_mw * float(daily(SOLAR_SHAPE, np.array([step]), h)[0]) * h * 1e6
    bt = f.batteries
    full = bt.soc >= 0.5
    bat_wh = bt.p_max_mw * h * 1e6
    plugged = _plugged(pf, step)
    ev_wh = np.minimum(f.ev.e_need_mwh[plugged], f.ev.p_max_mw[plugged] * h) * 1e6
    offers = [
        ("pv", pf.feeder_phase["pv"], pv_wh, 0.05, f.pv.id),
        ("battery", pf.feeder_phase["battery"][full], bat_wh[full], 0.20, bt.id[full]),
    ]
    bids = [
        ("ev", pf.feeder_phase["ev"][plugged], ev_wh, ev_price, f.ev.id[plugged]),
        ("battery", pf.feeder_phase["battery"][~full], bat_wh[~full], 0.08, bt.id[~full]),
    ]

    def side(
        rows: list[tuple[str, np.ndarray, np.ndarray, float, np.ndarray]],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[str, int]]]:
        q = np.concatenate([np.floor(r[2]) for r in rows]).astype(np.int64)
        keep = q > 0
        price = np.concatenate([np.full(r[2].size, r[3]) for r in rows])
        zone = np.concatenate([r[1] - 1 for r in rows]).astype(np.int64)
        who = [(r[0], int(i)) for r in rows for i in r[4]]
        return price[keep], q[keep], zone[keep], [w for w, k in zip(who, keep, strict=True) if k]

    bp, bq, bz, bw = side(bids)
    op, oq, oz, ow = side(offers)
    return PhaseOrders(bp, bq, bz, bw, op, oq, oz, ow)


def clear_by_phase(
    pf: PhaseFleet, step: int, fee_inter_eur_per_kwh: float = 0.02
) -> tuple[ClearingResult, dict[str, Any]]:
    """Clear the fleet's orders at ``step`` with the phase as the zone (local-first) and report
    the energy traded inside each phase and across phases (Wh)."""
    o = phase_orders(pf, step)
    res = clear(
        o.bid_price,
        o.bid_qty_wh,
        o.offer_price,
        o.offer_qty_wh,
        bid_zone=o.bid_zone,
        offer_zone=o.offer_zone,
        fee_inter_eur_per_kwh=fee_inter_eur_per_kwh,
    )
    inside = {
        str(p + 1): int(res.qty_wh[(res.stage == 0) & (res.zone == p)].sum()) for p in range(3)
    }
    return res, {
        "step": step,
        "bids": int(o.bid_qty_wh.size),
        "offers": int(o.offer_qty_wh.size),
        "traded_wh": res.volume_wh,
        "inside_phase_wh": inside,
        "across_phases_wh": int(res.qty_wh[res.stage == 1].sum()),
    }
