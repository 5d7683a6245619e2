"""Least-loss reconfiguration of an unbalanced feeder over its switches.

Candidates are radial switch states that keep every load served that the starting state
serves; each is solved in the three-phase twin (taps and capacitors as the static controls
left them in the starting state) and must hold the limits per node-phase and branch-phase
(the band widened to the starting state's extremes unless limits are asked for). With at most
:data:`EXHAUSTIVE_MAX_SWITCHES` switches every state is tried (the optimum over the
switches; a state must save more than :data:`MIN_GAIN_KW` over the starting state); above
that, branch exchange: close a tie, open the switch on its loop that lowers
losses most, until no exchange helps.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from gridpilot.control.flisr3p.engine import Flisr3pEngine
from gridpilot.control.flisr3p.results import StateCheck
from gridpilot.model.limits import OperatingLimits
from gridpilot.model.threephase import ThreePhaseGrid

log = logging.getLogger(__name__)

EXHAUSTIVE_MAX_SWITCHES = 12
MIN_GAIN_KW = 1e-3  # a switching change must save more than this (else the start state stays)


@dataclass
class Reconfig3pResult:
    """The chosen switch state (``state``; ``open`` lists its open switches), losses and
    extremes before and after (kW, pu, %), how it was found (``method``), how many states
    were solved, wall time (``solve_ms``) and whether the twin holds the limits."""

    state: dict[str, bool]
    open: list[str]
    before: StateCheck
    after: StateCheck
    method: str
    evaluated: int
    solve_ms: float
    limits_used: dict[str, float]
    verified: bool
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "open": self.open,
            "losses_kw_before": round(self.before.losses_kw, 4),
            "losses_kw_after": round(self.after.losses_kw, 4),
            "vmin_pu_before": round(self.before.vmin_pu, 6),
            "vmin_pu_after": round(self.after.vmin_pu, 6),
            "vmax_pu_after": round(self.after.vmax_pu, 6),
            "max_loading_pct_after": round(self.after.max_loading_pct, 3),
            "method": self.method,
            "states_solved": self.evaluated,
            "solve_ms": round(self.solve_ms, 1),
            "limits": self.limits_used,
            "verified": self.verified,
            "notes": self.notes,
        }


def _score(eng: Flisr3pEngine, state: dict[str, bool], lost0: float) -> float | None:
    """Losses (kW) of a feasible candidate, None if it is not radial, loses load or breaks
    the limits."""
    if (
        not eng.sections.radial(state)
        or eng.solver.unserved_kw(state, eng.load_mult) > lost0 + 1e-9
    ):
        return None
    _out, chk = eng.evaluate(state)
    return chk.losses_kw if chk.ok else None


def _exhaustive(eng: Flisr3pEngine, lost0: float) -> tuple[dict[str, bool], float]:
    names = sorted(eng.sections.ends)
    best = dict(eng.solver.normal)
    best_loss = _score(eng, best, lost0) or float("inf")
    for bits in itertools.product((False, True), repeat=len(names)):
        st = {**eng.solver.normal, **dict(zip(names, bits, strict=True))}
        loss = _score(eng, st, lost0)
        if loss is not None and loss < best_loss - MIN_GAIN_KW:
            best, best_loss = st, loss
    return best, best_loss


def _branch_exchange(eng: Flisr3pEngine, lost0: float) -> tuple[dict[str, bool], float]:
    st = dict(eng.solver.normal)
    loss = _score(eng, st, lost0) or float("inf")
    while True:
        move: tuple[float, dict[str, bool]] | None = None
        for tie in [s for s, on in st.items() if not on and s in eng.sections.ends]:
            for sw in [s for s, on in st.items() if on and s in eng.sections.ends]:
                cand = {**st, tie: True, sw: False}
                c = _score(eng, cand, lost0)
                if c is not None and c < loss - MIN_GAIN_KW and (move is None or c < move[0]):
                    move = (c, cand)
        if move is None:
            return st, loss
        loss, st = move


def reconfigure3p(
    grid: ThreePhaseGrid,
    limits: OperatingLimits | None = None,
    load_mult: float = 1.0,
    relax_to_prefault: bool = True,
) -> Reconfig3pResult:
    """The radial switch state of least losses serving all load within the limits (see the
    module docstring); returns a :class:`Reconfig3pResult`."""
    t0 = time.perf_counter()
    eng = Flisr3pEngine(grid, limits, load_mult=load_mult, relax_to_prefault=relax_to_prefault)
    start = dict(eng.solver.normal)
    lost0 = eng.solver.unserved_kw(start, load_mult)
    _, before = eng.evaluate(start)
    n = len(eng.sections.ends)
    if n <= EXHAUSTIVE_MAX_SWITCHES:
        best, _ = _exhaustive(eng, lost0)
        method = f"exhaustive over {n} switches ({2**n} states)"
    else:
        best, _ = _branch_exchange(eng, lost0)
        method = f"branch exchange over {n} switches"
    chk, by = eng.final_check(best)
    notes = [] if chk.ok else [f"the chosen state fails the limits: {chk.why}"]
    return Reconfig3pResult(
        state=best,
        open=sorted(s for s, on in best.items() if not on),
        before=before,
        after=eng.evaluate(best)[1],
        method=method,
        evaluated=eng.evaluations,
        solve_ms=(time.perf_counter() - t0) * 1e3,
        limits_used=eng.limits.as_dict(),
        verified=chk.ok,
        notes=[*notes, f"verified by {by}"],
    )
