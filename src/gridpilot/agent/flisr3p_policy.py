"""Self-healing in the loop on a three-phase world: :class:`Flisr3pPolicy` hands the control
room's indications to the unbalanced FLISR (:mod:`gridpilot.control.flisr3p`) and turns its
plan into the loop's :class:`~gridpilot.agent.actions.Plan`.

The policy sees what the balanced :class:`~gridpilot.agent.policies.FlisrPolicy` sees - the
fault-passage indicators and the switches protection reported open - and holds the feeder's
model (``grid3p``, its normally-open ties made explicit), as the guard's node-phase check
does. The plan (isolate, reclose, restore through ties, shed) was verified per node-phase in
the three-phase twin; its switch commands still go through the guard (simulated per
node-phase again) and the world. The orchestrator uses it in place of the balanced FLISR
when the world is three-phase and the policies are the defaults.
"""

from __future__ import annotations

import logging
from typing import Any

from gridpilot.agent.actions import Action, Plan
from gridpilot.agent.context import Context
from gridpilot.control.flisr3p import Flisr3pEngine, Flisr3pResult, Indications3p
from gridpilot.model.limits import OperatingLimits
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.model.threephase.balanced import PhaseView, balanced_view
from gridpilot.twin.unbalanced.topology import normalise_ties

log = logging.getLogger(__name__)
_ENGINES: dict[tuple[Any, ...], Flisr3pEngine] = {}


def _engine(grid3p: ThreePhaseGrid, limits: OperatingLimits) -> Flisr3pEngine:
    """One engine per feeder content and limits in a process (scenario runs share it)."""
    key = (grid3p.name, tuple((b.name, b.enabled, b.closed) for b in grid3p.branches),
           len(grid3p.loads), sum(ld.kw for ld in grid3p.loads), limits)  # fmt: skip
    eng = _ENGINES.get(key)
    if eng is None:
        eng = Flisr3pEngine(grid3p, limits)
        _ENGINES[key] = eng
        while len(_ENGINES) > 4:
            _ENGINES.pop(next(iter(_ENGINES)))
    return eng


class Flisr3pPolicy:
    """Unbalanced FLISR in the loop (see the module notes). ``grid3p``: the feeder model;
    ``view`` its balanced view (the loop's ids; built from ``grid3p`` when not given)."""

    name = "flisr"

    def __init__(self, grid3p: ThreePhaseGrid, view: PhaseView | None = None) -> None:
        self.grid3p = grid3p if "ties" in grid3p.meta else normalise_ties(grid3p)
        if view is None:
            view = balanced_view(self.grid3p)  # the loop's view: same ids as the world's
        self.switch_id = {n: k for k, n in view.switch_branch.items()}
        self.switch_name = dict(view.switch_branch)
        self.line_branch = dict(view.line_branch)
        self.bus_id = dict(view.bus_id)

    def indications(self, ctx: Context) -> Indications3p:
        """Every switch's indicator by name, and the reported trips still open."""
        g, obs = ctx.grid, ctx.obs
        sw = g.switch
        fpi = {self.switch_name[int(i)]: bool(obs.fpi[k]) for k, i in enumerate(sw.ids)}
        opened = tuple(
            self.switch_name[int(x)] for x in sorted(ctx.tripped)
            if not obs.switch_closed[sw.index_of([int(x)])[0]]
        )  # fmt: skip
        return Indications3p(fpi, opened, lockout=True)

    def decide(self, ctx: Context) -> list[Plan]:
        """The unbalanced FLISR's plan for the present indications, or none."""
        obs = ctx.obs
        if not (obs.fpi.any() or ctx.tripped) or obs.energised.all():
            return []
        lim = ctx.limits
        eng = _engine(self.grid3p, OperatingLimits(lim.v_min_pu, lim.v_max_pu, lim.loading_max_pct))
        ind = self.indications(ctx)
        res = eng.respond(ind)
        sw = ctx.grid.switch
        closed = {self.switch_name[int(i)]: bool(c) for i, c in zip(sw.ids, obs.switch_closed, strict=True)}  # fmt: skip
        actions = [
            Action("switch", self.switch_id[name], 1.0 if op == "close" else 0.0)
            for name, op, _ in res.plan
            if name in self.switch_id and closed.get(name) != (op == "close")
        ]
        if not actions:
            return []
        actions.append(Action("reset_fpi"))
        return [self._plan(eng, res, ind, actions)]

    def _plan(
        self, eng: Flisr3pEngine, res: Flisr3pResult, ind: Indications3p, actions: list[Action]
    ) -> Plan:
        inside = {b for b, s in eng.sections.of_bus.items() if s == res.section}
        lines = sorted(
            k for k, n in self.line_branch.items()
            if n not in self.switch_id and _ends(eng, n) <= inside
        )  # fmt: skip
        summary = res.summary()
        reason = (
            f"three-phase FLISR: fault located in section {res.section} (lines "
            f"{[self.line_branch[k] for k in lines[:6]]}); isolate with {res.isolate}, "
            f"reclose {res.reclose or 'nothing'}, restore over {res.restore or 'nothing'}"
            + (f", shed {res.shed}" if res.shed else "")
            + f"; {res.unserved_kw:.0f} kW stay off"
        )
        if not res.verified:
            reason = "plan NOT verified per node-phase in the three-phase twin: " + reason
        data = {
            "indications": {
                "tripped": list(ind.opened),
                "fpi": [k for k, v in ind.fpi.items() if v],
            },
            "section_buses": sorted(self.bus_id[b] for b in inside if b in self.bus_id),
            "faulted_lines": lines,
            "boundary_switches": [self.switch_id[s] for s in res.isolate if s in self.switch_id],
            "flisr3p": summary,
        }
        return Plan(actions, reason, self.name, data, tuple(lines))


def _ends(eng: Flisr3pEngine, branch: str) -> set[str]:
    b = next((x for x in eng.grid.branches if x.name.lower() == branch), None)
    return {b.t1.bus, b.t2.bus} if b is not None else {""}


def three_phase_policies(
    grid3p: ThreePhaseGrid, policies: list[Any], view: PhaseView | None = None
) -> list[Any]:
    """``policies`` with the balanced FLISR replaced by :class:`Flisr3pPolicy` on ``grid3p``."""
    from gridpilot.agent.policies import FlisrPolicy

    return [Flisr3pPolicy(grid3p, view) if isinstance(p, FlisrPolicy) else p for p in policies]


__all__ = ["Flisr3pPolicy", "three_phase_policies"]
