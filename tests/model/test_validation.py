"""Bad input gets a clear error naming the component, the field and the value."""

from __future__ import annotations

import numpy as np
import pytest

from gridpilot.errors import UnknownComponentError, ValidationError
from gridpilot.model import Grid, Table, load_grid


def _tiny() -> Grid:
    g = Grid("tiny")
    g.add("bus", id=[1, 2, 3], v_nom_kv=[20.0, 20.0, 20.0])
    g.add("source", id=1, bus=1)
    g.add(
        "line",
        id=[10, 11],
        from_bus=[1, 2],
        to_bus=[2, 3],
        length_km=[1.0, 2.0],
        r_ohm_per_km=0.2,
        x_ohm_per_km=0.1,
        max_i_ka=0.3,
    )
    g.add("load", id=[5, 6], bus=[2, 3], p_mw=[0.5, 0.4], q_mvar=[0.1, 0.1])
    return g


def _errors(g: Grid) -> list[str]:
    with pytest.raises(ValidationError) as info:
        g.validate()
    return [str(i) for i in info.value.issues if i.severity == "error"]


def test_tiny_grid_is_valid() -> None:
    assert [i for i in _tiny().validate() if i.severity == "error"] == []


def test_duplicate_ids_named() -> None:
    g = _tiny()
    g.load["id"][1] = 5
    errs = _errors(g)
    assert any("load id 5" in e and "duplicate" in e for e in errs), errs


def test_unknown_bus_reference_named() -> None:
    g = _tiny()
    g.load["bus"][0] = 99
    errs = _errors(g)
    assert any("load id 5: field 'bus' = 99" in e and "unknown bus" in e for e in errs), errs


@pytest.mark.parametrize(
    ("component", "field", "value", "words"),
    [
        ("line", "max_i_ka", 0.0, "must be positive"),
        ("line", "length_km", -1.0, "must be positive"),
        ("bus", "v_nom_kv", 0.0, "must be positive"),
        ("line", "r_ohm_per_km", -0.1, "must not be negative"),
    ],
)
def test_non_positive_ratings_and_impedances(
    component: str, field: str, value: float, words: str
) -> None:
    g = _tiny()
    g[component][field][0] = value
    errs = _errors(g)
    assert any(f"field '{field}' = {value!r}" in e and words in e for e in errs), errs


def test_zero_impedance_line() -> None:
    g = _tiny()
    g.line["r_ohm_per_km"][1] = 0.0
    g.line["x_ohm_per_km"][1] = 0.0
    errs = _errors(g)
    assert any("line id 11" in e and "impedance must be positive" in e for e in errs), errs


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_anywhere(bad: float) -> None:
    g = _tiny()
    g.load["q_mvar"][1] = bad
    errs = _errors(g)
    assert any("load id 6: field 'q_mvar'" in e and "not finite" in e for e in errs), errs


def test_bus_without_path_to_source() -> None:
    g = _tiny()
    g.add("bus", id=4, v_nom_kv=20.0)
    errs = _errors(g)
    assert any("bus id 4" in e and "no path to a source" in e for e in errs), errs


def test_open_switch_is_a_warning_not_an_error() -> None:
    g = _tiny()
    g.add("switch", id=1, bus=2, element=11, et=0, closed=False)
    issues = g.validate()
    assert any(i.severity == "warning" and i.component == "bus" and 3 in i.ids for i in issues)


def test_switch_not_at_its_line_end() -> None:
    g = _tiny()
    g.add("switch", id=1, bus=1, element=11, et=0)
    assert any("switch id 1: field 'bus' = 1" in e and "not an end" in e for e in _errors(g))


def test_all_errors_reported_at_once() -> None:
    g = _tiny()
    g.load["p_mw"][0] = np.nan
    g.line["max_i_ka"][1] = -1
    assert len(_errors(g)) >= 2


def test_unknown_field_and_wrong_type_named() -> None:
    with pytest.raises(ValidationError, match="load: field 'p_kw': unknown field"):
        Table.from_columns("load", {"id": [1], "bus": [1], "p_kw": [1.0]})
    with pytest.raises(ValidationError, match="load: field 'p_mw' = 'lots'"):
        Table.from_columns("load", {"id": [1], "bus": [1], "p_mw": ["lots"]})
    with pytest.raises(ValidationError, match="field 'p_mw': is required"):
        Table.from_columns("load", {"id": [1], "bus": [1]})


def test_unknown_grid_and_component() -> None:
    with pytest.raises(UnknownComponentError, match="unknown grid 'nope'"):
        load_grid("nope")
    with pytest.raises(UnknownComponentError, match="unknown component type 'wires'"):
        _tiny()["wires"]
    with pytest.raises(UnknownComponentError, match="unknown load 42"):
        _tiny().load.index_of([42])


def test_bad_synthetic_size() -> None:
    with pytest.raises(ValidationError, match="whole number"):
        load_grid("synthetic:abc")
    with pytest.raises(ValidationError, match=r"n_buses must lie in \[4"):
        load_grid("synthetic:2")


def test_each_rule_has_its_own_issue_type() -> None:
    """Every rule reports its own Issue subclass (as power-grid-model's validation errors), so a
    caller can pick issues by type; the text stays that of a plain Issue."""
    from gridpilot.errors import Issue
    from gridpilot.model import validate as v

    g = _tiny()
    g.line["to_bus"][0] = 1  # line 10 from bus 1 to bus 1
    g.line["max_i_ka"][1] = 0.0
    g.load["id"][1] = 5
    issues = g.validate(raise_on_error=False)
    kinds = {type(i) for i in issues}
    assert {v.SelfLoopIssue, v.NotPositiveIssue, v.DuplicateIdIssue} <= kinds, issues
    assert all(isinstance(i, Issue) for i in issues)
    loop = next(i for i in issues if isinstance(i, v.SelfLoopIssue))
    assert str(loop) == "line id 10: field 'to_bus' = 1: connects a bus to itself"
