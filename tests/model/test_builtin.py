"""Built-in grids: sizes, numbering, switches, profiles."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.model import ElementType, SwitchKind, list_grids, load_grid
from gridpilot.model.synthetic import synthetic_grid


def test_case33bw_paper_numbering(case33) -> None:
    assert len(case33.bus) == 33 and case33.bus.ids.min() == 1 and case33.bus.ids.max() == 33
    assert list(case33.line.ids) == list(range(1, 38))
    sw = case33.switch
    ties = sw.ids[sw["normally_open"]]
    assert list(ties) == [33, 34, 35, 36, 37]
    assert not sw["closed"][sw["normally_open"]].any()
    assert sw.row(1)["kind"] == SwitchKind.BREAKER
    # branch k of the main feeder connects buses k and k+1; tie 33 connects 21 and 8
    assert case33.line.row(17)["from_bus"] == 17 and case33.line.row(17)["to_bus"] == 18
    assert case33.line.row(33)["from_bus"] == 21 and case33.line.row(33)["to_bus"] == 8


def test_case69_from_published_data() -> None:
    g = load_grid("case69")
    assert len(g.bus) == 69 and len(g.line) == 68
    assert abs(g.load["p_mw"].sum() - 3.8021) < 1e-9


def test_list_grids_has_bus_counts() -> None:
    names = {g.name: g.buses for g in list_grids()}
    assert names["case33bw"] == 33 and names["oberrhein"] == 179
    assert "simbench:CODE" in names and "synthetic:N" in names


@pytest.mark.parametrize("n", [4, 37, 301, 2000])
def test_synthetic_exact_size_and_radial(n: int) -> None:
    from gridpilot.twin import is_radial

    g = synthetic_grid(n, seed=1)
    assert len(g.bus) == n
    assert is_radial(g)
    assert np.all(g.switch["et"] == ElementType.LINE)
    assert g.profiles is not None and g.profiles.steps == 96 * 366


def test_synthetic_has_ties_breakers_and_der() -> None:
    g = synthetic_grid(1000, seed=3)
    sw = g.switch
    assert sw["normally_open"].sum() >= 3
    assert (sw["kind"] == SwitchKind.BREAKER).sum() == g.meta["feeders"]
    assert len(g.generator) > 0.2 * len(g.load)
    again = synthetic_grid(1000, seed=3)
    np.testing.assert_array_equal(g.line.data, again.line.data)


def test_cache_dir_without_override(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """With no GRIDPILOT_CACHE the cache follows XDG (no extra package needed), and a cached
    grid reads back equal to the built one."""
    from gridpilot.model import builtin

    monkeypatch.delenv("GRIDPILOT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert builtin._cache_dir() == tmp_path / "gridpilot"
    first = load_grid("oberrhein")
    assert list((tmp_path / "gridpilot").glob("oberrhein-*.npz"))
    again = load_grid("oberrhein")
    assert np.array_equal(first.bus.ids, again.bus.ids)
    assert np.allclose(first.load["p_mw"], again.load["p_mw"])
