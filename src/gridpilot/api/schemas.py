"""The API's request and response models (the OpenAPI contract).

Request bodies are strict (``true`` is not a number, ``"7"`` not an id) and forbid unknown
fields; the drill events are one model per kind, so the schema requires what each kind needs.
Responses are documented by models; :func:`errors` declares the error answers of a route.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["viewer", "operator", "admin"]
_ID = Field(ge=-(2**62), le=2**62)
_REASON = Field(max_length=500)


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class SwitchCommand(_Body):
    """Open or close one switch."""

    switch_id: Annotated[int, _ID]
    closed: bool
    reason: Annotated[str, _REASON] = "operator command"


class DRCommand(_Body):
    """Set the operator's demand-response request (0..1; 0 ends it), optionally only at the
    loads of ``buses`` (ids)."""

    level: float = Field(ge=0.0, le=1.0)
    buses: list[Annotated[int, _ID]] | None = Field(default=None, max_length=2000)
    reason: Annotated[str, _REASON] = "operator DR event"


class StorageCommand(_Body):
    """Battery set point, MW (+ charging)."""

    storage_id: Annotated[int, _ID]
    p_mw: float = Field(ge=-1000.0, le=1000.0)
    reason: Annotated[str, _REASON] = "operator set point"


class EVCommand(_Body):
    """EV chargers' set point: the share (0..1) of their wanted power they may draw."""

    factor: float = Field(ge=0.0, le=1.0)
    reason: Annotated[str, _REASON] = "operator EV set point"


class ModeCommand(_Body):
    """Orchestrator mode."""

    mode: Literal["autonomous", "propose"]


class Decision(_Body):
    """An operator's reason for approving or rejecting."""

    reason: Annotated[str, _REASON] = ""


# --- drill events: one model per kind of gridpilot.field.conditions.EVENT_KINDS ---------------
class FaultEvent(_Body):
    """A fault on ``line`` (id)."""

    kind: Literal["fault"]
    line: Annotated[int, _ID]


class RepairEvent(_Body):
    """The crew repairs ``line`` (default: every faulted line)."""

    kind: Literal["repair"]
    line: Annotated[int | None, _ID] = None


class WindDropEvent(_Body):
    """Available wind down to ``factor`` (0..1, default 0.1)."""

    kind: Literal["wind_drop"]
    factor: float | None = Field(default=None, ge=0.0, le=1.0)


class WindRestoreEvent(_Body):
    """Wind back to what is available."""

    kind: Literal["wind_restore"]


class GenTripEvent(_Body):
    """Generator ``generator`` (id) trips."""

    kind: Literal["gen_trip"]
    generator: Annotated[int, _ID]


class HeatwaveEvent(_Body):
    """Household demand x ``load_factor`` (1.25), a peak of ``peak_factor`` (0.3) at ``peak_hour`` (17)."""

    kind: Literal["heatwave"]
    load_factor: float | None = Field(default=None, ge=0.0, le=10.0)
    peak_factor: float | None = Field(default=None, ge=0.0, le=10.0)
    peak_hour: float | None = Field(default=None, ge=0.0, le=24.0)


class EVSurgeEvent(_Body):
    """EV charging x ``factor`` (default 2.5)."""

    kind: Literal["ev_surge"]
    factor: float | None = Field(default=None, ge=0.0, le=10.0)


class FPIFailureEvent(_Body):
    """The fault-passage indicator of ``switch`` (id) never picks up."""

    kind: Literal["fpi_failure"]
    switch: Annotated[int, _ID]


class FPIFalsePickupEvent(_Body):
    """The indicator of ``switch`` (id) picks up at every fault that trips."""

    kind: Literal["fpi_false_pickup"]
    switch: Annotated[int, _ID]


SIM_EVENTS = (
    FaultEvent,
    RepairEvent,
    WindDropEvent,
    WindRestoreEvent,
    GenTripEvent,
    HeatwaveEvent,
    EVSurgeEvent,
    FPIFailureEvent,
    FPIFalsePickupEvent,
)
SimEvent = Annotated[
    FaultEvent
    | RepairEvent
    | WindDropEvent
    | WindRestoreEvent
    | GenTripEvent
    | HeatwaveEvent
    | EVSurgeEvent
    | FPIFailureEvent
    | FPIFalsePickupEvent,
    Field(discriminator="kind"),
]


# --- responses ---------------------------------------------------------------------------------
class _Out(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Error(BaseModel):
    """An error answer: ``detail`` names the field, id or reason."""

    detail: str


_ERRORS = {
    400: "bad input the schema cannot express (named in detail)",
    401: "missing or unknown API key (send it in the X-API-Key header)",
    403: "the key's role may not do this",
    404: "unknown id (switch, battery, bus, line, generator, proposal) or alarm not active",
    409: "refused: by the safety guard, or the proposal is no longer pending",
}


def errors(*codes: int, conflict: Any = Error) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route answering ``codes`` (409 with the ``conflict`` model)."""
    return {c: {"model": conflict if c == 409 else Error, "description": _ERRORS[c]} for c in codes}


class Health(_Out):
    """Liveness: the loop's step counter and simulated time."""

    ok: bool
    steps: int
    time: str | None = None


class WhoAmI(_Out):
    """The key's name and role."""

    name: str
    role: Role


class GridInfo(_Out):
    """A built-in grid."""

    name: str
    buses: int | None  # None: not known before the grid is loaded
    description: str


class Grids(_Out):
    """The built-in grids and the one running."""

    running: str
    builtin: list[GridInfo]


class Edge(_Out):
    """A line or transformer between two buses (ids)."""

    id: int
    from_: int = Field(alias="from")
    to: int


class Limits(_Out):
    """The safety guard's operating limits and the dashboard's warning bands derived from them."""

    v_min_pu: float
    v_max_pu: float
    v_warn_low_pu: float
    v_warn_high_pu: float
    loading_max_pct: float
    loading_warn_pct: float


class GridDrawing(_Out):
    """The running grid for drawing: buses with diagram x/y in [0, 1] and distance from the
    substation (km), branches, devices, sources; ``layout`` says whether x/y are the grid's
    own coordinates or a tree layout; ``limits`` the guard's operating limits."""

    name: str
    layout: Literal["coordinates", "tree"]
    limits: Limits
    buses: list[dict[str, Any]]
    lines: list[Edge]
    transformers: list[Edge]
    switches: list[dict[str, Any]]
    generators: list[dict[str, Any]]
    sources: list[dict[str, Any]]
    storage: list[dict[str, Any]]


class Forecast(_Out):
    """Feeder load forecast (MW) at the given times."""

    method: str
    time: list[str]
    load_mw: list[float | None]


class Proposal(_Out):
    """A plan proposed in propose mode, with its status and the guard's verdict."""

    id: int
    status: str
    t: int | None = None


class StateModel(_Out):
    """The live state (``GET /api/state``): headline figures; per bus (order of ``bus_id``)
    ``v_pu`` (measured, pu), ``v_est_pu`` (state estimate, pu; null where not estimated) and
    ``energised``; per line (order of ``line_id``) ``line_loading_pct`` (%); per switch (order of
    ``switch_id``) ``switch_closed`` and ``fpi`` (fault passage indicated); per battery
    ``storage_soc`` (0..1); active ``alarms``, the latest ``events``, pending ``proposals``, DR
    events and the flexibility plan. Before the first step only ``headline`` and ``bus_id``."""

    headline: dict[str, Any]
    bus_id: list[int] | None = None
    v_pu: list[float | None] | None = None
    energised: list[bool] | None = None
    line_id: list[int] | None = None
    line_loading_pct: list[float | None] | None = None
    switch_id: list[int] | None = None
    switch_closed: list[bool] | None = None
    fpi: list[bool] | None = None
    storage_soc: list[float | None] | None = None
    v_est_pu: list[float | None] | None = None
    estimate: dict[str, Any] | None = None
    alarms: list[dict[str, Any]] | None = None
    events: list[dict[str, Any]] | None = None
    proposals: list[Proposal] | None = None
    dr_events: list[Any] | None = None
    flex_plan: dict[str, Any] | None = None
    bus_load_mw: list[float] | None = None
    bus_gen_mw: list[float] | None = None
    line_p_mw: list[float | None] | None = None


State = StateModel  # the old name


class LiveMessage(StateModel):
    """One WebSocket message (``/api/ws``): the live state without the static id arrays
    (``bus_id``, ``line_id``, ``switch_id``: fetched once from ``/api/grid``), with alarms'
    acknowledgement and ``history_tail`` (the latest history row)."""

    history_tail: list[dict[str, Any]] | None = None


class Battery(_Out):
    """A battery's set point (MW, + charging) and state of charge (0..1)."""

    id: int
    p_mw: float | None
    soc: float | None


class DRStatus(_Out):
    """Demand response and batteries."""

    level: float
    requests: dict[str, Any]
    enrolled_share: float | None
    batteries: list[Battery]
    method: str
    events: list[Any]


class Flex(_Out):
    """The flexibility schedule in force, if any."""

    policy: bool
    plan: dict[str, Any] | None = None
    storage_by: Any = None


class Market(_Out):
    """The local market's latest interval (when available) and its recent series."""

    available: bool
    history: list[dict[str, Any]]


class LedgerRow(_Out):
    """One audit row as the ledger shows it."""

    id: int
    actor: str
    kind: str
    status: str
    hash: str


class Ledger(_Out):
    """The audit chain's head and whether it verifies."""

    chain_ok: bool
    first_bad_id: int | None
    entries: int
    head_hash: str | None
    recent: list[LedgerRow]


class AuditEntry(_Out):
    """One audit row: what, why, on which data, the guard's verdict, the result."""

    id: int
    ts_ms: int
    actor: str
    kind: str
    status: str
    what: Any = None
    why: str | None = None
    prev_hash: str
    hash: str


class AuditCheck(_Out):
    """The audit hash chain's check."""

    ok: bool
    first_bad_id: int | None
    entries: int


class CommandResult(_Out):
    """A command's outcome: ``done``, or refused by the guard with its reasons (409)."""

    plan: int
    status: str
    reasons: list[str] = []


class Decided(_Out):
    """An approval's or rejection's outcome (the executed result on approval)."""

    plan: int
    status: str
    result: Any = None
    reasons: list[str] = []


class ModeOut(_Out):
    """The orchestrator's mode now."""

    mode: str


class InjectedEvent(_Out):
    """The drill event as recorded by the world."""

    kind: str


class WsToken(_Out):
    """A single-use token for ``/api/ws?token=``."""

    token: str
    expires_in_s: float


class AlarmOut(_Out):
    """An active alarm with who acknowledged it (None: not acknowledged)."""

    alarm: str
    severity: str
    text: str
    since: str | None = None
    acked_by: str | None = None
