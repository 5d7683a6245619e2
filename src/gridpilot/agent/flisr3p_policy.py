"""Self-healing in the loop on a three-phase world: :class:`Flisr3pPolicy` hands the control
room's indications to the unbalanced FLISR (:mod:`gridpilot.control.flisr3p`) and turns its
plan into the loop's :class:`~gridpilot.agent.actions.Plan`.

The policy sees what the balanced :class:`~gridpilot.agent.policies.FlisrPolicy` sees - the
fault-passage indicators, the switches protection reported open and which buses are dark -
and holds the feeder's model (``grid3p``, its normally-open ties made explicit) and where its
protective devices sit (the utility's records: :func:`~gridpilot.agent.fieldprot3p.feeder_protection`),
as the guard's node-phase check does; never the devices' state.

- A locked-out recloser (a tripped switch): the plan (isolate, reclose, restore through ties,
  shed) was verified per node-phase in the three-phase twin; its switch commands and the
  regulator tap commands it needs to keep the restored part in the band (``tap_commands``)
  go through the guard (simulated per node-phase again, the taps held) and the world.
- Indicators picked up but nothing tripped: protection cleared the fault by itself. The
  fuses whose laterals are exactly the dark buses are taken as blown (an outage-management
  inference; nothing to switch: the lateral waits for the crew), or, with nothing dark, a
  reclose cleared a temporary fault. The plan only resets the indicators, with the reason.

The orchestrator uses it in place of the balanced FLISR when the world is three-phase and the
policies are the defaults.
"""

from __future__ import annotations

import logging
from typing import Any

from gridpilot.agent.actions import Action, Plan
from gridpilot.agent.context import Context
from gridpilot.agent.fieldprot3p import feeder_protection
from gridpilot.agent.phasephysics import regulator_names
from gridpilot.control.flisr3p import Flisr3pEngine, Flisr3pResult, Indications3p
from gridpilot.model.limits import OperatingLimits
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.model.threephase.balanced import PhaseView, balanced_view
from gridpilot.twin import energised
from gridpilot.twin.unbalanced.topology import normalise_ties

log = logging.getLogger(__name__)
_ENGINES: dict[tuple[Any, ...], Flisr3pEngine] = {}


def _engine(grid3p: ThreePhaseGrid, limits: OperatingLimits) -> Flisr3pEngine:
    """One engine per feeder content and limits in a process (scenario runs share it), able
    to represent the feeder's protective devices open."""
    key = (grid3p.name, tuple((b.name, b.enabled, b.closed) for b in grid3p.branches),
           len(grid3p.loads), sum(ld.kw for ld in grid3p.loads), limits)  # fmt: skip
    eng = _ENGINES.get(key)
    if eng is None:
        prot = feeder_protection(grid3p).branches()
        eng = Flisr3pEngine(grid3p, limits, protection=prot)
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
        self.regulator_id = {n: k for k, n in enumerate(regulator_names(self.grid3p))}
        self._fuse_buses: dict[str, frozenset[int]] | None = None
        self._ends: dict[str, set[str]] | None = None  # branch -> its end buses
        # dark buses no open switch explains, already reported (a fuse blown by a fault no
        # indicator saw and nothing tripped for): said once, not every step
        self._reported_dark: frozenset[int] = frozenset()

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
        lim = ctx.limits
        if not (obs.fpi.any() or ctx.tripped):
            dark = self._unexplained_dark(ctx)
            if not dark or dark == self._reported_dark:
                self._reported_dark = dark
                return []
            self._reported_dark = dark  # a fault no indicator saw: what the dark buses say
        eng = _engine(self.grid3p, OperatingLimits(lim.v_min_pu, lim.v_max_pu, lim.loading_max_pct))
        ind = self.indications(ctx)
        if not ind.opened:
            self._reported_dark = self._unexplained_dark(ctx)
            return [self._cleared(eng, ind, ctx)]
        if obs.energised.all():
            return []
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
        actions += [
            Action("tap", self.regulator_id[name], float(tap))
            for name, tap in sorted(res.tap_commands.items())
            if name in self.regulator_id
        ]
        actions.append(Action("reset_fpi"))
        return [self._plan(eng, res, ind, actions)]

    def _unexplained_dark(self, ctx: Context) -> frozenset[int]:
        """Bus ids the switch states should energise but the telemetry shows dark."""
        g, obs = ctx.grid, ctx.obs
        if obs.energised.all():  # the usual step: nothing dark, no topology to trace
            return frozenset()
        should = energised(g, obs.switch_closed)
        return frozenset(g.bus.ids[should & ~obs.energised].tolist())

    def blown_fuses(self, eng: Flisr3pEngine, ctx: Context) -> list[str]:
        """The fuses whose laterals (view buses beyond them, normal state) are all dark, and
        not inside another such lateral: what the dark buses say blew."""
        if self._fuse_buses is None:
            pos = {n: i for i, n in enumerate(eng.solver.nodes)}
            base = eng.solver.energised()
            self._fuse_buses = {}
            for f in feeder_protection(self.grid3p).fuses:
                dead = base & ~eng.solver.energised({f.branch: False})
                buses = {b for b, k in eng.solver.nodes if dead[pos[(b, k)]]}
                self._fuse_buses[f.branch] = frozenset(
                    self.bus_id[b] for b in buses if b in self.bus_id
                )
        g = ctx.grid
        dark = set(g.bus.ids[~ctx.obs.energised].tolist())
        hit = {f: s for f, s in self._fuse_buses.items() if s and s <= dark}
        return sorted(f for f, s in hit.items() if not any(s < t for t in hit.values()))

    def _cleared(self, eng: Flisr3pEngine, ind: Indications3p, ctx: Context) -> Plan:
        """Protection cleared the fault itself (nothing tripped): the blown fuses inferred,
        nothing to switch; the indicators are reset."""
        fuses = self.blown_fuses(eng, ctx)
        res = eng.respond(Indications3p(ind.fpi, tuple(fuses), lockout=False))
        if fuses:
            reason = (
                f"three-phase FLISR: fuse(s) {fuses} cleared a fault on their lateral (its buses "
                f"dark, nothing tripped): nothing to switch; {res.unserved_kw:.0f} kW stay off "
                "until the crew replaces the fuse"
            )
        elif ctx.obs.energised.all():
            reason = "three-phase FLISR: a reclose cleared a temporary fault; nothing to switch"
        elif not any(ind.fpi.values()):
            reason = (
                "three-phase FLISR: buses dark with no indicator or trip, and no fuse's lateral "
                "matches them; nothing to switch: send a crew"
            )
        else:
            reason = (
                "three-phase FLISR: indicators picked up, nothing tripped, and no fuse's lateral "
                "matches the dark buses; nothing to switch"
            )
        data = {
            "indications": {"tripped": [], "fpi": [k for k, v in ind.fpi.items() if v]},
            "blown_fuses": fuses,
            "flisr3p": res.summary(),
        }
        return Plan([Action("reset_fpi")], reason, self.name, data)

    def _plan(
        self, eng: Flisr3pEngine, res: Flisr3pResult, ind: Indications3p, actions: list[Action]
    ) -> Plan:
        inside = {b for b, s in eng.sections.of_bus.items() if s == res.section}
        if self._ends is None:  # once: a scan per view line was 3.6 s a plan on ieee8500
            self._ends = {x.name.lower(): {x.t1.bus, x.t2.bus} for x in eng.grid.branches}
        ends = self._ends
        lines = sorted(
            k for k, n in self.line_branch.items()
            if n not in self.switch_id and ends.get(n, {""}) <= inside
        )  # fmt: skip
        summary = res.summary()
        reason = (
            f"three-phase FLISR: fault located in section {res.section} (lines "
            f"{[self.line_branch[k] for k in lines[:6]]}); isolate with {res.isolate}, "
            f"reclose {res.reclose or 'nothing'}, restore over {res.restore or 'nothing'}"
            + (f", shed {res.shed}" if res.shed else "")
            + (
                f", hold regulator taps { ({k: round(v, 5) for k, v in res.tap_commands.items()}) }"
                if res.tap_commands
                else ""
            )
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


def three_phase_policies(
    grid3p: ThreePhaseGrid, policies: list[Any], view: PhaseView | None = None
) -> list[Any]:
    """``policies`` with the balanced FLISR replaced by :class:`Flisr3pPolicy` on ``grid3p``."""
    from gridpilot.agent.policies import FlisrPolicy

    return [Flisr3pPolicy(grid3p, view) if isinstance(p, FlisrPolicy) else p for p in policies]


__all__ = ["Flisr3pPolicy", "three_phase_policies"]
