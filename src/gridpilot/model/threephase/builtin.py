"""The IEEE test feeders shipped with gridpilot, as OpenDSS scripts (BSD-3, EPRI and
DSS-Extensions; see ``gridpilot/model/data/opendss/LICENSE.txt``).

Line ratings: a script that gives a line no ``normamps`` (nor its linecode) leaves it at
OpenDSS's placeholder, 400 A normal and 600 A emergency, which is no rating of the line. The
IEEE 123-node feeder's linecodes are such: its document names each configuration's phase
conductor instead, and :data:`LINECODE_AMPACITY` gives their ampacity (configurations 1-8:
336,400 26/7 ACSR, 530 A; 9-11: 1/0 ACSR, 230 A; Kersting's conductor table, the values
OpenDSS's own wire-data examples carry); :func:`ieee_feeder` sets them on the lines still at
the placeholder (normal and emergency alike: the table gives one figure). A switch still at
the placeholder is rated as the weakest rated line at its buses (switchgear is chosen for the
circuit it sits in: the conductor, not the switch, is the limit). Linecode 12 (underground
1/0 AA concentric-neutral cable) has no figure in those sources and keeps the placeholder.

The IEEE 8500-node feeder's own distribution rates its conductors: ``WireData.dss`` gives
each wire's ``Normamps``/``Emergamps`` and ``LineGeometry.dss`` each geometry's wires (both
shipped beside the master, which does not read them). Its master's linecodes
(``LineCodes2.DSS``, no ``normamps``) are the geometries' line constants under the same names,
and the distribution's ``Lines-Geometry.dss`` gives every line the geometry named as its
linecode: :func:`geometry_ampacity` rates a linecode by its geometry's phase conductors (the
weakest, normal and emergency; the neutral is not a limit), e.g. ``397_ACSR`` 630 A on the
trunk. A line with no linecode still at the placeholder (a switch, the substation connector, a
capacitor's jumper) is rated as the lines in series with it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gridpilot.errors import ValidationError
from gridpilot.model.threephase.grid import ThreePhaseGrid

log = logging.getLogger(__name__)
DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "opendss"
OPENDSS_PLACEHOLDER_AMPS = (400.0, 600.0)  # OpenDSS's normamps/emergamps when none is given
#: feeder -> linecode -> the phase conductor's ampacity (A); see the module notes
LINECODE_AMPACITY: dict[str, dict[str, float]] = {
    "ieee123": {**{str(k): 530.0 for k in range(1, 9)}, "9": 230.0, "10": 230.0, "11": 230.0},
}
#: feeder -> (line geometries, wire data) of its distribution whose geometries are named as
#: its master's linecodes (module notes)
GEOMETRY_FILES: dict[str, tuple[str, str]] = {
    "ieee8500": ("8500-Node/LineGeometry.dss", "8500-Node/WireData.dss"),
}
Amps = float | tuple[float, float]  # one figure (normal = emergency) or (normal, emergency)

# name -> (master file under data/opendss, buses, nodes, description)
IEEE_FEEDERS: dict[str, tuple[str, int, int, str]] = {
    "ieee13": ("13Bus/IEEE13Nodeckt.dss", 16, 41,
               "IEEE 13-node feeder (unbalanced, regulators with LDC, capacitors), 4.16 kV"),
    "ieee34": ("34Bus/ieee34Mod1.dss", 37, 95,
               "IEEE 34-node feeder (long rural, two regulators in series), 24.9 kV"),
    "ieee37": ("37Bus/ieee37.dss", 39, 117,
               "IEEE 37-node feeder (delta, three-wire, unbalanced delta loads), 4.8 kV"),
    "ieee123": ("123Bus/IEEE123Master.dss", 132, 278,
                "IEEE 123-node feeder (regulators, capacitors, switches), 4.16 kV"),
    "ieee8500": ("8500-Node/Master.dss", 4876, 8531,
                 "IEEE 8500-node feeder (split-phase service transformers, cap controls), 12.47 kV"),
}  # fmt: skip


def feeder_master(name: str) -> Path:
    """Path of a shipped feeder's OpenDSS master file."""
    rel = IEEE_FEEDERS[name][0]
    return DATA_DIR.joinpath(*rel.split("/"))


def ieee_feeder(name: str) -> ThreePhaseGrid:
    """Load a shipped IEEE feeder (``ieee13`` … ``ieee8500``) through the OpenDSS importer,
    its lines rated from their conductors where the script leaves OpenDSS's placeholder (see
    the module notes; ``meta["ratings"]`` says what was set)."""
    from gridpilot.model.importers.opendss import grid_from_session

    sess, rated = feeder_session(name)
    grid = grid_from_session(sess, name, source=str(feeder_master(name).resolve()))
    grid.meta["licence"] = "BSD-3 (EPRI, DSS-Extensions): gridpilot/model/data/opendss/LICENSE.txt"
    if rated:
        grid.meta["ratings"] = rated
    return grid


def feeder_session(name: str) -> tuple[Any, dict[str, float]]:
    """A compiled OpenDSS session of the shipped feeder ``name`` with its lines rated as
    :func:`ieee_feeder` rates them (OpenDSS as an oracle judges the same ratings), and the
    ratings set."""
    from gridpilot.model.importers.opendss import DssSession

    sess = DssSession()
    sess.compile(feeder_master(name).resolve())
    return sess, rate_lines(sess.circuit, feeder_ampacity(name))


def feeder_ampacity(name: str) -> dict[str, Amps]:
    """The shipped feeder ``name``'s linecode -> ampacity (A) that :func:`rate_lines` sets:
    :data:`LINECODE_AMPACITY`'s, and its geometries' (:func:`geometry_ampacity`)."""
    out: dict[str, Amps] = dict(LINECODE_AMPACITY.get(name, {}))
    if name in GEOMETRY_FILES:
        geo, wires = (DATA_DIR.joinpath(*f.split("/")) for f in GEOMETRY_FILES[name])
        out.update(geometry_ampacity(geo, wires))
    return out


def _objects(path: Path, cls: str) -> dict[str, dict[str, str]]:
    """``New <cls>.<name> k=v ...`` objects of an OpenDSS script (``~`` continuations
    appended, ``!`` comments dropped): name -> properties in order, ``cond``-indexed
    properties keyed ``<cond>:<prop>``."""
    objs: dict[str, dict[str, str]] = {}
    cur: dict[str, str] | None = None
    cond = ""
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.split("!", 1)[0].strip()
        m = re.match(rf"new\s+{cls}\.(\S+)(.*)", line, re.IGNORECASE)
        if m:
            cur, cond, line = objs.setdefault(m.group(1).lower(), {}), "", m.group(2)
        elif not line.startswith("~") or cur is None:
            cur = None if line.lower().startswith("new") else cur
            continue
        for k, v in re.findall(r"(\w+)\s*=\s*(\S+)", line.lstrip("~")):
            k = k.lower()
            cond = v if k == "cond" else cond
            cur[f"{cond}:{k}" if cond and k != "cond" else k] = v
    return objs


def geometry_ampacity(geometries: Path, wiredata: Path) -> dict[str, tuple[float, float]]:
    """Geometry name -> (normal, emergency) ampacity (A) of its phase conductors (the first
    ``nphases`` conductors, the weakest), from an OpenDSS ``LineGeometry`` script and the
    ``WireData`` script it refers to. A geometry naming an unknown wire is a clear error."""
    wires = _objects(wiredata, "wiredata")
    out: dict[str, tuple[float, float]] = {}
    for name, g in _objects(geometries, "linegeometry").items():
        phase = [g.get(f"{c}:wire", "").lower() for c in range(1, int(g.get("nphases", 3)) + 1)]
        missing = [w for w in phase if w not in wires]
        if missing:
            raise ValidationError(
                f"line geometry {name!r}: wire {missing[0]!r} not in {wiredata.name}"
            )
        norm = min(float(wires[w]["normamps"]) for w in phase)
        out[name] = (norm, min(float(wires[w].get("emergamps", norm)) for w in phase))
    return out


def _at_placeholder(lines: Any) -> bool:
    return (float(lines.NormAmps), float(lines.EmergAmps)) == OPENDSS_PLACEHOLDER_AMPS


def _bus(name: str) -> str:
    """The bus of a terminal, a normally-open tie's ``<bus>_open`` end read as ``<bus>``
    (:func:`~gridpilot.twin.unbalanced.topology.normalise_ties`)."""
    b = name.split(".", 1)[0].lower()
    return b.removesuffix("_open")


def rate_lines(circuit: Any, ampacity: Mapping[str, Amps]) -> dict[str, float]:
    """Set the compiled ``circuit``'s lines whose linecode is in ``ampacity`` (A: one figure,
    or normal and emergency), and the lines with no linecode next to them (switches,
    connectors), where they are at OpenDSS's placeholder rating (module notes); returns the
    normal ratings set, by line name."""
    if not ampacity:
        return {}
    lines = circuit.Lines
    out: dict[str, float] = {}
    series: list[tuple[str, str, str, int]] = []
    at_bus: dict[tuple[str, int], tuple[float, float]] = {}  # (bus, phases) -> a rated line
    i = lines.First
    while i:
        name, code = lines.Name.lower(), lines.LineCode.lower()
        ends, ph = (_bus(lines.Bus1), _bus(lines.Bus2)), int(lines.Phases)
        if _at_placeholder(lines) and code in ampacity:
            amps = ampacity[code]
            norm, emerg = amps if isinstance(amps, tuple) else (amps, amps)
            lines.NormAmps, lines.EmergAmps = norm, emerg
            out[name] = norm
        elif (not code or lines.IsSwitch) and _at_placeholder(lines):
            series.append((name, *ends, ph))
        if name in out or not _at_placeholder(lines):
            own = (float(lines.NormAmps), float(lines.EmergAmps))
            for b in ends:
                at_bus[b, ph] = min(at_bus.get((b, ph), own), own)
        i = lines.Next
    for name, b1, b2, ph in series:
        # the lines in series with it: at least as many phases (a lateral tapped at its bus
        # is not); at each end the strongest such, the weaker end rates it (an end with no
        # line, e.g. a regulator's output bus, says nothing)
        near = [[a for (b, p), a in at_bus.items() if b == x and p >= ph] for x in (b1, b2)]
        rated = [max(e) for e in near if e]
        if rated:
            lines.Name = name
            lines.NormAmps, lines.EmergAmps = min(rated)
            out[name] = float(lines.NormAmps)
    log.info("rated %d line(s) from their conductors", len(out))
    return out
