"""Data-driven cases: every folder of tests/data with an ``input.json`` is one case.

A case holds ``input.json`` (grid, faults, limits), ``params.json`` (how the expectation was
made and the tolerances) and ``output.json`` (the expected values and, under ``source``, where
they come from: pandapower, the Baran & Wu papers, an exhaustive search, a recorded plan
replayed in pandapower). ``tests/data/generate.py`` writes the outputs; see tests/data/README.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gridpilot.control.flisr import FlisrEngine, Limits
from gridpilot.control.radialpf import RadialSolver
from gridpilot.model import branch_status, load_grid

DATA = Path(__file__).parents[1] / "data"
CASES = sorted(p for p in DATA.iterdir() if (p / "input.json").exists())


def _read(case: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The case's input, params and expected output."""

    def load(name: str) -> dict[str, Any]:
        return dict(json.loads((case / f"{name}.json").read_text()))

    return load("input"), load("params"), load("output")


def test_there_are_cases_of_every_kind_and_grid() -> None:
    seen = {(_read(c)[0]["kind"], _read(c)[0]["grid"]) for c in CASES}
    assert len(CASES) >= 6
    assert {k for k, _ in seen} == {"powerflow", "flisr"}
    assert {g for _, g in seen} >= {"case33bw", "case69", "cigre-mv", "oberrhein"}
    for c in CASES:
        assert _read(c)[2].get("source"), f"{c.name}: output.json says nowhere where it comes from"


def _powerflow(inp: dict[str, Any], par: dict[str, Any], exp: dict[str, Any]) -> None:
    g = load_grid(inp["grid"])
    solver = RadialSolver(g)
    st = branch_status(g, g.switch["closed"])
    conducting = np.concatenate(
        [
            st["line_from"] & st["line_to"],
            st["trafo_hv"] & st["trafo_lv"],
            st["busswitch"][solver.bus_switch_pos],
        ]
    )
    src = g.source[g.source["in_service"]]
    res = solver.solve(
        np.arange(len(g.bus)),
        np.arange(solver.branch_from.size),
        g.bus.position_map(src["bus"]),
        src["vm_pu"],
        conducting[None, :],
    )
    assert res.converged[0]
    supplied = set(g.bus.ids[res.supplied[0]].tolist())
    assert supplied == set(exp["bus_id"])
    pos = g.bus.position_map(np.asarray(exp["bus_id"]))
    np.testing.assert_allclose(res.v_pu[0][pos], exp["v_pu"], atol=par["atol_v_pu"], rtol=0)
    # the sweep's losses are series losses: transformers' no-load losses come on top
    losses_kw = res.losses_kw[0] + exp["no_load_kw"]
    assert losses_kw == pytest.approx(exp["losses_kw"], rel=par["rtol_losses"])
    paper = exp.get("paper")
    if paper:
        assert res.losses_kw[0] == pytest.approx(paper["losses_kw"], rel=1e-3)
        v = res.v_pu[0]
        assert float(v.min()) == pytest.approx(paper["vmin_pu"], abs=1e-4)
        assert (
            int(g.bus.ids[int(np.argmin(np.where(res.supplied[0], v, np.inf)))])
            == paper["vmin_bus"]
        )


def _flisr(inp: dict[str, Any], par: dict[str, Any], exp: dict[str, Any]) -> None:
    g = load_grid(inp["grid"])
    # the plan, not the clock: a loaded machine must not cut the search short (the time
    # budget has its own tests)
    budget = par.get("budget_ms", 60_000.0)
    eng = FlisrEngine(g, Limits(**inp["limits"]), verify=par["verify"], budget_ms=budget)
    res = eng.respond_to_faults(inp["faults"])
    atol = par.get("atol_kw", 0.5)
    assert res.verified is exp.get("verified", True), res.notes
    if "isolate" in exp:
        assert sorted(res.isolate) == exp["isolate"]
    if "plan" in exp:
        assert [a.as_dict() for a in res.plan] == exp["plan"]
    if "restore" in exp:
        assert res.restore == exp["restore"]
    if "restorable_kw" in exp:
        assert res.restorable_kw == pytest.approx(exp["restorable_kw"], abs=atol)
    if "restored_kw" in exp:
        assert res.restored_kw == pytest.approx(exp["restored_kw"], abs=atol)
    if "restored_kw_at_least" in exp:
        assert res.restored_kw >= exp["restored_kw_at_least"] - atol


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Path) -> None:
    inp, par, exp = _read(case)
    {"powerflow": _powerflow, "flisr": _flisr}[inp["kind"]](inp, par, exp)
