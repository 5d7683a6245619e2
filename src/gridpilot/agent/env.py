"""A Gymnasium-compatible environment over the twin (the Grid2Op idea), without depending on Gymnasium.

``GridEnv`` follows the Gymnasium API: ``reset(seed=None, options=None) -> (obs, info)``,
``step(action) -> (obs, reward, terminated, truncated, info)``, ``observation_space`` and
``action_space`` with ``shape``/``n``, ``sample()`` and ``contains()``. Gymnasium is not
installed in gridpilot's environment; wrap it with ``gymnasium.Env`` if you need the class.

Actions (``Discrete``): 0 does nothing; ``1..S`` toggles switch ``k-1`` (table order);
``S+1..S+L`` sets the demand-response level to ``dr_levels[j]``. Every action passes the same
:class:`SafetyGuard` as the orchestrator; a refused action does nothing and costs
``refusal_penalty``. The reward is minus the step's cost in EUR: energy not served at VOLL,
voltage and loading violations, losses at the energy price, DR compensation and switching.

The world is ``gridpilot.field``'s simulator (:class:`~gridpilot.agent.fieldworld.FieldWorld`,
``world="field"``, the default) or the twin-only :class:`~gridpilot.agent.world.SimWorld`
(``world="sim"``). On the field world a DR level acts on the grid's flexible loads and, as on
the orchestrator's loop, on the households' devices through
:class:`~gridpilot.agent.flexlink.FlexDR` (a ``load_shed`` event at that level); the event's
expected reduction counts as curtailed energy in the reward.

The observation's voltages are the sensors' (``observe="sensors"``, the default: a voltage
per bus as the link carries it) or the loop's state estimate (``observe="estimate"``:
:class:`~gridpilot.agent.estimating.LoopEstimator`, the orchestrator's robust estimate from
the voltage and flow sensors and the meters, bad data removed; 0 where a bus is dark or the
estimate did not converge).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from gridpilot.agent.actions import Action, Plan
from gridpilot.agent.estimating import LoopEstimate, LoopEstimator
from gridpilot.agent.fieldworld import FieldWorld
from gridpilot.agent.flexlink import FlexDR
from gridpilot.agent.guard import GuardLimits, SafetyGuard
from gridpilot.agent.world import AGENT_ENGINE, Observation, SimWorld
from gridpilot.errors import ValidationError
from gridpilot.model import Grid
from gridpilot.twin import Twin


@dataclass
class Discrete:
    """A Gymnasium-like discrete space ``{0, ..., n-1}``."""

    n: int
    seed: int | None = None

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    @property
    def shape(self) -> tuple[int, ...]:
        """Empty shape, like Gymnasium's."""
        return ()

    def sample(self) -> int:
        """A random element."""
        return int(self._rng.integers(self.n))

    def contains(self, x: Any) -> bool:
        """True if ``x`` is an integer in range."""
        return isinstance(x, int | np.integer) and 0 <= int(x) < self.n


@dataclass
class Box:
    """A Gymnasium-like box space of float32 vectors within ``[low, high]``."""

    low: np.ndarray
    high: np.ndarray
    seed: int | None = None

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    @property
    def shape(self) -> tuple[int, ...]:
        """Vector shape."""
        return tuple(self.low.shape)

    def sample(self) -> np.ndarray:
        """A uniform random vector."""
        return self._rng.uniform(self.low, self.high).astype(np.float32)

    def contains(self, x: Any) -> bool:
        """True if ``x`` has the shape and lies within the bounds."""
        a = np.asarray(x)
        return a.shape == self.shape and bool(np.all(a >= self.low) and np.all(a <= self.high))


@dataclass
class Costs:
    """Prices of the reward (EUR): VOLL per MWh not served, per violating minute, energy, DR, switching."""

    voll_eur_mwh: float = 10_000.0
    violation_eur_min: float = 50.0
    energy_eur_mwh: float = 120.0
    dr_eur_mwh: float = 150.0
    switch_eur: float = 20.0
    refusal_penalty: float = 100.0


class GridEnv:
    """Gymnasium-style environment: a world stepped by an agent's discrete actions.

    ``GridEnv(grid, episode_steps=120, step_s=60, fault_prob=1.0, dr_levels=(0, .5, 1),
    world="field")``; each episode starts at a random hour of a random summer or winter day
    and, with ``fault_prob``, puts a permanent fault on a random line at a random step of the
    first half. ``world``: ``field`` (:class:`FieldWorld`, seeded from the episode's seed) or
    ``sim`` (:class:`SimWorld`). ``observe``: ``sensors`` or ``estimate`` (module docstring).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(  # noqa: PLR0913
        self,
        grid: Grid,
        *,
        episode_steps: int = 120,
        step_s: float = 60.0,
        fault_prob: float = 1.0,
        dr_levels: tuple[float, ...] = (0.0, 0.5, 1.0),
        limits: GuardLimits | None = None,
        costs: Costs | None = None,
        world: str = "field",
        observe: str = "sensors",
    ) -> None:
        if episode_steps <= 0:
            raise ValidationError(f"episode_steps: must be positive, got {episode_steps}")
        if world not in ("field", "sim"):
            raise ValidationError(f"world: unknown {world!r}; known: field, sim")
        if observe not in ("sensors", "estimate"):
            raise ValidationError(f"observe: unknown {observe!r}; known: sensors, estimate")
        self.world_kind = world
        self.grid = grid.copy()
        self.episode_steps = episode_steps
        self.step_s = step_s
        self.fault_prob = fault_prob
        self.dr_levels = tuple(dr_levels)
        self.limits = limits or GuardLimits()
        self.costs = costs or Costs()
        self.twin = Twin(self.grid, engine=AGENT_ENGINE)
        self.guard = SafetyGuard(self.grid, self.twin, self.limits)
        nb, nl, ns = len(self.grid.bus), len(self.grid.line), len(self.grid.switch)
        self.n_obs = nb + nl + 2 * ns + 1
        low = np.zeros(self.n_obs, np.float32)
        high = np.concatenate(
            [np.full(nb, 1.5), np.full(nl, 10.0), np.ones(2 * ns), np.ones(1)]
        ).astype(np.float32)
        self.observation_space = Box(low, high)
        self.action_space = Discrete(1 + ns + len(self.dr_levels))
        self.world: FieldWorld | SimWorld | None = None
        self.flexdr: FlexDR | None = None  # household DR on the field world
        self._obs: Observation | None = None
        self._rng = np.random.default_rng()
        self._fault_at = -1
        self._fault_line = -1
        self.faulted: set[int] = set()
        self.estimator = LoopEstimator(self.grid) if observe == "estimate" else None
        self.estimate: LoopEstimate | None = None  # the last one (observe="estimate")

    def _vector(self, o: Observation) -> np.ndarray:
        w = self.world
        assert w is not None
        v = o.v_pu
        if self.estimator is not None:
            self.estimate = self.estimator.estimate(o)
            v = np.where(np.isfinite(self.estimate.v_pu), self.estimate.v_pu, 0.0)
        return np.concatenate(
            [v, o.line_loading_pct / 100.0, o.switch_closed, o.fpi, [w.dr_level]]
        ).astype(np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; returns (observation, info)."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        rng = self._rng
        day = int(rng.choice([20, 200])) + int(rng.integers(0, 10))
        start = day * 96 + int(rng.integers(0, 96))
        horizon = int(self.episode_steps * self.step_s / 900) + 8
        if self.world_kind == "field":
            self.world = FieldWorld(
                self.grid,
                step_s=self.step_s,
                start_step=start,
                horizon_steps=horizon,
                seed=int(rng.integers(2**31)),
            )
            self.flexdr = FlexDR(self.grid, self.world.devices)
        else:
            self.world = SimWorld(
                self.grid, step_s=self.step_s, start_step=start, horizon_steps=horizon
            )
            self.flexdr = None
        self.guard = SafetyGuard(self.grid, self.twin, self.limits)
        opts = options or {}
        self._fault_at = -1
        if rng.random() < self.fault_prob or "fault_line" in opts:
            self._fault_line = int(opts.get("fault_line", rng.choice(self.grid.line.ids)))
            self._fault_at = int(
                opts.get("fault_step", rng.integers(1, max(self.episode_steps // 2, 2)))
            )
        self.faulted = set()
        self._obs = self.world.observe()
        return self._vector(self._obs), {"time": str(self._obs.time), "fault_step": self._fault_at}

    def decode(self, action: int) -> list[Action]:
        """The actions behind a discrete action number."""
        ns = len(self.grid.switch)
        a = int(action)
        if a == 0:
            return []
        if a <= ns:
            assert self.world is not None
            k = a - 1
            return [
                Action(
                    "switch",
                    int(self.grid.switch.ids[k]),
                    0.0 if self.world.switch_closed[k] else 1.0,
                )
            ]
        return [Action("dr", None, float(self.dr_levels[a - ns - 1]))]

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply ``action`` (through the guard), advance one step; returns Gymnasium's 5-tuple."""
        if self.world is None or self._obs is None:
            raise ValidationError("GridEnv: call reset() before step()")
        if not self.action_space.contains(action):
            raise ValidationError(
                f"action: must be an integer in [0, {self.action_space.n}), got {action!r}"
            )
        w, c = self.world, self.costs
        acts = self.decode(int(action))
        cost = 0.0
        refused: list[str] = []
        if acts:
            plan = Plan(acts, "agent action", "env")
            dem = w.demand()
            lvl = acts[0].value if acts[0].kind == "dr" else w.dr_level
            verdict = self.guard.check(
                plan,
                switch_closed=w.switch_closed.copy(),
                injections=w.controlled(dem),
                faulted_lines=self.faulted,
                now_s=w.t * w.step_s,
                injections_after=w.controlled(dem, dr_level=lvl),
            )
            if verdict.ok:
                for a in acts:
                    if a.kind == "switch":
                        w.set_switch(int(a.target or 0), bool(a.value))
                        cost += c.switch_eur
                    else:
                        w.set_dr(float(a.value))
                        if self.flexdr is not None and isinstance(w, FieldWorld):
                            w.apply(self.flexdr.set_level(float(a.value), w.time, source="env"))
                self.guard.commit(plan, w.t * w.step_s)
            else:
                refused = verdict.reasons
                cost += c.refusal_penalty
        w.advance()
        if w.t == self._fault_at:
            w.inject("fault", line=self._fault_line)
        o = w.observe()
        self._obs = o
        kpi = step_kpis(w, o)
        h = w.step_s / 3600.0
        kpi["household_dr_mw"] = self._household_dr_mw()
        kpi["curtailed_mwh"] += kpi["household_dr_mw"] * h
        if self.flexdr is not None and isinstance(w, FieldWorld):  # the event's next set points
            w.apply(self.flexdr.tick(o.time, float(o.load_p_mw.sum())))
        cost += (
            kpi["ens_mwh"] * c.voll_eur_mwh
            + (kpi["v_violation"] or kpi["loading_violation"]) * c.violation_eur_min * w.step_s / 60
        )
        cost += (
            o.losses_kw / 1e3 if np.isfinite(o.losses_kw) else 0.0
        ) * h * c.energy_eur_mwh + kpi["curtailed_mwh"] * c.dr_eur_mwh
        truncated = w.t >= self.episode_steps
        vec = self._vector(o)
        info = {"kpis": kpi, "refused": refused, "time": str(o.time), "cost_eur": cost}
        if self.estimate is not None:
            info["estimate"] = {
                "converged": self.estimate.converged,
                "removed": list(self.estimate.removed),
            }
        return vec, -float(cost), False, bool(truncated), info

    def _household_dr_mw(self) -> float:
        """Expected reduction of the households' DR event now, MW (0 without one)."""
        act = self.flexdr.active if self.flexdr is not None else None
        if act is None or not act.record.expected_reduction_mw:
            return 0.0
        red = act.record.expected_reduction_mw
        return float(red[min(max(act.step, 0), len(red) - 1)])

    def close(self) -> None:
        """Nothing to release (Gymnasium API)."""


def step_kpis(
    world: FieldWorld | SimWorld,
    o: Observation,
    v_band: tuple[float, float] = (0.90, 1.10),
    loading_max_pct: float = 100.0,
    household_shed_mw: float = 0.0,
) -> dict[str, Any]:
    """KPIs of one step: energy not served and curtailed (MWh), customers off, violation flags, import (MW).

    Energy not served counts the demand (after DR) of loads on de-energised buses; curtailed
    energy the demand response cuts: the world's own DR model (loads' enrolled share, flexible
    loads, EV stations) plus ``household_shed_mw``, what household devices shed in a DR event
    on the field world (the event's expected reduction at this step, ``FlexDR.expected_shed_mw``:
    the field has no counterfactual of its own).
    """
    g = world.grid
    dem = world.demand(o.t)
    ctl = world.controlled(dem)
    h = world.step_s / 3600.0
    lb = g.bus.position_map(g.load["bus"])
    off = ~o.energised[lb]
    ens = float(ctl["load_p_mw"][off].sum()) + float(
        ctl["flex_p_mw"][~o.energised[g.bus.position_map(g.flex_load["bus"])]].sum()
        if len(g.flex_load)
        else 0.0
    )
    curtailed = float(
        (dem["load_p_mw"] - ctl["load_p_mw"]).sum()
        + (dem["flex_p_mw"] - ctl["flex_p_mw"]).sum()
        + (dem["ev_p_mw"] - ctl["ev_p_mw"]).sum()
        + max(float(household_shed_mw), 0.0)
    )
    v = o.v_pu[o.energised]
    vviol = bool(v.size and ((v.min() < v_band[0] - 1e-9) or (v.max() > v_band[1] + 1e-9)))
    lviol = bool(o.max_loading_pct > loading_max_pct)
    return {
        "ens_mwh": ens * h,
        "curtailed_mwh": curtailed * h,
        "customers_off": int(g.load["customers"][off].sum()),
        "customers_off_mask": off,
        "v_violation": vviol,
        "loading_violation": lviol,
        "import_mw": o.source_p_mw,
        "losses_kw": o.losses_kw,
    }
