"""A three-phase world: a :class:`ThreePhaseGrid` in simulated time, physics per node-phase.

:class:`ThreePhaseWorld` is the loop's :class:`~gridpilot.agent.worldtypes.World` on an
unbalanced feeder (``ieee123``, ``ieee8500``, any OpenDSS ``.dss``):

- time advances through the feeder's load shapes (each load's ``daily``/``yearly`` shape, else
  OpenDSS's ``default`` one) with AR(1) noise per load, and through the scenario's
  conditions (heatwave, EV surge, wind drop ...);
- the physics is the unbalanced twin's (:mod:`gridpilot.twin.unbalanced`), per node-phase,
  with the regulators' and capacitors' local controls stepped in time, and switching with
  de-energised sections per node-phase (:mod:`gridpilot.twin.unbalanced.topology`, through
  :func:`gridpilot.twin.unbalanced.islands.energised_subgrid`); the feeder's normally-open
  ties are made explicit first (:func:`~gridpilot.twin.unbalanced.topology.normalise_ties`:
  ``ieee123``'s Sw7 and Sw8, ``ieee8500``'s disabled switches), so that they are open
  switches of the world and of the loop's view, which FLISR can close;
- the loop sees a positive-sequence view of the feeder
  (:func:`gridpilot.model.threephase.balanced.balanced_view`) as its ``grid``: one bus, line
  and switch per feeder bus, branch and switch. Its telemetry per view bus is the node-phase
  furthest from 1 pu (head and regulator SCADA, meters), its alarms per node-phase
  (:class:`~gridpilot.agent.worldtypes.AlarmingWorld`, ANSI C84.1 Range A by default);
- faults are studied per phase in the present switch state and the feeder's protection acts
  on them (:mod:`gridpilot.agent.fieldprot3p`): a fault on a fused lateral is tripped by the
  head recloser's fast shots first (fuse saving: a temporary fault is gone at the reclose),
  then a permanent one blows the lateral's fuse; a fault on the main feeder locks the
  recloser out (``breaker_trip`` on its switch; a recloser on a line the view has no switch
  for, ieee8500's head, trips the nearest switch upstream of the fault in the view instead,
  which FLISR can reclose). The control side sees telemetry only: the
  recloser's operations (``recloser_operation``), the switches' fault-passage indicators and
  the measurements; a blown fuse is seen as its lateral's buses going dark. A fault no
  device of the scheme sees trips the nearest switch upstream in the view
  (:class:`~gridpilot.agent.world.SimWorld`'s model);
- a regulator tap commanded by SCADA (:meth:`ThreePhaseWorld.set_tap`, e.g. a FLISR plan's
  tap commands) is held there until the crew hands the feeder back (``repair``);
- the demo fleet (PV, wind, batteries, water heaters, EV chargers) sits on the view's buses
  and, in the physics, spread over the phases present at each bus.

It is a :class:`~gridpilot.agent.worldtypes.PhaseAwareWorld`: ``grid3p`` and
:meth:`ThreePhaseWorld.phase_result` (the latest per-node-phase result) for the API and the
scenario KPIs.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from gridpilot.agent.fieldprot3p import FieldProtection3p, fault_spec
from gridpilot.agent.phaseinj import PhaseInjections
from gridpilot.agent.phasemeters import PhaseMeters
from gridpilot.agent.phasephysics import PhasePhysics, Step, regulator_names
from gridpilot.agent.world import AGENT_ENGINE, Observation, SimWorld
from gridpilot.errors import GridpilotError, ValidationError
from gridpilot.field.grid_devices import storage_mw, storage_soc_after
from gridpilot.field.protection import reported_pickups
from gridpilot.field.protection3p import ProtectionOutcome
from gridpilot.model import GenKind, OperatingLimits, Profiles, default_profiles
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.model.threephase.balanced import PhaseView, balanced_view
from gridpilot.twin.unbalanced import UnbalancedResult
from gridpilot.twin.unbalanced.faults import Fault
from gridpilot.twin.unbalanced.topology import normalise_ties

log = logging.getLogger(__name__)
NOISE_SIGMA = 0.02  # per-load AR(1) noise on the shapes (relative)
NOISE_RHO = 0.9
SETTLE_S = 600.0  # the regulators' time to settle before the start
PHASE_NAMES = {"a": 1, "b": 2, "c": 3, "1": 1, "2": 2, "3": 3}


def view_profiles(view: PhaseView, grid3p: ThreePhaseGrid, steps: int) -> Profiles:
    """gridpilot's default shapes plus one column per feeder load shape; links the view's
    loads to their shape's column and its generators to ``pv``/``wind``."""
    base = default_profiles(steps)
    shapes = sorted({s for s in view.load_shape.values() if s})
    hours = (base.index - base.index[0]) / np.timedelta64(1, "h")
    cols = [grid3p.loadshapes[s].at(hours.astype(float)) for s in shapes]
    values = np.column_stack([base.values, *cols]) if cols else base.values
    prof = Profiles(base.index, [*base.names, *[f"shape:{s}" for s in shapes]], values)
    g = view.grid
    col = {s: len(base.names) + k for k, s in enumerate(shapes)}
    ids = [int(x) for x in g.load.ids]
    g.load["p_profile"] = np.array(
        [col.get(view.load_shape.get(i) or "", -1) for i in ids], np.int32
    )
    g.load["q_profile"] = g.load["p_profile"].copy()
    gk = g.generator["kind"]
    g.generator["p_profile"] = np.select([gk == GenKind.PV, gk == GenKind.WIND], [2, 3], -1).astype(
        np.int32
    )
    return prof


def fleet_buses(view: PhaseView, grid3p: ThreePhaseGrid) -> np.ndarray:
    """View bus ids the demo fleet may sit on: three-phase primary buses (1 kV and above) with
    load, else any three-phase primary bus (feeders whose loads are on secondaries, ieee8500):
    the fleet's MW-scale units belong on the primary."""
    phases = grid3p.bus_nodes()
    g = view.grid
    kv = dict(zip(g.bus.ids.tolist(), g.bus["v_nom_kv"].tolist(), strict=True))
    prim = [
        view.bus_id[b]
        for b, ns in phases.items()
        if {1, 2, 3} <= ns and kv.get(view.bus_id.get(b, -1), 0.0) >= 1.0
    ]
    real = [lid for lid, m in view.load_members.items() if m]  # not the capacitors' entries
    load_bus = {int(b) for b in g.load["bus"][g.load.index_of(real)]} if real else set()
    loaded = sorted(set(prim) & load_bus)
    return np.asarray(loaded or sorted(set(prim)) or g.load["bus"], np.int64)


class ThreePhaseWorld(SimWorld):
    """A three-phase feeder in simulated time (see the module notes).

    ``ThreePhaseWorld(grid3p, step_s=60, start_step=0, fleet=True)``; ``limits`` the node-phase
    alarm band (default ANSI C84.1 Range A, 0.95-1.05 pu), ``noise`` the loads' relative
    noise (0 for none), ``seed`` its generator.
    """

    def __init__(  # noqa: PLR0913
        self,
        grid3p: ThreePhaseGrid,
        *,
        step_s: float = 60.0,
        start_step: int = 0,
        dr_share: float = 0.15,
        horizon_steps: int = 96 * 8,
        fleet: bool = True,
        limits: OperatingLimits | None = None,
        noise: float = NOISE_SIGMA,
        seed: int = 0,
    ) -> None:
        if not isinstance(grid3p, ThreePhaseGrid):
            raise ValidationError(f"grid3p: needs a ThreePhaseGrid, got {type(grid3p).__name__}")
        if not 0.0 <= noise < 1.0:
            raise ValidationError(f"noise: must be within [0, 1), got {noise}")
        grid3p = grid3p if "ties" in grid3p.meta else normalise_ties(grid3p)
        self.grid3p = grid3p
        self.view = balanced_view(grid3p)
        vg = self.view.grid
        if fleet:
            from gridpilot.agent.fleet import add_demo_fleet

            add_demo_fleet(vg, grid3p.name, fleet_buses(self.view, grid3p))
        vg.profiles = view_profiles(self.view, grid3p, start_step + max(horizon_steps, 96 * 8) + 96)
        super().__init__(vg, step_s=step_s, start_step=start_step, dr_share=dr_share,
                         horizon_steps=horizon_steps, engine=AGENT_ENGINE)  # fmt: skip
        self.limits = limits or OperatingLimits()
        self.injections = PhaseInjections(grid3p, self.view, self.grid)
        self.physics = PhasePhysics(self.injections.grid, self.view)
        self._rng = np.random.default_rng(seed)
        self._noise_sigma = float(noise)
        self._noise = np.zeros(len(grid3p.loads))
        self._noise_t = -1
        self._bus_nodes = self._node_groups()
        self._step: Step | None = None
        index = {n: i for i, n in enumerate(self.physics.nodes)}
        loads = grid3p.loads
        self._load_node = np.array(
            [index.get((ld.terminal.bus, next((n for n in ld.terminal.nodes if n > 0), 1)), 0)
             for ld in loads], np.int64,
        )  # fmt: skip
        self._load_kw = np.array([ld.kw for ld in loads], np.float64)
        self._load_view = np.full(len(loads), -1, np.int64)  # feeder load -> view load position
        for pos, lid in enumerate(self.grid.load.ids):
            self._load_view[self.view.load_members.get(int(lid), [])] = pos
        self._view_metered = np.isin(np.arange(len(self.grid.load)), self._load_view)
        self.meters = PhaseMeters(self.grid, self.view.load_members, self._load_node, seed)
        caps = {k: list(v) for k, v in self.physics.caps.items()}
        # the fault studies' network: the feeder's own taps (fault currents hardly move with them)
        self.field = FieldProtection3p(grid3p, dict(self.physics.taps), caps)
        self._settle()
        self._faults: dict[int, Fault] = {}  # view line -> the fault on it
        self._switch_id = {n: k for k, n in self.view.switch_branch.items()}
        self.regulators = regulator_names(grid3p)

    def _settle(self) -> None:
        """The feeder as it runs before ``t == 0``: the regulators settled on the start's
        injections, and the loop's view given those taps (its model of the regulators)."""
        mp, mq = self.injections.multipliers(self.grid, self.controlled(self.demand()))
        t = self.time.astype("datetime64[s]").astype(np.int64)
        self.physics.tod_h = float(t % 86400) / 3600.0  # local controls' time of day (h)
        st = self.physics.settle(self.open_branches(), mp, mq, SETTLE_S)
        self.physics.tap_ops = self.physics.cap_ops = 0
        self._view_taps()
        self.unbalance = np.ones(len(self.grid.line))  # per view line: worst phase / mean
        if st.converged:
            self._derate_for_unbalance(st)

    def _derate_for_unbalance(self, st: Step) -> None:
        """The view's line ratings read as its worst phase: each line's rating divided by its
        phase unbalance in the settled start (largest conductor current over their mean). The
        view carries about the mean of the phase currents; without this the loop's balanced
        model sees a line at, e.g., 83 % whose phase A is at 105 % (ieee123's trunk, see
        docs/agent.md) and does not relieve it."""
        c = self.physics.compiled(self.open_branches())
        i = np.abs(st.result.branch_i_a)
        rows = c.row_line >= 0
        n = len(self.grid.line)
        imax, isum, cnt = np.zeros(n), np.zeros(n), np.zeros(n)
        np.maximum.at(imax, c.row_line[rows], i[rows])
        np.add.at(isum, c.row_line[rows], i[rows])
        np.add.at(cnt, c.row_line[rows], 1.0)
        mean = isum / np.maximum(cnt, 1.0)
        self.unbalance = np.where((cnt >= 2) & (mean > 1.0), imax / np.maximum(mean, 1e-9), 1.0)
        self.grid.line["max_i_ka"] = self.grid.line["max_i_ka"] / self.unbalance

    def _view_taps(self) -> None:
        """The view's (and the loop-facing grid's) transformer taps from the regulators' now."""
        xf = {r.name.lower(): r.transformer.lower() for r in self.grid3p.regcontrols}
        self.view.set_taps({xf[k]: v for k, v in self.physics.taps.items() if k in xf})
        self.grid.transformer["tap_pos"] = self.view.grid.transformer["tap_pos"]

    def _node_groups(self) -> list[np.ndarray]:
        """Per view bus, the full node positions of its phases 1-3."""
        pos = {b: i for i, b in enumerate(self.view.bus_name)}
        groups: list[list[int]] = [[] for _ in self.view.bus_name]
        for i, (b, n) in enumerate(self.physics.nodes):
            if 1 <= n <= 3 and b in pos:
                groups[pos[b]].append(i)
        return [np.array(g, np.int64) for g in groups]

    # --- the phase-aware face -----------------------------------------------------------------
    def phase_result(self) -> UnbalancedResult | None:
        """The latest per-node-phase result (full node list; 0 V on de-energised nodes)."""
        return None if self._step is None else self._step.result

    def live_nodes(self) -> np.ndarray:
        """Bool per node-phase of the latest result: energised."""
        n = len(self.physics.nodes)
        return np.zeros(n, bool) if self._step is None else self._step.live_nodes.copy()

    def phase_violations(self) -> dict[str, list[tuple[str, float]]]:
        """Energised node-phases outside the limits at the latest step, ``"bus.phase"`` and pu,
        under ``"under"`` and ``"over"``."""
        out: dict[str, list[tuple[str, float]]] = {"under": [], "over": []}
        if self._step is None or not self._step.converged:
            return out
        v = self._step.result.v_pu
        lim = self.limits
        for key, mask in (("under", v < lim.v_min_pu - 1e-9), ("over", v > lim.v_max_pu + 1e-9)):
            for i in np.flatnonzero(mask & self._step.live_nodes):
                b, n = self.physics.nodes[i]
                out[key].append((f"{b}.{n}", round(float(v[i]), 5)))
        return out

    @property
    def alarms(self) -> dict[str, dict[str, Any]]:
        """Node-phase voltage alarms of the latest step (keyed like the loop's alarms)."""
        out: dict[str, dict[str, Any]] = {}
        viol = self.phase_violations()
        lim = self.limits
        for key, word, bound in (("under", "below", lim.v_min_pu), ("over", "above", lim.v_max_pu)):
            if viol[key]:
                worst = (min if key == "under" else max)(viol[key], key=lambda x: x[1])
                out[f"phase_{key}voltage"] = {
                    "severity": "major",
                    "text": f"{len(viol[key])} node-phase(s) {word} {bound} pu; "
                    f"worst {worst[0]} at {worst[1]:.3f} pu",
                    "nodes": [n for n, _ in viol[key][:50]],
                }
        return out

    # --- the customers' meters (MeteredWorld) ---------------------------------------------------
    def meter_registry(self) -> Any:
        """Switch the customer meters' 15-minute reports on; the enrolment registry."""
        return self.meters.registry()

    def meter_frames(self) -> list[bytes]:
        """The meter frames sent at the last :meth:`observe` (read once)."""
        out, self.meters.frames = self.meters.frames, []
        return out

    @property
    def meter_load(self) -> np.ndarray:
        """Each meter's view load position (the gateway it reports through)."""
        return self.meters.meter_load

    def inject_theft(self, meters: np.ndarray | list[int], factor: float = 0.5) -> None:
        """Meter tampering: the meters (positions) report ``factor`` of their import."""
        self.meters.inject_theft(meters, factor)

    # --- events -------------------------------------------------------------------------------
    def inject(self, kind: str, **params: Any) -> dict[str, Any]:
        """:meth:`SimWorld.inject`; a fault may name the feeder ``branch`` instead of the view
        ``line``, its ``phases`` (e.g. ``"a"`` or ``[1]``: single-phase-to-ground; default
        all of the branch's phases), checked against the branch, ``permanent`` (default
        True; False: a temporary fault the recloser's reclose clears) and ``r_ohm``. A
        ``repair`` of every fault also replaces the blown fuses and releases held taps."""
        if kind == "fault":
            params = self._fault_params(dict(params))
            fault = fault_spec(self.view.line_branch[int(params["line"])], params)
            ev = super().inject(kind, **params)
            self._faults[int(params["line"])] = fault
            return ev
        ev = super().inject(kind, **params)
        if kind == "repair":
            for ln in ev["lines"]:
                self._faults.pop(int(ln), None)
            if not self.faulted_lines:
                ev["replaced"] = self.field.replace()
                self.physics.held.clear()
        return ev

    def set_tap(self, regulator: int, tap_pu: float) -> None:
        """A SCADA tap command: regulator ``regulator`` (its position in
        :attr:`regulators`, the feeder's regcontrols) moved to ``tap_pu`` and held there; the
        view's transformers follow (the loop's guard places the same held taps on its own)."""
        if not 0 <= int(regulator) < len(self.regulators):
            raise ValidationError(
                f"regulator: no regulator {regulator} on {self.grid3p.name} "
                f"(0-{len(self.regulators) - 1})"
            )
        self.physics.hold(self.regulators[int(regulator)], float(tap_pu))
        self._view_taps()

    def _fault_params(self, params: dict[str, Any]) -> dict[str, Any]:
        lines = self.view.branch_line()
        if "branch" in params:
            name = str(params.pop("branch")).lower()
            if name in self.view.bank_lines:
                raise ValidationError(
                    f"branch: {name!r} is a transformer bank's common conductor on "
                    f"{self.grid3p.name} (folded into the bank in the loop's view): fault a "
                    "line outside the bank"
                )
            if name not in lines:
                raise ValidationError(f"branch: {name!r} is not a branch of {self.grid3p.name}")
            params["line"] = lines[name]
        line = int(params.get("line", -1))
        self.grid.line.index_of(line)
        branch = next(
            b for b in self.grid3p.branches if b.name.lower() == self.view.line_branch[line]
        )
        have = {int(n) for n in branch.t1.nodes if 1 <= n <= 3}
        ph = params.get("phases")
        if ph is not None:
            asked = list(ph) if isinstance(ph, list | tuple) else [ph]
            want = [PHASE_NAMES.get(str(p).strip().lower()) for p in asked]
            bad = [a for a, w in zip(asked, want, strict=True) if w is None or w not in have]
            if bad:
                raise ValidationError(
                    f"fault phases: branch {branch.name} has phases {sorted(have)}, got {bad[0]!r}"
                )
            params["phases"] = sorted(w for w in want if w is not None)
        return params

    # --- physics -------------------------------------------------------------------------------
    def _noise_now(self) -> np.ndarray:
        if self._noise_sigma > 0 and self._noise_t != self.t:
            eps = self._rng.standard_normal(self._noise.size)
            self._noise = (
                NOISE_RHO * self._noise + math.sqrt(1 - NOISE_RHO**2) * self._noise_sigma * eps
            )
            self._noise_t = self.t
        return np.clip(1.0 + self._noise, 0.0, None)

    def open_branches(self) -> frozenset[str]:
        """The feeder branches (names, lower case) open now: open switches, the protective
        devices protection left open (blown fuses) and the lines of uncleared faults (read by
        the API's feeder view)."""
        sw = self.grid.switch
        opened = {
            self.view.switch_branch[int(i)]
            for i, c in zip(sw.ids, self.switch_closed, strict=True)
            if not c
        }
        opened |= set(self.field.device_open)
        # a faulted line still live (no protection cleared it) is modelled open: its section dark
        opened |= {self.view.line_branch[ln] for ln in self._uncleared}
        return frozenset(opened)

    # --- protection ------------------------------------------------------------------------------
    def _protection(self) -> list[dict[str, Any]]:
        """Every energised fault studied in the present switch state, the feeder's protection
        played against it (see the module notes); the telemetry it leaves as events."""
        events: list[dict[str, Any]] = []
        for _ in range(len(self.faulted_lines) + 1):
            sw = self.grid.switch
            closed = {self.view.switch_branch[int(i)]: bool(c)
                      for i, c in zip(sw.ids, self.switch_closed, strict=True)}  # fmt: skip
            st = self.field.state(closed)
            line = next((ln for ln in sorted(self.faulted_lines - self._uncleared)
                         if ln not in self._faults or self.field.live(self._faults[ln], st)),
                        None)  # fmt: skip
            if line is None:
                break
            out = self._study(line, st)
            if out is None or not out.cleared:  # no device of the scheme sees it
                if not self._trip_nearest(line, events):
                    break
                continue
            events += self._apply(line, out)
        return events

    def _study(self, line: int, st: dict[str, bool]) -> ProtectionOutcome | None:
        """Protection's outcome for the fault on ``line`` (None: no study, e.g. the fault
        study failed: logged, and the view's nearest switch trips)."""
        fault = self._faults.get(line)
        if fault is None:
            return None
        try:
            return self.field.operate(fault, st)
        except (GridpilotError, np.linalg.LinAlgError) as exc:
            log.warning("fault study of %s failed (%s): the nearest switch trips", fault, exc)
            return None

    def _apply(self, line: int, out: ProtectionOutcome) -> list[dict[str, Any]]:
        """The outcome in the world and its telemetry: indicators, the recloser's operations,
        a locked-out switch; a temporary fault cleared by the reclose is gone."""
        g = self.grid
        named = [self._switch_id[n] for n, v in out.fpi.items() if v and n in self._switch_id]
        fpi_ids = reported_pickups(g, np.asarray(named, np.int64), self.fpi_failed, self.fpi_false)
        self.fpi[g.switch.index_of(fpi_ids)] = True
        events: list[dict[str, Any]] = []
        rec = self.field.scheme.recloser
        trips = sum(
            1
            for _, d, a in out.events
            if rec is not None and d == rec.name and a.startswith("trip")
        )
        if rec is not None and trips:
            events.append({"kind": "recloser_operation", "device": rec.name,
                           "switch": self._switch_id.get(rec.branch), "trips": trips,
                           "lockout": rec.branch in out.opened, "fpi": fpi_ids.tolist()})  # fmt: skip
        for br in out.opened:
            sid = self._switch_id.get(br)
            if sid is None and rec is not None and br == rec.branch:
                # a recloser on a line the view cannot command (ieee8500's head): its lockout
                # is the nearest switch upstream of the fault in the view, which FLISR recloses
                self.field.device_open.pop(br, None)
                self._trip_nearest(line, events)
                continue
            if sid is None:  # a fuse (no telemetry): the world keeps it open
                continue
            k = int(g.switch.index_of(sid)[0])
            if self.switch_closed[k]:
                self.switch_closed[k] = False
                self.switch_ops += 1
            events.append({"kind": "breaker_trip", "switch": sid, "fpi": fpi_ids.tolist()})
        if not out.opened:  # the reclose found the fault gone
            self.faulted_lines.discard(line)
            self._faults.pop(line, None)
        return events

    def observe(self) -> Observation:
        """Protection, the injections of the step, the unbalanced power flow; the telemetry."""
        events = self._pending
        self._pending = []
        events += self._protection()
        g = self.grid
        inj: dict[str, Any] = self.controlled(self.demand())
        sp = inj["storage_p_mw"] = storage_mw(self.storage_soc, inj["storage_p_mw"])
        mp, mq = self.injections.multipliers(self.grid, inj, self._noise_now())
        t = self.time.astype("datetime64[s]").astype(np.int64)
        self.physics.tod_h = float(t % 86400) / 3600.0  # local controls' time of day (h)
        st = self._step = self.physics.solve(self.open_branches(), mp, mq, self.step_s)
        n3 = self._load_kw.size
        served_kw = mp[:n3] * self._load_kw * st.live_nodes[self._load_node]
        ms = int(self.time.astype("datetime64[ms]").astype(np.int64))
        self.meters.step(served_kw, st.result.v_pu, self.step_s, ms)
        # the secondary substations' metering: the served power of the feeder loads behind
        # each view load (noise included, as the meters see it)
        has = self._load_view >= 0
        served = np.bincount(self._load_view[has], served_kw[has] / 1e3, minlength=len(g.load))
        inj["load_p_mw"] = np.where(self._view_metered, served, inj["load_p_mw"])
        if len(g.storage):
            self.storage_soc = storage_soc_after(
                self.storage_soc, sp, g.storage["e_mwh"], self.step_s
            )
        obs = self._observation(st, inj, sp, events)
        self.last = obs
        return obs

    def _observation(self, st: Step, inj: dict[str, Any], sp: np.ndarray,
                     events: list[dict[str, Any]]) -> Observation:  # fmt: skip
        g = self.grid
        vpu = st.result.v_pu
        en = np.array([bool(st.live_nodes[n].any()) if n.size else False for n in self._bus_nodes])
        if not st.converged:
            en[:] = False
        v_bus = np.zeros(len(self._bus_nodes))
        for k, n in enumerate(self._bus_nodes):
            if en[k] and n.size:
                # a dead phase (behind an open single-phase tie) gives no reading
                n = n[st.live_nodes[n]]
                v_bus[k] = vpu[n][int(np.argmax(np.abs(vpu[n] - 1.0)))]

        def on(table: str) -> np.ndarray:
            t = g[table]
            return en[g.bus.position_map(t["bus"])] if len(t) else np.zeros(0, bool)

        lb = on("load")
        return Observation(
            t=self.t, time=self.time, step_s=self.step_s, v_pu=v_bus, energised=en,
            line_loading_pct=st.line_loading_pct, switch_closed=self.switch_closed.copy(),
            fpi=self.fpi.copy(), load_p_mw=inj["load_p_mw"] * lb,
            gen_p_mw=inj["gen_p_mw"] * on("generator"), ev_p_mw=inj["ev_p_mw"] * on("ev_charger"),
            flex_p_mw=inj["flex_p_mw"] * on("flex_load"), storage_p_mw=sp.copy(),
            storage_soc=self.storage_soc.copy(), source_p_mw=st.source_p_mw,
            losses_kw=st.result.losses_kw, converged=st.converged, events=events,
            line_p_mw=st.line_p_mw, line_q_mvar=st.line_q_mvar, load_q_mvar=inj["load_q_mvar"] * lb,
        )  # fmt: skip


def is_three_phase(name: str) -> bool:
    """Whether the built-in grid or file ``name`` is a three-phase feeder (no loading)."""
    from gridpilot.model.threephase.builtin import IEEE_FEEDERS

    return name in IEEE_FEEDERS or name.lower().endswith(".dss")


def three_phase_grid(name: str) -> ThreePhaseGrid:
    """Load the three-phase feeder ``name`` (a :class:`ValidationError` if it is balanced)."""
    from gridpilot.model import load_grid

    g = load_grid(name)
    if not isinstance(g, ThreePhaseGrid):
        raise ValidationError(f"grid: {name!r} is not a three-phase feeder")
    return g


__all__ = ["ThreePhaseWorld", "is_three_phase", "three_phase_grid", "view_profiles"]
