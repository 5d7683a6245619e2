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
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from gridpilot.model.threephase.grid import ThreePhaseGrid

log = logging.getLogger(__name__)
DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "opendss"
OPENDSS_PLACEHOLDER_AMPS = (400.0, 600.0)  # OpenDSS's normamps/emergamps when none is given
#: feeder -> linecode -> the phase conductor's ampacity (A); see the module notes
LINECODE_AMPACITY: dict[str, dict[str, float]] = {
    "ieee123": {**{str(k): 530.0 for k in range(1, 9)}, "9": 230.0, "10": 230.0, "11": 230.0},
}

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
    return sess, rate_lines(sess.circuit, LINECODE_AMPACITY.get(name, {}))


def _at_placeholder(lines: Any) -> bool:
    return (float(lines.NormAmps), float(lines.EmergAmps)) == OPENDSS_PLACEHOLDER_AMPS


def _bus(name: str) -> str:
    """The bus of a terminal, a normally-open tie's ``<bus>_open`` end read as ``<bus>``
    (:func:`~gridpilot.twin.unbalanced.topology.normalise_ties`)."""
    b = name.split(".", 1)[0].lower()
    return b.removesuffix("_open")


def rate_lines(circuit: Any, ampacity: dict[str, float]) -> dict[str, float]:
    """Set the compiled ``circuit``'s lines whose linecode is in ``ampacity`` (A), and the
    switches next to them, where they are at OpenDSS's placeholder rating (module notes);
    returns the ratings set, by line name."""
    if not ampacity:
        return {}
    lines = circuit.Lines
    out: dict[str, float] = {}
    switches: list[tuple[str, str, str, int]] = []
    at_bus: dict[tuple[str, int], float] = {}  # (bus, phases) -> a rated line there
    i = lines.First
    while i:
        name, code = lines.Name.lower(), lines.LineCode.lower()
        ends, ph = (_bus(lines.Bus1), _bus(lines.Bus2)), int(lines.Phases)
        if _at_placeholder(lines) and code in ampacity:
            lines.NormAmps = lines.EmergAmps = out[name] = ampacity[code]
        elif lines.IsSwitch and _at_placeholder(lines):
            switches.append((name, *ends, ph))
        if name in out or not _at_placeholder(lines):
            for b in ends:
                at_bus[b, ph] = min(at_bus.get((b, ph), float("inf")), float(lines.NormAmps))
        i = lines.Next
    for name, b1, b2, ph in switches:
        # the lines in series with it: at least as many phases (a lateral tapped at its bus
        # is not); at each end the strongest such, the weaker end rates it (an end with no
        # line, e.g. a regulator's output bus, says nothing)
        series = [[a for (b, p), a in at_bus.items() if b == x and p >= ph] for x in (b1, b2)]
        amps = min((max(e) for e in series if e), default=float("inf"))
        if amps < float("inf"):
            lines.Name = name
            lines.NormAmps = lines.EmergAmps = out[name] = amps
    log.info("rated %d line(s) from their conductors", len(out))
    return out
