"""The loop's demand estimate and 15-minute-ahead forecast through a DR event and a fault, and
the under-delivery check of DR events (issue #21 items 19-20)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gridpilot.agent.cli import build_demo, demo_events

AHEAD = 15  # the history's forecast lead, steps (1-minute steps: 15 minutes)
FORECAST_BOUND = 0.08  # docs/agent.md: |forecast - metered| / metered, outside change windows


def _run_demo(steps: int = 130, dr: bool = True) -> Any:
    orch = build_demo()
    ev = demo_events(orch.world.step_s)
    if not dr:  # the same world without the wind drop (so without its DR): fault and repair
        ev = {k: [e for e in v if e["kind"] in ("fault", "repair")] for k, v in ev.items()}
    orch.run(steps, ev)
    return orch, ev


def _changes(orch: Any, ev: dict[int, list[dict[str, Any]]]) -> set[int]:
    """Steps of changes a forecast issued earlier cannot know: injected faults and repairs, the
    DR level's changes and the loop's DR top-ups."""
    out = {t for t, e in ev.items() if any(x["kind"] in ("fault", "repair") for x in e)}
    hist = list(orch.history)
    out |= {
        h["t"] for h, prev in zip(hist[1:], hist, strict=False) if h["dr_level"] != prev["dr_level"]
    }
    for r in orch.flexdr.records:
        if getattr(r, "topup_of", None) is not None:
            out |= {h["t"] for h in hist if h["time"].replace(" ", "T") == r.start}
    return out


def test_loop_forecast_tracks_the_metered_load_through_a_dr_event_and_a_fault() -> None:
    orch, ev = _run_demo()
    changes = _changes(orch, ev)
    assert {10, 40, 70, 100} <= changes  # the fault, DR on, the repair, DR off
    blind = {t for c in changes for t in range(c, c + AHEAD + 1)}
    rows = [
        h
        for h in orch.history
        if h["forecast_mw"] is not None and h["t"] not in blind and h["load_mw"] > 0
    ]
    err = np.array([abs(h["forecast_mw"] - h["load_mw"]) / h["load_mw"] for h in rows])
    during_dr = [h for h in rows if h["dr_level"] > 0]
    during_fault = [h for h in rows if 10 <= h["t"] < 70]
    assert len(during_dr) >= 15 and len(during_fault) >= 15 and len(rows) >= 45
    worst = rows[int(np.argmax(err))]
    assert err.max() <= FORECAST_BOUND, (worst, err.max())


def test_demand_estimate_adds_the_dr_shed_back_once() -> None:
    a, _ = _run_demo(100)
    b, _ = _run_demo(100, dr=False)  # the counterfactual: the same demand without DR
    ha_, hb_ = list(a.history), list(b.history)
    n = 0
    for prev, ha, hb in zip(ha_, ha_[1:], hb_[1:], strict=False):
        if prev["dr_level"] > 0 and ha["dr_level"] > 0:  # DR in force at this reading
            n += 1
            assert hb["load_mw"] - ha["load_mw"] > 0.3  # the DR does shed (MW)
            assert ha["demand_est_mw"] == pytest.approx(hb["demand_est_mw"], rel=0.06), ha
    assert n >= 50
