"""Component schemas: every field of every component type, with its dtype, default and checks.

The grid model is column-oriented: each component type is a numpy structured array whose
fields are listed here. Units are in the names (``p_mw``, ``v_nom_kv``, ``r_ohm_per_km``).
Sign conventions: loads, storage, EV chargers and flexible loads use the *load* convention
(``p_mw > 0`` consumes); generators and sources the *generator* convention (``p_mw > 0`` feeds in).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np

REQUIRED: Any = object()


class ElementType(IntEnum):
    """What a switch is attached to (besides its bus)."""

    LINE = 0
    TRANSFORMER = 1
    BUS = 2


class SwitchKind(IntEnum):
    """Switching device kinds, by what they may interrupt."""

    BREAKER = 0  # interrupts fault current, has protection
    LOAD_BREAK = 1  # interrupts load current
    SECTIONALISER = 2  # opens when dead (counts fault passages)
    DISCONNECTOR = 3  # opens only without current


class GenKind(IntEnum):
    """Generator technologies."""

    PV = 0
    WIND = 1
    CONVENTIONAL = 2
    OTHER = 3


class LoadKind(IntEnum):
    """Customer classes of loads (used for priority defaults and profiles)."""

    RESIDENTIAL = 0
    COMMERCIAL = 1
    INDUSTRIAL = 2
    CRITICAL = 3  # hospitals, water, telecom


class FlexKind(IntEnum):
    """Flexible-load technologies."""

    WATER_HEATER = 0
    HEAT_PUMP = 1
    OTHER = 2


@dataclass(frozen=True)
class Field:
    """One column of a component table.

    ``check`` is one of ``"pos"`` (> 0), ``"nonneg"`` (>= 0), ``"unit"`` (in [0, 1]) or ``""``;
    ``ref`` names the component type this field refers to (``"bus"``).
    """

    name: str
    dtype: str
    default: Any = REQUIRED
    check: str = ""
    ref: str | None = None
    doc: str = ""


def _f(
    name: str,
    dtype: str,
    default: Any = REQUIRED,
    check: str = "",
    ref: str | None = None,
    doc: str = "",
) -> Field:
    return Field(name, dtype, default, check, ref, doc)


ID = _f("id", "i8", doc="unique id within the component type (paper numbering where there is one)")
IN_SERVICE = _f("in_service", "?", True, doc="False takes the element out of the calculation")

SCHEMAS: dict[str, tuple[Field, ...]] = {
    "bus": (
        ID,
        _f("v_nom_kv", "f8", check="pos", doc="nominal line-to-line voltage, kV"),
        _f("x", "f8", 0.0, doc="diagram x coordinate"),
        _f("y", "f8", 0.0, doc="diagram y coordinate"),
        _f("zone", "i4", 0, doc="feeder or zone number"),
        IN_SERVICE,
    ),
    "line": (
        ID,
        _f("from_bus", "i8", ref="bus"),
        _f("to_bus", "i8", ref="bus"),
        _f("length_km", "f8", check="pos"),
        _f("r_ohm_per_km", "f8", check="nonneg"),
        _f("x_ohm_per_km", "f8", check="nonneg"),
        _f("c_nf_per_km", "f8", 0.0, check="nonneg", doc="shunt capacitance (charging)"),
        _f("max_i_ka", "f8", check="pos", doc="thermal rating"),
        IN_SERVICE,
    ),
    "transformer": (
        ID,
        _f("hv_bus", "i8", ref="bus"),
        _f("lv_bus", "i8", ref="bus"),
        _f("sn_mva", "f8", check="pos"),
        _f("vn_hv_kv", "f8", check="pos"),
        _f("vn_lv_kv", "f8", check="pos"),
        _f("vk_percent", "f8", check="pos", doc="short-circuit voltage"),
        _f("vkr_percent", "f8", 0.0, check="nonneg", doc="real part of vk (copper losses)"),
        _f("pfe_kw", "f8", 0.0, check="nonneg", doc="iron losses"),
        _f("i0_percent", "f8", 0.0, check="nonneg", doc="no-load current"),
        _f("shift_degree", "f8", 0.0),
        _f("tap_side", "i1", 0, doc="0 = HV side, 1 = LV side"),
        _f("tap_pos", "i4", 0),
        _f("tap_neutral", "i4", 0),
        _f("tap_min", "i4", 0),
        _f("tap_max", "i4", 0),
        _f("tap_step_percent", "f8", 0.0, check="nonneg"),
        IN_SERVICE,
    ),
    "switch": (
        ID,
        _f("bus", "i8", ref="bus", doc="bus the switch sits at"),
        _f("element", "i8", doc="id of the line/transformer (et 0/1) or the other bus (et 2)"),
        _f("et", "i1", int(ElementType.LINE), doc="element type: 0 line, 1 transformer, 2 bus"),
        _f(
            "kind",
            "i1",
            int(SwitchKind.LOAD_BREAK),
            doc="0 breaker, 1 load-break, 2 sectionaliser, 3 disconnector",
        ),
        _f("closed", "?", True, doc="present state"),
        _f("normally_open", "?", False, doc="normal state open (a tie)"),
        _f("remote", "?", True, doc="remote-controllable"),
        _f("fpi", "?", True, doc="has a fault-passage indicator / protection pickup"),
    ),
    "source": (
        ID,
        _f("bus", "i8", ref="bus"),
        _f("vm_pu", "f8", 1.0, check="pos"),
        _f("va_deg", "f8", 0.0),
        _f("sk_mva", "f8", 1e10, check="pos", doc="short-circuit power of the upstream grid"),
        _f("rx_ratio", "f8", 0.1, check="nonneg"),
        IN_SERVICE,
    ),
    "load": (
        ID,
        _f("bus", "i8", ref="bus"),
        _f("p_mw", "f8"),
        _f("q_mvar", "f8", 0.0),
        _f("i_share", "f8", 0.0, check="unit", doc="share of constant-current behaviour"),
        _f("z_share", "f8", 0.0, check="unit", doc="share of constant-impedance behaviour"),
        _f("kind", "i1", int(LoadKind.RESIDENTIAL)),
        _f("priority", "f8", 1.0, check="nonneg", doc="restoration weight (critical loads higher)"),
        _f("customers", "i4", 1, check="nonneg", doc="customers behind the load (SAIDI/SAIFI)"),
        _f("p_profile", "i4", -1, doc="column of grid.profiles scaling p_mw, -1 none"),
        _f("q_profile", "i4", -1, doc="column of grid.profiles scaling q_mvar, -1 none"),
        IN_SERVICE,
    ),
    "generator": (
        ID,
        _f("bus", "i8", ref="bus"),
        _f("kind", "i1", int(GenKind.PV)),
        _f("p_mw", "f8", check="nonneg"),
        _f("q_mvar", "f8", 0.0),
        _f("sn_mva", "f8", 0.0, check="nonneg", doc="rated apparent power, 0 unknown"),
        _f("p_profile", "i4", -1),
        IN_SERVICE,
    ),
    "storage": (
        ID,
        _f("bus", "i8", ref="bus"),
        _f("p_mw", "f8", 0.0, doc="+ charging, - discharging"),
        _f("q_mvar", "f8", 0.0),
        _f("e_mwh", "f8", check="pos", doc="energy capacity"),
        _f("soc", "f8", 0.5, check="unit", doc="state of charge, 0..1"),
        _f("p_max_mw", "f8", check="pos"),
        _f("eta", "f8", 0.95, check="unit", doc="one-way efficiency"),
        _f("p_profile", "i4", -1),
        IN_SERVICE,
    ),
    "ev_charger": (
        ID,
        _f("bus", "i8", ref="bus"),
        _f("p_mw", "f8", 0.0, doc="present charging power (- for V2G discharge)"),
        _f("p_max_mw", "f8", check="pos"),
        _f("v2g", "?", False, doc="bidirectional"),
        IN_SERVICE,
    ),
    "flex_load": (
        ID,
        _f("bus", "i8", ref="bus"),
        _f("kind", "i1", int(FlexKind.WATER_HEATER)),
        _f("p_mw", "f8", check="nonneg", doc="rated power"),
        _f("q_mvar", "f8", 0.0),
        IN_SERVICE,
    ),
}

COMPONENTS: tuple[str, ...] = tuple(SCHEMAS)


def dtype_of(component: str) -> np.dtype:
    """The numpy structured dtype of a component table."""
    return np.dtype([(f.name, f.dtype) for f in SCHEMAS[component]])


def field_of(component: str, name: str) -> Field:
    """The :class:`Field` ``name`` of ``component``; raises KeyError if unknown."""
    for f in SCHEMAS[component]:
        if f.name == name:
            return f
    raise KeyError(name)
