"""Unbalanced FLISR: locate from fault indicators, isolate, restore through ties.

Per feeder, once (:class:`Flisr3pEngine`): normally-open ties made explicit
(:func:`~gridpilot.twin.unbalanced.topology.normalise_ties`), the pre-fault state solved with
the twin's static controls (its taps and capacitor states then stay frozen, as in the
seconds after a fault), the sections, and a :class:`SwitchingSolver` that solves any switch
state in the three-phase twin. :meth:`Flisr3pEngine.precompute` plans every section's fault
ahead; :meth:`Flisr3pEngine.respond` then only locates and looks the plan up.

Planning a faulted section (:meth:`Flisr3pEngine.plan`):

1. **isolate**: open every closed switch bounding it; protection devices outside it
   (a locked-out recloser upstream) close again;
2. **restore**: each dead healthy island is fed through one normally-open tie into the
   energised part (one tie per island, so the feeder stays radial); of the ties, the one
   restoring most load within the limits wins;
3. **shed**: when no tie restores an island whole within the limits, a sectionalising switch
   inside it is opened as well (the part beyond it stays off) - the combination restoring
   most load wins; what remains dead is tried again as a new island.

Every candidate state is solved in the twin with the pre-fault taps frozen and checked per
node-phase (the band's lower edge: restoring load only lowers voltages) and per branch-phase
(loading); taken in order of load restored, the first that holds wins, and up to
:data:`STATIC_CHECKS` failing it on the way are solved again with the regulators' and
capacitors' static controls acting (as they will within a minute), checked against the whole
band (settled on the switching solver itself: one factorisation per state, each tap a
Woodbury update). Where the settled controls leave a node-phase above the band only, the
plan lowers the regulator feeding it and holds it (``tap_commands``, up to
:data:`TAP_COMMANDS` taps, never past the lower edge nor a loading limit). ``verified`` means the three-phase
twin, frozen or settled (with the plan's tap commands), holds every node-phase in the band
and every branch-phase within its loading limit. The band is widened to the pre-fault
extremes when the feeder already ran outside it (``relax_to_prefault``), as the balanced
FLISR does; its upper edge does not apply to the source's own side (no load, fed by no
regulator: :meth:`SwitchingSolver.source_side`), which nothing on the feeder can lower.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gridpilot.control.flisr3p.results import (
    Flisr3pResult,
    Indications3p,
    StateCheck,
    check_state,
)
from gridpilot.control.flisr3p.sections import Sections3p
from gridpilot.errors import UnknownComponentError, ValidationError
from gridpilot.model.limits import OperatingLimits
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.twin.unbalanced.topology import (
    SwitchedResult,
    SwitchingSolver,
    normalise_ties,
    solve_switched,
)

log = logging.getLogger(__name__)

EXHAUSTIVE_MAX_SWITCHES = 12  # a plan failing the limits is searched again over all states
STATIC_CHECKS = 3  # candidates failing with frozen taps re-solved with the controls, per island
FALLBACK_MAX_CHECKS = 12  # above that, the moves serving most are solved, at most this many
FALLBACK_STATIC_CHECKS = 6  # of which at most this many with the static controls (and taps)
TAP_COMMANDS = 4  # regulator taps a plan may lower to bring the band's upper edge back


@dataclass
class _Plan:
    section: int
    isolate: list[str]
    reclose: list[str]
    restore: list[str]
    shed: list[str]
    state: dict[str, bool]
    after: StateCheck
    interrupted_kw: float
    notes: list[str]
    verified_by: str


class Flisr3pEngine:
    """FLISR for one three-phase feeder (see the module docstring).

    ``protection``: branches protection devices sit on (a recloser on a line, fuses), so
    that their opening can be represented; ``load_mult`` the load level decided for;
    ``relax_to_prefault`` widens the band to the pre-fault extremes.
    """

    def __init__(
        self,
        grid: ThreePhaseGrid,
        limits: OperatingLimits | None = None,
        protection: tuple[str, ...] = (),
        load_mult: float = 1.0,
        relax_to_prefault: bool = True,
    ) -> None:
        if not isinstance(grid, ThreePhaseGrid):
            raise ValidationError(
                f"Flisr3pEngine needs a ThreePhaseGrid, got {type(grid).__name__}"
            )
        if not np.isfinite(load_mult) or load_mult < 0:
            raise ValidationError(f"load_mult must be a finite number >= 0, got {load_mult!r}")
        self.grid = grid if "ties" in grid.meta else normalise_ties(grid)
        self.load_mult = load_mult
        base = solve_switched(self.grid, control_mode="static", load_mult=load_mult)
        r = base.result
        self.base = r
        self.solver = SwitchingSolver(self.grid, r.taps, r.cap_states, switchable=protection)
        self.sections = Sections3p.build(self.grid)
        self.protection = tuple(x.lower() for x in protection)
        self.prefault = self.solver.solve(load_mult=load_mult)
        asked = limits or OperatingLimits()
        self.source_side = self.solver.source_side()
        pre = check_state(self.prefault, asked, source_side=self.source_side)
        if relax_to_prefault:
            self.limits = OperatingLimits(
                min(asked.v_min_pu, pre.vmin_pu - 1e-6),
                max(asked.v_max_pu, pre.vmax_pu + 1e-6),
                max(asked.loading_max_pct, pre.max_loading_pct + 1e-6),
            )
        else:
            self.limits = asked
        self._plans: dict[tuple[int, frozenset[str]], _Plan] = {}
        self._evals: dict[frozenset[str], tuple[SwitchedResult, StateCheck]] = {}
        self._verified: dict[frozenset[str], tuple[SwitchedResult, StateCheck]] = {}
        #: per verified open set: regulator taps the plan commands (regcontrol → pu, held)
        self._commands: dict[frozenset[str], dict[str, float]] = {}
        self._zones: dict[tuple[str, frozenset[str]], np.ndarray] = {}  # regulator zones
        #: per verified open set that failed on (or whose tap step was refused for) a
        #: branch-phase's loading: (branch-phase index, % over the limit)
        self._blockers: dict[frozenset[str], tuple[int, float]] = {}
        self.evaluations = 0

    # --- evaluation -------------------------------------------------------------------
    def evaluate(self, state: Mapping[str, bool]) -> tuple[SwitchedResult, StateCheck]:
        """Solve a switch state in the twin and check it (memoised by the open set)."""
        key = frozenset(k for k, on in state.items() if not on)
        hit = self._evals.get(key)
        if hit is None:
            out = self.solver.solve(dict(state), self.load_mult)
            hit = (out, check_state(out, self.limits, source_side=self.source_side))
            self._evals[key] = hit
            self.evaluations += 1
        return hit

    def verify(self, state: Mapping[str, bool]) -> tuple[SwitchedResult, StateCheck]:
        """Solve a switch state with the regulators' and capacitors' static controls settled
        (as OpenDSS's static mode does) and check the whole band (memoised). When only the
        band's upper edge fails, the regulator feeding the highest node-phase is lowered a
        tap at a time (held there: a SCADA tap command, :attr:`commands`) and the rest
        settle again, while the lower edge and the loading hold and up to :data:`TAP_COMMANDS`
        steps (a step that breaks the lower edge or loads a branch-phase past its limit - a
        lower voltage draws more current into constant-power loads - is undone and not
        commanded)."""
        key = frozenset(k for k, on in state.items() if not on)
        hit = self._verified.get(key)
        if hit is None:
            held: dict[str, float] = {}
            out = self.solver.solve_settled(dict(state), self.load_mult)
            chk = check_state(out, self.limits, source_side=self.source_side)
            for _ in range(TAP_COMMANDS):
                if chk.ok or not self._only_high(out, chk):
                    break
                move = self._tap_down(out, dict(state), held)
                if move is None:
                    break
                trial = {**held, move[0]: move[1]}
                out2 = self.solver.solve_settled(dict(state), self.load_mult, trial)
                chk2 = check_state(out2, self.limits, source_side=self.source_side)
                over = chk2.max_loading_pct > self.limits.loading_max_pct + 1e-9
                if chk2.vmin_pu < self.limits.v_min_pu - 1e-9 or over:
                    log.debug("tap %s -> %.5f rejected: %s", move[0], move[1], chk2.why)
                    if over:
                        self._blocker(key, out2)
                    break  # the rejected step is not commanded: the plan keeps ``held``
                held, out, chk = trial, out2, chk2
            if chk.max_loading_pct > self.limits.loading_max_pct + 1e-9:
                self._blocker(key, out)
            self._commands[key] = {k: held[k] for k in held if k in out.result.taps}
            hit = (out, chk)
            self._verified[key] = hit
            self.evaluations += 1
        return hit

    def _blocker(self, key: frozenset[str], out: SwitchedResult) -> None:
        """Record the branch-phase loaded most in ``out`` and its excess over the limit."""
        j, pct = _worst_branch(out)
        self._blockers[key] = (j, pct - self.limits.loading_max_pct)

    def _only_high(self, out: SwitchedResult, chk: StateCheck) -> bool:
        """The check fails on the band's upper edge only."""
        lim = self.limits
        return (chk.vmax_pu > lim.v_max_pu + 1e-9 and chk.vmin_pu >= lim.v_min_pu - 1e-9
                and chk.max_loading_pct <= lim.loading_max_pct + 1e-9)  # fmt: skip

    def _tap_down(
        self, out: SwitchedResult, state: dict[str, bool], held: dict[str, float]
    ) -> tuple[str, float] | None:
        """The regulator nearest above the highest energised node-phase (the one feeding the
        fewest node-phases among those feeding it) one tap lower; None if there is none or
        it is at its end."""
        v = np.where(out.energised & ~self.source_side, out.result.v_pu, -np.inf)
        node = int(np.argmax(v))
        best: tuple[int, str] | None = None
        for rc in self.grid.regcontrols:
            name = rc.name.lower()
            if not rc.enabled or name not in out.result.taps:
                continue
            zkey = (name, frozenset(k for k, on in state.items() if not on))
            zone = self._zones.get(zkey)
            if zone is None:
                zone = self._zones[zkey] = self.solver.regulator_zone(name, state)
            if zone[node] and (best is None or zone.sum() < best[0]):
                best = (int(zone.sum()), name)
        if best is None:
            return None
        rc = next(r for r in self.grid.regcontrols if r.name.lower() == best[1])
        w = next(t for t in self.grid.transformers
                 if t.name.lower() == rc.transformer.lower()).windings[rc.tap_winding - 1]  # fmt: skip
        sign = -1.0 if rc.tap_winding == rc.winding else 1.0
        now = held.get(best[1], out.result.taps[best[1]])
        new = min(max(now + sign * w.tap_step, w.min_tap), w.max_tap)
        return None if abs(new - now) < 1e-12 else (best[1], new)

    def feasible(self, state: Mapping[str, bool]) -> tuple[SwitchedResult, bool]:
        """Screen a candidate: frozen taps first, the controls' verification if that fails."""
        out, _ = self.evaluate(state)
        if check_state(out, self.limits, upper=False).ok:
            return out, True
        out2, chk2 = self.verify(state)
        return out2, chk2.ok

    def final_check(self, state: Mapping[str, bool]) -> tuple[StateCheck, str]:
        """The final state's check and by what: the twin with the pre-fault taps frozen if
        that holds the whole band, else the twin with its static controls acting."""
        _, chk = self.evaluate(state)
        if chk.ok:
            return chk, "unbalanced-twin (taps frozen)"
        chk = self.verify(state)[1]
        n = len(self.controls(state)[1])
        return chk, "unbalanced-twin (static controls settled" + (
            f", {n} regulator tap{'s' * (n > 1)} commanded)" if n else ")"
        )

    def controls(
        self, state: Mapping[str, bool]
    ) -> tuple[dict[str, float], dict[str, float], dict[str, list[int]]]:
        """The regulators' taps and capacitors' states the final ``state`` runs with (the
        frozen pre-fault ones if they hold the limits, else the settled ones), and the tap
        commands of the plan (regcontrol → pu; empty when the local controls suffice)."""
        out, chk = self.evaluate(state)
        if chk.ok:
            return dict(self.base.taps), {}, dict(self.base.cap_states)
        out, _ = self.verify(state)
        key = frozenset(k for k, on in state.items() if not on)
        return dict(out.result.taps), dict(self._commands.get(key, {})), dict(out.result.cap_states)

    # --- locate -----------------------------------------------------------------------
    def locate(self, ind: Indications3p) -> tuple[int, list[str], list[str]]:
        """Faulted section from the indicators: below the deepest switch that picked up and
        whose downstream switches did not. Returns (section, picked switches, notes)."""
        sec = self.sections
        for k in ind.fpi:
            if k.lower() not in sec.ends:
                raise UnknownComponentError("switch", k)
        picked = [k.lower() for k, v in ind.fpi.items() if v and k.lower() in sec.down]
        notes: list[str] = []
        if not picked:
            return sec.source, [], ["no indicator picked up: fault in the source section"]
        deepest = [s for s in picked if not any(sec.up.get(t) == sec.down[s] for t in picked)]
        if len(deepest) > 1:
            notes.append(f"indicators disagree ({sorted(deepest)}): taking the first")
        return sec.down[deepest[0]], sorted(picked), notes

    # --- plan -------------------------------------------------------------------------
    def _start(
        self, section: int, opened: tuple[str, ...]
    ) -> tuple[dict[str, bool], list[str], list[str]]:
        sec = self.sections
        st = dict(self.solver.normal)
        isolate = sec.bounds(section)
        for s in isolate:
            st[s] = False
        reclose: list[str] = []
        for b in opened:
            b = b.lower()
            if b not in st:
                raise UnknownComponentError("protection branch", b)
            if section in self._sections_of(b):  # it bounds or lies in the faulted section
                st[b] = False
                if b not in isolate:
                    isolate.append(b)
            else:
                st[b] = True
                reclose.append(b)
        return st, isolate, reclose

    def _sections_of(self, branch: str) -> set[int]:
        """Sections at the two ends of a branch (a switch or a protected line)."""
        if branch in self.sections.ends:
            return set(self.sections.ends[branch])
        b = next(x for x in self.grid.branches if x.name.lower() == branch)
        return {self.sections.of_bus[b.t1.bus], self.sections.of_bus[b.t2.bus]}

    def _islands(self, st: dict[str, bool], section: int) -> list[set[int]]:
        sec = self.sections
        live_bus = self._live_buses(st)
        dead = {
            s
            for s in range(sec.count)
            if s != section and s not in live_bus and sec.load_kw[s] >= 0
        }
        out: list[set[int]] = []
        seen: set[int] = set()
        for s0 in sorted(dead, key=lambda s: -sec.load_kw[s]):
            if s0 in seen:
                continue
            comp, todo = {s0}, [s0]
            while todo:
                u = todo.pop()
                for sw, (x, y) in sec.ends.items():
                    if st[sw] and u in (x, y):
                        v = y if u == x else x
                        if v in dead and v not in comp:
                            comp.add(v)
                            todo.append(v)
            seen |= comp
            if sec.load_kw[list(comp)].sum() > 0:
                out.append(comp)
        return out

    def _live_buses(self, st: dict[str, bool]) -> set[int]:
        mask = self.solver.energised(st)
        return {
            self.sections.of_bus[b] for (b, _), m in zip(self.solver.nodes, mask, strict=True) if m
        }

    def plan(self, section: int, opened: tuple[str, ...] = ()) -> _Plan:
        """The switching plan for a fault in ``section`` (memoised; see module docstring)."""
        key = (section, frozenset(x.lower() for x in opened))
        hit = self._plans.get(key)
        if hit is not None:
            return hit
        st, isolate, reclose = self._start(section, opened)
        interrupted = self._unserved({**self.solver.normal, **{b.lower(): False for b in opened}})
        notes: list[str] = []
        restore: list[str] = []
        shed: list[str] = []
        tried: set[frozenset[int]] = set()
        while True:
            islands = [i for i in self._islands(st, section) if frozenset(i) not in tried]
            if not islands:
                break
            island = islands[0]
            tried.add(frozenset(island))
            best = self._best_for(st, section, island)
            if best is None:
                notes.append(
                    f"sections {sorted(island)} stay off: no tie restores them within the limits"
                )
                continue
            tie, cut = best
            st[tie] = True
            restore.append(tie)
            if cut:
                st[cut] = False
                shed.append(cut)
        chk, by = self.final_check(st)
        if not chk.ok:
            alt = self._fallback(section, st, isolate)
            if alt is not None:
                notes.append(f"the greedy plan failed the limits ({chk.why}); {alt[1]}")
                st = alt[0]
                restore = sorted(
                    k for k in self.sections.ends if st[k] and not self.solver.normal[k]
                )
                shed = sorted(k for k in self.sections.ends
                              if not st[k] and self.solver.normal[k] and k not in isolate)  # fmt: skip
                chk, by = self.final_check(st)
        if not chk.ok:
            notes.append(f"final state fails the limits: {chk.why}")
        p = _Plan(section, isolate, reclose, restore, shed, st, chk, interrupted, notes, by)
        self._plans[key] = p
        return p

    def _fallback(
        self, section: int, st: dict[str, bool], isolate: list[str]
    ) -> tuple[dict[str, bool], str] | None:
        """When the greedy plan fails the limits: the radial state keeping the faulted section
        dead that serves most within them - every switch state when the feeder has at most
        :data:`EXHAUSTIVE_MAX_SWITCHES` free switches, else one exchange or one opening from
        the greedy state (openings of switches with a live end only: opening a dead one
        changes nothing; of these, the :data:`FALLBACK_MAX_CHECKS` serving most are solved,
        at most :data:`FALLBACK_STATIC_CHECKS` with the static controls and tap commands,
        those relieving the branch-phase that blocked the greedy plan first:
        :meth:`_static_order`).
        None if none holds the limits."""
        sec = self.sections
        free = sorted(k for k in sec.ends if k not in isolate)
        if len(free) <= EXHAUSTIVE_MAX_SWITCHES:
            import itertools

            cands = [{**st, **dict(zip(free, bits, strict=True))}
                     for bits in itertools.product((False, True), repeat=len(free))]  # fmt: skip
            how = f"searched all {len(cands)} states of the {len(free)} free switches"
            limit = len(cands)
        else:
            live = self._live_buses(st)  # a switch with both ends dead changes nothing
            opened = [k for k in free if st[k] and set(sec.ends[k]) & live]
            cands = [{**st, k: False} for k in opened]
            lost = {k: self._unserved(c) for k, c in zip(opened, cands, strict=True)}
            cands += [c for t in free if not st[t] for k in opened  # a tie that restores
                      if self._unserved(c := {**st, t: True, k: False}) < lost[k] - 1e-9]  # fmt: skip
            how = "searched single exchanges and openings"
            limit = FALLBACK_MAX_CHECKS
        ranked = []
        for c in cands:
            if sec.radial(c):
                ranked.append((-self._unserved(c), c))
        ranked.sort(key=lambda x: x[0], reverse=True)
        top = [c for _, c in ranked[:limit]]
        settle = set(range(len(top)))
        if limit != len(cands):
            settle = set(self._static_order(st, top)[:FALLBACK_STATIC_CHECKS])
        for i, c in enumerate(top):  # most load served first: the first that holds wins
            if self.evaluate(c)[1].ok or (i in settle and self.verify(c)[1].ok):
                return c, how
        return None

    def _static_order(self, st: dict[str, bool], cands: list[dict[str, bool]]) -> list[int]:
        """The order in which fallback candidates get the static controls: where the greedy
        state ``st`` failed on a branch-phase's loading, or a tap command it needed was
        refused for it, first those whose frozen solve takes at least that excess off that
        branch-phase (they shed load it carries), then the rest; by load served otherwise."""
        order = list(range(len(cands)))
        blk = self._blockers.get(frozenset(k for k, on in st.items() if not on))
        if blk is None:
            return order
        j, excess = blk
        base = _loading(self.evaluate(st)[0])[j]
        relief = [base - _loading(self.evaluate(c)[0])[j] for c in cands]
        return sorted(order, key=lambda i: relief[i] < excess - 1e-9)

    def _unserved(self, st: Mapping[str, bool]) -> float:
        return self.solver.unserved_kw(st, self.load_mult)

    def _best_for(
        self, st: dict[str, bool], section: int, island: set[int]
    ) -> tuple[str, str] | None:
        """The (tie, cut) restoring most load of ``island`` within the limits; cut '' = none."""
        sec = self.sections
        live = self._live_buses(st)
        ties = [s for s, (x, y) in sec.ends.items()
                if not st[s] and section not in (x, y)
                and ((x in island and y in live) or (y in island and x in live))]  # fmt: skip
        cuts = [""] + [s for s, (x, y) in sec.ends.items() if st[s] and x in island and y in island]
        cands = []
        dark = self._unserved(st)
        for cut in cuts:
            for tie in ties:
                cand = {**st, tie: True}
                if cut:
                    cand[cut] = False
                if self._unserved(cand) >= dark - 1e-9:
                    continue  # the tie restores no load (ieee8500: a single-phase tie)
                out, _ = self.evaluate(cand)
                ok = check_state(out, self.limits, upper=False).ok
                cands.append((out.served_kw, -out.result.losses_kw, ok, tie, cut, cand))
        cands.sort(key=lambda c: (c[0], c[1]), reverse=True)
        static_left = STATIC_CHECKS
        for _, _, ok, tie, cut, cand in cands:  # most load first: the first that holds wins
            if ok:
                return tie, cut
            if static_left > 0:
                static_left -= 1
                if self.verify(cand)[1].ok:
                    return tie, cut
        return None

    def precompute(self, opened: tuple[str, ...] = ()) -> float:
        """Plan a fault in every section but the source's, with ``opened`` protection
        devices open (e.g. the locked-out head recloser); returns the seconds it took."""
        t0 = time.perf_counter()
        for s in range(self.sections.count):
            if s != self.sections.source and self.sections.load_kw[s] >= 0:
                t1 = time.perf_counter()
                self.plan(s, opened)
                log.info(
                    "%s: section %d planned in %.2f s", self.grid.name, s, time.perf_counter() - t1
                )
        return time.perf_counter() - t0

    # --- respond ----------------------------------------------------------------------
    def respond(self, ind: Indications3p) -> Flisr3pResult:
        """Locate, isolate and restore for the control room's indications; returns a
        :class:`Flisr3pResult` (``decision_ms`` wall time, plans precomputed or not)."""
        t0 = time.perf_counter()
        if not ind.lockout:
            return self._no_switching(ind, t0)
        section, picked, notes = self.locate(ind)
        key = (section, frozenset(x.lower() for x in ind.opened))
        cached = key in self._plans
        p = self.plan(section, ind.opened)
        ms = (time.perf_counter() - t0) * 1e3
        return self._result(p, picked, notes, ms, cached)

    def _no_switching(self, ind: Indications3p, t0: float) -> Flisr3pResult:
        """A fuse cleared the fault: the lateral stays off until the crew replaces it."""
        st = {**self.solver.normal, **{b.lower(): False for b in ind.opened}}
        lost = self._unserved(st)
        ms = (time.perf_counter() - t0) * 1e3
        chk, by = self.final_check(st)
        p = _Plan(-1, [], [], [], [], st, chk, lost,
                  [f"cleared by {', '.join(ind.opened) or 'a reclose'}: nothing to switch"], by)  # fmt: skip
        return self._result(p, [], [], ms, False)

    def _result(
        self, p: _Plan, picked: list[str], notes: list[str], ms: float, cached: bool
    ) -> Flisr3pResult:
        sec = self.sections
        actions = [(s, "open", "isolate") for s in p.isolate] + [
            (s, "open", "shed") for s in p.shed
        ]
        actions += [(s, "close", "reclose") for s in p.reclose] + [
            (s, "close", "restore") for s in p.restore
        ]
        unserved = self._unserved(p.state)
        taps, commands, caps = self.controls(p.state)
        return Flisr3pResult(
            section=p.section,
            located_by=picked,
            isolate=list(p.isolate),
            reclose=list(p.reclose),
            restore=list(p.restore),
            shed=list(p.shed),
            plan=actions,
            interrupted_kw=p.interrupted_kw,
            isolated_kw=float(sec.load_kw[p.section]) * self.load_mult if p.section >= 0 else 0.0,
            restored_kw=max(p.interrupted_kw - unserved, 0.0),
            unserved_kw=unserved,
            after=p.after,
            limits_used=self.limits.as_dict(),
            verified=p.after.ok,
            verified_by=p.verified_by,
            decision_ms=ms,
            final_state=dict(p.state),
            from_cache=cached,
            notes=notes + p.notes,
            taps=taps,
            tap_commands=commands,
            cap_states=caps,
        )


def _worst_branch(out: SwitchedResult) -> tuple[int, float]:
    """The index of the rated branch-phase loaded most (% of its rating) and its loading."""
    load = _loading(out)
    j = int(np.argmax(load))
    return j, float(load[j])


def _loading(out: SwitchedResult) -> np.ndarray:
    """Per branch-phase: % of its normal rating (0 where unrated)."""
    rating = np.array([m[3] for m in out.result.branch_meta])
    i = np.abs(out.result.branch_i_a)
    return np.where(rating > 0, 100.0 * i / np.where(rating > 0, rating, 1.0), 0.0)
