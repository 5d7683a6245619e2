"""Response models of the three-phase feeder routes (:mod:`gridpilot.api.routers.feeder`).

Every per-bus or per-branch field is one array in the order of the geometry's ``buses`` or
``branches``; per-phase fields are three such arrays ``[A, B, C]`` with ``null`` where the
bus or branch lacks the phase. Phase masks: bit 0 = A (node 1), bit 1 = B, bit 2 = C.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Col = list[float | None]
PerPhase = list[Col]  # [A, B, C]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeederInfo(_Out):
    """Whether the app has a per-phase feeder view (``available``; ``detail`` says why not)
    and, if so, its name, bus and branch counts, layout and where its values come from
    (``loop`` once the loop has solved a step, else ``twin``)."""

    available: bool
    detail: str | None = None
    name: str | None = None
    buses: int | None = None
    branches: int | None = None
    layout: Literal["coordinates", "tree"] | None = None
    source: Literal["loop", "twin"] | None = None


class FeederBuses(_Out):
    """Bus columns: name, drawing x/y, phase mask, line-to-neutral kV base, distance from the
    substation along the tree (``distance_unit``; ``null`` if not reached)."""

    name: list[str]
    x: Col
    y: Col
    phases: list[int]
    kv_ln: Col
    distance: Col


class FeederBranches(_Out):
    """Branch columns (lines, switches, reactors, transformers from winding 1 to 2): from/to
    are bus indices; ``length_km`` 0 for transformers."""

    name: list[str]
    kind: list[Literal["line", "switch", "reactor", "transformer"]]
    from_: list[int] = Field(alias="from")
    to: list[int]
    phases: list[int]
    length_km: Col

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class FeederGeometry(_Out):
    """The feeder for drawing: buses, branches, devices (regulators, capacitors, switches;
    each with the bus index it sits at and its phase mask); ``layout`` says whether x/y are
    the feeder's own bus coordinates or a tree layout."""

    name: str
    layout: Literal["coordinates", "tree"]
    distance_unit: str
    buses: FeederBuses
    branches: FeederBranches
    devices: dict[str, list[dict[str, Any]]]


class FeederSnapshot(_Out):
    """One solved state: per-phase bus voltage (pu of the bus's L-N base) and angle (deg);
    per-phase branch current (A), flow into the from end (kW, kvar) and loading (% of the
    normal rating); each branch's switch state; ``source`` ``loop`` (the running world) or
    ``twin`` (one unbalanced power flow of the feeder); the solve's summary."""

    name: str
    source: Literal["loop", "twin"]
    v_pu: PerPhase
    angle_deg: PerPhase
    i_a: PerPhase
    p_kw: PerPhase
    q_kvar: PerPhase
    loading_pct: PerPhase
    closed: list[bool]
    losses_kw: float
    summary: dict[str, Any]


class ProfilePhase(_Out):
    """One phase of the voltage profile: the energised buses on the phase (indices), their
    distance and voltage, and the branches joining them (index pairs into these points)."""

    phase: Literal["A", "B", "C"]
    bus: list[int]
    distance: Col
    v_pu: Col
    seg_from: list[int]
    seg_to: list[int]


class FeederProfile(_Out):
    """The per-phase voltage profile against distance from the substation."""

    name: str
    distance_unit: str
    source: Literal["loop", "twin"]
    phases: list[ProfilePhase]


class FeederHosting(_Out):
    """Hosting capacity (kW) per bus and phase for ``der``; ``status`` ``computing`` until the
    study (started by the first request) is done; ``origin`` the CLI's table file or
    ``computed``; ``min_kw`` each bus's smallest over its phases and ``limit`` the check that
    bound it (index into ``limit_names``, -1 none)."""

    name: str
    der: Literal["pv", "ev"]
    status: Literal["ready", "computing", "failed"]
    origin: str | None = None
    elapsed_s: float | None = None
    error: str | None = None
    hc_kw: PerPhase | None = None
    min_kw: Col | None = None
    limit: list[int] | None = None
    limit_names: list[str] | None = None
