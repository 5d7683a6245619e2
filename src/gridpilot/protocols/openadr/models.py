"""OpenADR 3.0.1 objects as the VTN accepts them (pydantic; names and limits from the 3.0.1
OpenAPI definition: ``program``, ``event``, ``report``, ``subscription``, ``ven``, ``resource``
and their parts). Writable fields only: the VTN provisions ``id``, ``createdDateTime``,
``modificationDateTime`` and ``objectType`` and ignores them in requests. Lists are bounded
(hostile input); unknown top-level properties are refused (``extra="forbid"``)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

ObjectID = Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]*$", min_length=1, max_length=128)]
Name = Annotated[str, Field(min_length=1, max_length=128)]
_DURATION = re.compile(
    r"^(-?)P(?=\d|T\d)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)([DW]))?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)


def _duration(v: str) -> str:
    if not _DURATION.match(v):
        raise ValueError(f"not an ISO 8601 duration: {v[:64]!r}")
    return v


def _datetime(v: str) -> str:
    try:
        datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an RFC 3339 date-time: {v[:40]!r}") from None
    return v


Duration = Annotated[str, Field(max_length=64), AfterValidator(_duration)]
DateTime = Annotated[str, Field(min_length=10, max_length=40), AfterValidator(_datetime)]
ShortText = Annotated[str, Field(max_length=1024)]
Value = float | int | str | bool | dict[str, float]
PROVISIONED = ("id", "createdDateTime", "modificationDateTime", "objectType")


class _Obj(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    def wire(self) -> dict[str, Any]:
        """The object as JSON (spec names, unset optional fields left out)."""
        return self.model_dump(by_alias=True, exclude_none=True)


class _Written(_Obj):
    """Fields the VTN provisions: accepted in a request (clients echo objects back) and ignored."""

    id: str | None = Field(default=None, max_length=128)
    createdDateTime: str | None = Field(default=None, max_length=40)
    modificationDateTime: str | None = Field(default=None, max_length=40)
    objectType: str | None = Field(default=None, max_length=32)


class ValuesMap(_Obj):
    """``valuesMap``: a type and its values."""

    type: Name
    values: list[Value] = Field(max_length=1000)


class IntervalPeriod(_Obj):
    """``intervalPeriod``: start, duration, randomised start."""

    start: DateTime
    duration: Duration | None = None
    randomizeStart: Duration | None = None


class Interval(_Obj):
    """``interval``: an id, an optional period and payloads."""

    id: int = Field(ge=-(2**31), le=2**31 - 1)
    intervalPeriod: IntervalPeriod | None = None
    payloads: list[ValuesMap] = Field(max_length=100)


class EventPayloadDescriptor(_Obj):
    """``eventPayloadDescriptor``."""

    objectType: str | None = Field(default=None, max_length=64)
    payloadType: Name
    units: str | None = Field(default=None, max_length=64)
    currency: str | None = Field(default=None, max_length=16)


class ReportDescriptor(_Obj):
    """``reportDescriptor``: what report an event asks VENs for."""

    payloadType: Name
    readingType: str | None = Field(default=None, max_length=64)
    units: str | None = Field(default=None, max_length=64)
    targets: list[ValuesMap] | None = Field(default=None, max_length=100)
    aggregate: bool = False
    startInterval: int = -1
    numIntervals: int = -1
    historical: bool = True
    frequency: int = -1
    repeat: int = 1


class Program(_Written):
    """``program``: a DR programme (``programName`` unique)."""

    programName: Name
    programLongName: ShortText | None = None
    retailerName: ShortText | None = None
    retailerLongName: ShortText | None = None
    programType: ShortText | None = None
    country: ShortText | None = None
    principalSubdivision: ShortText | None = None
    timeZoneOffset: Duration | None = None
    intervalPeriod: IntervalPeriod | None = None
    programDescriptions: list[dict[str, Annotated[str, Field(max_length=2048)]]] | None = Field(
        default=None, max_length=20
    )
    bindingEvents: bool | None = None
    localPrice: bool | None = None
    payloadDescriptors: list[dict[str, Any]] | None = Field(default=None, max_length=50)
    targets: list[ValuesMap] | None = Field(default=None, max_length=100)


class Event(_Written):
    """``event``: intervals of payloads for the VENs a program targets."""

    programID: ObjectID
    eventName: ShortText | None = None
    priority: int | None = Field(default=None, ge=0, le=2**31 - 1)
    targets: list[ValuesMap] | None = Field(default=None, max_length=100)
    reportDescriptors: list[ReportDescriptor] | None = Field(default=None, max_length=50)
    payloadDescriptors: list[EventPayloadDescriptor] | None = Field(default=None, max_length=50)
    intervalPeriod: IntervalPeriod | None = None
    intervals: list[Interval] = Field(max_length=10_000)


class ReportResource(_Obj):
    """One resource's intervals in a report."""

    resourceName: Name
    intervalPeriod: IntervalPeriod | None = None
    intervals: list[Interval] = Field(max_length=10_000)


class Report(_Written):
    """``report``: a VEN's readings for an event (``clientName`` is the VEN's name)."""

    programID: ObjectID
    eventID: ObjectID
    clientName: Name
    reportName: ShortText | None = None
    payloadDescriptors: list[dict[str, Any]] | None = Field(default=None, max_length=50)
    resources: list[ReportResource] = Field(max_length=1000)


class ObjectOperation(_Obj):
    """A subscription's object operation (callback, bearer token)."""

    objects: list[str] = Field(max_length=10)
    operations: list[str] = Field(max_length=10)
    callbackUrl: Annotated[str, Field(max_length=2048)]
    bearerToken: str | None = Field(default=None, max_length=4096)


class Subscription(_Written):
    """``subscription``: a client's callbacks for object operations."""

    clientName: Name
    programID: ObjectID
    objectOperations: list[ObjectOperation] = Field(max_length=20)
    targets: list[ValuesMap] | None = Field(default=None, max_length=100)


class Ven(_Written):
    """``ven``: a VEN's registration (``venName`` unique)."""

    venName: Name
    attributes: list[ValuesMap] | None = Field(default=None, max_length=100)
    targets: list[ValuesMap] | None = Field(default=None, max_length=100)
    resources: list[dict[str, Any]] | None = Field(default=None, max_length=1000)


class Resource(_Written):
    """``resource``: a device or group behind a VEN."""

    resourceName: Name
    venID: ObjectID | None = None
    attributes: list[ValuesMap] | None = Field(default=None, max_length=100)
    targets: list[ValuesMap] | None = Field(default=None, max_length=100)


KINDS: dict[str, type[_Written]] = {
    "program": Program,
    "event": Event,
    "report": Report,
    "subscription": Subscription,
    "ven": Ven,
    "resource": Resource,
}
