"""The IEEE test feeders shipped with gridpilot, as OpenDSS scripts (BSD-3, EPRI and
DSS-Extensions; see ``gridpilot/model/data/opendss/LICENSE.txt``)."""

from __future__ import annotations

from pathlib import Path

from gridpilot.model.threephase.grid import ThreePhaseGrid

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "opendss"

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
    """Load a shipped IEEE feeder (``ieee13`` … ``ieee8500``) through the OpenDSS importer."""
    from gridpilot.model.importers.opendss import from_opendss

    grid = from_opendss(feeder_master(name), name)
    grid.meta["licence"] = "BSD-3 (EPRI, DSS-Extensions): gridpilot/model/data/opendss/LICENSE.txt"
    return grid
