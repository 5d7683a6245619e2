"""N-1 contingency sweeps: every line faulted in turn, with and without gridpilot's restoration.

For each line: a permanent fault at a chosen time (default a summer evening peak). Uncontrolled,
protection trips the nearest upstream breaker and everything behind it stays dark until repair;
controlled, the orchestrator's FLISR isolates the faulted section and restores the rest within
limits. Per contingency: unsupplied load and customers in both cases, the lowest voltage and
highest loading after restoration. Sweeps fan out over Dask (``executor="dask"``) in chunks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gridpilot.errors import ValidationError


@dataclass
class ContingencyResult:
    """One contingency: the faulted line and the outcome uncontrolled vs controlled (MW, customers, pu, %)."""

    line: int
    unsupplied_mw_uncontrolled: float
    unsupplied_mw_controlled: float
    customers_off_uncontrolled: int
    customers_off_controlled: int
    vmin_pu_controlled: float | None
    max_loading_pct_controlled: float | None
    actions: int
    refused: int
    # a three-phase world: energised node-phases outside ANSI Range A (after the trip, after
    # restoration) and the lowest node-phase voltage after restoration; None on balanced grids
    node_phase_violations_uncontrolled: int | None = None
    node_phase_violations_controlled: int | None = None
    vmin_node_phase_pu_controlled: float | None = None
    violating_node_phases_controlled: list[str] | None = None


@dataclass
class N1Report:
    """A sweep: per-contingency results, totals side by side, and timing."""

    grid: str
    results: list[ContingencyResult]
    repair_h: float
    wall_s: float
    executor: str
    world: str = "field"
    summary: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "scenario": "n-1",
            "grid": self.grid,
            "contingencies": len(self.results),
            "repair_h": self.repair_h,
            "executor": self.executor,
            "world": self.world,
            "wall_s": round(self.wall_s, 3),
            "summary": self.summary,
            "results": [r.__dict__ for r in self.results],
        }


def _phase_count(world: Any) -> tuple[int | None, list[str]]:
    """Energised node-phases outside the band on a three-phase world (None elsewhere)."""
    if not hasattr(world, "phase_violations"):
        return None, []
    v = world.phase_violations()
    names = [n for n, _ in v["under"] + v["over"]]
    return len(names), names


def _one(grid: Any, line: int, start_step: int, world_kind: str = "field") -> ContingencyResult:
    """One contingency; ``grid`` a balanced grid, or a three-phase feeder (its
    :class:`~gridpilot.agent.world3p.ThreePhaseWorld`, ``world_kind`` ignored)."""
    from gridpilot.agent.fieldworld import FieldWorld
    from gridpilot.agent.orchestrator import Orchestrator
    from gridpilot.agent.world import SimWorld
    from gridpilot.agent.world3p import ThreePhaseWorld
    from gridpilot.model.threephase import ThreePhaseGrid

    world: Any
    if isinstance(grid, ThreePhaseGrid):
        world = ThreePhaseWorld(grid, start_step=start_step, horizon_steps=16)
    else:
        cls: Any = FieldWorld if world_kind == "field" else SimWorld
        world = cls(grid, start_step=start_step, horizon_steps=16)
    orch = Orchestrator(world, history=8)
    orch.step()
    orch.inject("fault", actor="n-1", line=line)
    r1 = orch.step()  # protection trips; FLISR acts in the same step
    o1 = orch.last
    assert o1 is not None
    lb = world.grid.bus.position_map(world.grid.load["bus"])
    dem_u = world.demand()["load_p_mw"]  # uncontrolled: the demand as it is, no demand response
    cust = world.grid.load["customers"]
    off1 = ~o1.energised[lb]
    n_unc, _ = _phase_count(world)
    orch.step()
    o2 = orch.last
    assert o2 is not None
    dem_c = world.controlled(world.demand())["load_p_mw"]  # with the controller's demand response
    off2 = ~o2.energised[lb]
    on = o2.energised
    n_ctl, names = _phase_count(world)
    res = world.phase_result() if n_ctl is not None else None
    live = world.live_nodes() if res is not None else None
    vmin3 = (
        round(float(res.v_pu[live].min()), 5)
        if res is not None and live is not None and live.any()
        else None
    )
    return ContingencyResult(
        line=int(line),
        unsupplied_mw_uncontrolled=round(float(dem_u[off1].sum()), 5),
        unsupplied_mw_controlled=round(float(dem_c[off2].sum()), 5),
        customers_off_uncontrolled=int(cust[off1].sum()),
        customers_off_controlled=int(cust[off2].sum()),
        vmin_pu_controlled=round(float(o2.v_pu[on].min()), 5) if on.any() else None,
        max_loading_pct_controlled=round(o2.max_loading_pct, 2),
        actions=len(r1.executed),
        refused=len(r1.refused),
        node_phase_violations_uncontrolled=n_unc,
        node_phase_violations_controlled=n_ctl,
        vmin_node_phase_pu_controlled=vmin3,
        violating_node_phases_controlled=names[:20] if n_ctl is not None else None,
    )


def _chunk(args: tuple[str, bool, list[int], int, str]) -> list[ContingencyResult]:
    """Worker task: build the grid once, run a chunk of contingencies."""
    from gridpilot.agent.scenarios import scenario_grid
    from gridpilot.agent.world3p import is_three_phase, three_phase_grid

    name, fleet, lines, start, world = args
    grid = three_phase_grid(name) if is_three_phase(name) else scenario_grid(name, fleet)
    return [_one(grid, ln, start, world) for ln in lines]


def n1_sweep(  # noqa: PLR0913
    grid: str = "case33bw",
    lines: list[int] | None = None,
    *,
    executor: str = "serial",
    address: str | None = None,
    workers: int = 2,
    chunks: int | None = None,
    fleet: bool = True,
    start_step: int = 200 * 96 + 19 * 4,
    repair_h: float = 2.0,
    world: str = "field",
) -> N1Report:
    """Fault every line (or ``lines``) in turn; returns an :class:`N1Report`.

    ``executor``: ``serial`` or ``dask`` (``address`` of a scheduler, or a LocalCluster with
    ``workers`` processes); ``chunks`` tasks (default 4 per worker). Energy not served assumes
    each contingency lasts ``repair_h`` hours at the faulted load. ``world``: ``field``
    (FieldWorld on ``gridpilot.field``, default) or ``sim`` (SimWorld, the twin-only world).
    """
    from gridpilot.agent.scenarios import WORLDS, run_many, scenario_grid

    if world not in WORLDS:
        raise ValidationError(f"world: unknown {world!r}; known: {', '.join(WORLDS)}")
    from gridpilot.agent.world3p import is_three_phase, three_phase_grid

    t0 = time.perf_counter()
    three = is_three_phase(grid)
    if three:  # every branch of the feeder (the view's lines, same ids); the three-phase world
        from gridpilot.model.threephase.balanced import balanced_view

        g = balanced_view(three_phase_grid(grid)).grid
        world = "three-phase"
    else:
        g = scenario_grid(grid, fleet)
    ids = [int(x) for x in (g.line.ids if lines is None else lines)]
    g.line.index_of(ids)
    if not ids:
        raise ValidationError("lines: nothing to sweep")
    # ties (lines behind normally-open switches) carry no load: skip them
    from gridpilot.model import ElementType

    sw = g.switch
    ties = set(sw["element"][(sw["et"] == ElementType.LINE) & sw["normally_open"]].tolist())
    ids = [x for x in ids if x not in ties]
    n_chunks = chunks or (1 if executor == "serial" else max(workers * 4, 1))
    parts = [p.tolist() for p in np.array_split(np.asarray(ids), min(n_chunks, len(ids))) if p.size]
    args = [(grid, fleet, p, start_step, world) for p in parts]
    out = run_many(args, executor, address, workers, fn=_chunk)
    results = [r for part in out for r in part]
    rep = N1Report(grid, results, repair_h, time.perf_counter() - t0, executor, world)
    for side in ("uncontrolled", "controlled"):
        mw = np.array([getattr(r, f"unsupplied_mw_{side}") for r in results])
        cu = np.array([getattr(r, f"customers_off_{side}") for r in results])
        rep.summary[side] = {
            "contingencies_with_unsupplied_load": int((mw > 1e-6).sum()),
            "unsupplied_mw_total": round(float(mw.sum()), 4),
            "unsupplied_mw_worst": round(float(mw.max()), 4) if mw.size else 0.0,
            "customers_off_total": int(cu.sum()),
            "energy_not_served_mwh": round(float(mw.sum()) * repair_h, 4),
        }
    vm = [r.vmin_pu_controlled for r in results if r.vmin_pu_controlled is not None]
    ml = [r.max_loading_pct_controlled for r in results if r.max_loading_pct_controlled is not None]
    rep.summary["controlled"]["worst_vmin_pu"] = round(min(vm), 4) if vm else float("nan")
    rep.summary["controlled"]["worst_loading_pct"] = round(max(ml), 2) if ml else float("nan")
    if three:
        _phase_summary(rep)
    return rep


def _phase_summary(rep: N1Report) -> None:
    """Node-phase totals of a sweep on a three-phase feeder (ANSI Range A)."""
    for side in ("uncontrolled", "controlled"):
        n = [getattr(r, f"node_phase_violations_{side}") or 0 for r in rep.results]
        rep.summary[side]["node_phase_violations_total"] = int(sum(n))
        rep.summary[side]["contingencies_with_node_phase_violations"] = int(sum(x > 0 for x in n))
    vm = [r.vmin_node_phase_pu_controlled for r in rep.results if r.vmin_node_phase_pu_controlled]
    rep.summary["controlled"]["worst_vmin_node_phase_pu"] = (
        round(min(vm), 4) if vm else float("nan")
    )


def write_n1_report(rep: N1Report, out_dir: str | Path) -> list[Path]:
    """Write ``report.json``, ``contingencies.csv``, ``unsupplied.png`` and ``index.html``; returns the paths."""
    from gridpilot.agent.scenarios import open_report

    names = ("report.json", "contingencies.csv", "unsupplied.png", "index.html")
    paths = open_report(out_dir, names, rep.to_dict())
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.DataFrame([r.__dict__ for r in rep.results])
    df.to_csv(paths[1], index=False)
    fig, ax = plt.subplots(figsize=(10, 4))
    x = np.arange(len(df))
    ax.bar(x - 0.2, df["unsupplied_mw_uncontrolled"], 0.4, label="uncontrolled", color="#c0392b")
    ax.bar(x + 0.2, df["unsupplied_mw_controlled"], 0.4, label="gridpilot", color="#2471a3")
    ax.set_xticks(x, df["line"].astype(str), fontsize=7)
    ax.set_xlabel("faulted line")
    ax.set_ylabel("unsupplied load (MW)")
    ax.legend()
    ax.set_title(f"N-1 on {rep.grid}")
    fig.tight_layout()
    fig.savefig(paths[2], dpi=90)
    plt.close(fig)
    rows = "".join(
        f"<tr><td>{k}</td><td>{rep.summary['uncontrolled'].get(k, '')}</td><td>{v}</td></tr>"
        for k, v in rep.summary["controlled"].items()
    )
    paths[3].write_text(
        f"<!doctype html><meta charset=utf-8><title>gridpilot N-1</title><h1>N-1 on {rep.grid}</h1>"
        f"<table border=1 cellpadding=4><tr><th>KPI</th><th>uncontrolled</th><th>gridpilot</th></tr>"
        f"{rows}</table><img src='unsupplied.png' width=900>"
    )
    return paths


__all__ = ["ContingencyResult", "N1Report", "n1_sweep", "write_n1_report"]
