"""The :class:`Injections` parameter object: its checks name the field and the bad value."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gridpilot.errors import ValidationError
from gridpilot.twin import Injections, Twin
from gridpilot.twin.inputs import INJECTION_KEYS
from gridpilot.twin.twin import powerflow


def test_fields_are_the_injection_keys_and_switch_states() -> None:
    names = [f.name for f in dataclasses.fields(Injections)]
    assert names == [*INJECTION_KEYS, "switch_closed"]
    assert Injections().given() == {}


def test_arrays_are_converted_and_frozen() -> None:
    inj = Injections(load_p_mw=[1, 2], switch_closed=[1, 0, 1])
    assert inj.load_p_mw is not None and inj.load_p_mw.dtype == np.float64
    assert inj.switch_closed is not None and inj.switch_closed.dtype == bool
    assert inj.switch_closed.tolist() == [True, False, True]
    with pytest.raises(dataclasses.FrozenInstanceError):
        inj.load_p_mw = None  # type: ignore[misc]
    assert set(inj.given()) == {"load_p_mw", "switch_closed"}
    assert inj.powers()["gen_p_mw"] is None


def test_nan_names_the_field_the_value_and_where() -> None:
    with pytest.raises(ValidationError, match=r"gen_q_mvar: values must be finite.*nan at index 2"):
        Injections(gen_q_mvar=np.array([0.1, 0.2, np.nan]))
    p = np.ones((3, 4))
    p[1, 3] = np.inf
    with pytest.raises(ValidationError, match=r"ev_p_mw: .*got inf at index \(1, 3\)"):
        Injections(ev_p_mw=p)


def test_wrong_ndim_names_the_field_and_the_shape() -> None:
    with pytest.raises(ValidationError, match=r"storage_p_mw: expected a 1-D .* got shape \(\)"):
        Injections(storage_p_mw=np.float64(1.0))
    with pytest.raises(ValidationError, match=r"load_q_mvar: .* got shape \(2, 3, 4\)"):
        Injections(load_q_mvar=np.zeros((2, 3, 4)))
    with pytest.raises(ValidationError, match="flex_p_mw: expected an array of numbers"):
        Injections(flex_p_mw=["a", "b"])


def test_wrong_length_against_the_grid_names_field_table_and_shape(case33) -> None:
    n_load, n_sw = len(case33.load), len(case33.switch)
    with pytest.raises(
        ValidationError,
        match=rf"load_p_mw: expected shape \({n_load},\) .* per load, got shape \(5,\)",
    ):
        Injections(load_p_mw=np.ones(5)).check(case33)
    with pytest.raises(ValidationError, match=rf"switch_closed: .*\({n_sw},\).*got shape \(3, 2\)"):
        Twin(case33).timeseries(3, injections=Injections(switch_closed=np.ones((3, 2))))
    # rows against the steps of a snapshot
    two = np.tile(case33.load["p_mw"], (2, 1))
    with pytest.raises(ValidationError, match=r"load_p_mw: expected 1 rows \(steps\), got shape"):
        Twin(case33).powerflow(Injections(load_p_mw=two))
    with pytest.raises(ValidationError, match="time series arrays must have 4 rows"):
        Twin(case33).timeseries(4, injections=Injections(load_p_mw=two))


def test_from_mapping_overrides_and_refuses_unknown_names() -> None:
    inj = Injections.from_mapping(
        {"load_p_mw": np.ones(3), "gen_p_mw": np.zeros(1)},
        load_p_mw=np.full(3, 2.0),
        switch_closed=None,  # None: not set
    )
    assert inj.load_p_mw is not None and inj.load_p_mw.tolist() == [2.0, 2.0, 2.0]
    assert inj.switch_closed is None and inj.gen_p_mw is not None
    with pytest.raises(ValidationError, match=r"injections: unknown names \['load_p'\]"):
        Injections.from_mapping({"load_p": np.ones(3)})


def test_a_dict_instead_of_injections_is_a_clear_error(case33) -> None:
    with pytest.raises(ValidationError, match="injections: expected an Injections, got dict"):
        Twin(case33).powerflow({"load_p_mw": case33.load["p_mw"]})  # type: ignore[arg-type]


def test_injections_change_the_result_and_the_module_helper_takes_them(case33) -> None:
    half = Injections(load_p_mw=case33.load["p_mw"] * 0.5, load_q_mvar=case33.load["q_mvar"] * 0.5)
    base = powerflow(case33)
    light = powerflow(case33, half)
    assert base.converged and light.converged
    assert light.losses_kw < 0.5 * base.losses_kw  # losses go with the square of the current
    again = Twin(case33).powerflow(dataclasses.replace(half, load_q_mvar=None))
    assert light.losses_kw < again.losses_kw < base.losses_kw
