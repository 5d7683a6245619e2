"""The orchestrator's link to ``gridpilot.market``: one local auction per 15-minute interval."""

from __future__ import annotations

from typing import Any

import numpy as np

from gridpilot.agent.world import Observation


class MarketLink:
    """Link to ``gridpilot.market``: one local double auction per 15-minute interval.

    Every generator offers its present output for the interval at 0.06-0.14 EUR/kWh; every
    load bids 20 % of its present demand at 0.18-0.24 EUR/kWh, less when demand response is on
    (fixed ladder, reproducible; see docs/agent.md). Cleared with ``gridpilot.market.clear``
    (uniform price). None when the market package is not importable.
    """

    def __init__(self, grid: Any, clear: Any) -> None:
        self.grid = grid
        self._clear = clear
        self.last_price: float | None = None
        self.last_volume: float | None = None
        self.intervals = 0

    @classmethod
    def create(cls, grid: Any) -> MarketLink | None:
        """A link to the market for ``grid``, or None when the market cannot be imported."""
        try:
            from gridpilot.market import clear
        except Exception:  # market package absent or broken: no market, said in the state
            return None
        return cls(grid, clear)

    def clear(self, obs: Observation, dr_level: float) -> str:
        """Clear one interval from the present state; returns a short text (price EUR/MWh, or
        ``no trades`` when nothing cleared)."""
        rng = np.random.default_rng(obs.t)
        hours = 0.25
        bid_q = np.rint(np.maximum(obs.load_p_mw, 0) * 0.2 * hours * 1e6).astype(np.int64)
        bid_p = 0.18 + 0.06 * rng.random(bid_q.size) - 0.04 * dr_level
        off_q = np.rint(np.maximum(obs.gen_p_mw, 0) * hours * 1e6).astype(np.int64)
        off_p = 0.06 + 0.08 * rng.random(off_q.size)
        res = self._clear(bid_p, bid_q, off_p, off_q)
        vol = float(res.volume_wh) / 1e6
        price = (
            float(np.average(res.price_eur_per_kwh, weights=res.qty_wh)) * 1000
            if len(res)
            else None
        )
        self.last_price = None if price is None else round(price, 2)
        self.last_volume = round(vol, 4)
        self.intervals += 1
        if self.last_price is None:
            return "no trades (no bid met an offer)"
        return f"price {self.last_price:.2f} EUR/MWh, volume {self.last_volume} MWh"
