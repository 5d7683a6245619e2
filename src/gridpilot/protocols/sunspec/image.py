"""SunSpec register images: models laid out from pysunspec2's model definitions.

A device's holding registers from 40000: ``"SunS"`` (2 registers), then each model (``ID``,
``L``, its points), then the end model ``0xFFFF, 0``. :func:`build_image` lays out models given
as pysunspec2 data dicts (``{"ID": 701, "W": 9800, ...}``, the same form as pysunspec2's device
JSON files); :func:`decode` reads one model back from registers; :func:`walk_points` lists a
model's points with their register offsets, used to know which registers are writable.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sunspec2.device as sdev

BASE_ADDR = 40000
SUNS = (0x5375, 0x6E53)
END_MODEL = (0xFFFF, 0)


def to_regs(mb: bytes) -> list[int]:
    """Big-endian bytes as 16-bit registers."""
    return list(struct.unpack(f">{len(mb) // 2}H", mb))


def to_bytes(regs: list[int]) -> bytes:
    """16-bit registers as big-endian bytes."""
    return struct.pack(f">{len(regs)}H", *regs)


def decode(model_id: int, regs: list[int]) -> sdev.Model:
    """One model (registers from its ``ID``) as a pysunspec2 model object (values raw and computed)."""
    return sdev.Model(int(model_id), model_len=len(regs) - 2, data=to_bytes(regs))


def walk_points(group: Any) -> Iterator[Any]:
    """Every point of a model or group, depth first (repeating groups included)."""
    yield from group.points.values()
    for g in group.groups.values():
        for sub in g if isinstance(g, list) else [g]:
            yield from walk_points(sub)


@dataclass
class Image:
    """A device's registers from :data:`BASE_ADDR`: ``regs``, each model's address (of its ``ID``
    register) and length in registers, and the absolute addresses of writable (RW) points."""

    regs: list[int]
    addr: dict[int, int] = field(default_factory=dict)
    length: dict[int, int] = field(default_factory=dict)
    writable: set[int] = field(default_factory=set)
    _cache: dict[int, sdev.Model] = field(default_factory=dict, repr=False)

    def model_regs(self, model_id: int) -> list[int]:
        """The registers of one model, from its ``ID``."""
        a = self.addr[model_id] - BASE_ADDR
        return self.regs[a : a + self.length[model_id]]

    def model(self, model_id: int) -> sdev.Model:
        """One model decoded from the present registers (one object per model, refreshed on each
        call: decoding is slow, refreshing ten times faster)."""
        regs = self.model_regs(model_id)
        m = self._cache.get(model_id)
        if m is None:
            m = self._cache[model_id] = decode(model_id, regs)
        else:
            m.set_mb(to_bytes(regs))
        return m

    def put(self, model_id: int, model: sdev.Model) -> None:
        """Write a (modified) model object back into the registers."""
        regs = to_regs(model.get_mb())
        a = self.addr[model_id] - BASE_ADDR
        self.regs[a : a + len(regs)] = regs


def build_image(models: list[dict[str, Any]]) -> Image:
    """Lay out ``models`` (pysunspec2 data dicts, each with ``ID``) into one register image."""
    regs = list(SUNS)
    img = Image(regs)
    for data in models:
        mid = int(data["ID"])
        m = sdev.Model(mid, data=data)
        mregs = to_regs(m.get_mb())
        mregs[1] = len(mregs) - 2  # L
        start = BASE_ADDR + len(regs)
        img.addr[mid], img.length[mid] = start, len(mregs)
        for p in walk_points(decode(mid, mregs)):
            if p.pdef.get("access", "R") == "RW":
                img.writable.update(range(start + p.offset, start + p.offset + p.len))
        regs.extend(mregs)
    regs.extend(END_MODEL)
    return img
