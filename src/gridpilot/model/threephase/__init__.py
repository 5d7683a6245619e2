"""The unbalanced multi-phase grid model (IEEE test feeders, OpenDSS imports).

>>> from gridpilot.model import load_grid
>>> g = load_grid("ieee13")            # a ThreePhaseGrid
>>> len(g.nodes())
"""

from gridpilot.model.threephase.elements import (
    Branch,
    Capacitor,
    CapControl,
    Fuse,
    Load,
    LoadShape,
    RegControl,
    Shunt,
    Source,
    Terminal,
    Transformer,
    Winding,
)
from gridpilot.model.threephase.grid import ThreePhaseGrid
from gridpilot.model.threephase.inverters import (
    Curve,
    InverterControl,
    InverterRating,
    voltvar_curve,
    voltwatt_curve,
)
from gridpilot.model.threephase.yprim import (
    branch_yprim,
    capacitor_yprim,
    source_yprim,
    transformer_yprim,
)

__all__ = [
    "Branch",
    "CapControl",
    "Capacitor",
    "Curve",
    "Fuse",
    "InverterControl",
    "InverterRating",
    "Load",
    "LoadShape",
    "RegControl",
    "Shunt",
    "Source",
    "Terminal",
    "ThreePhaseGrid",
    "Transformer",
    "Winding",
    "branch_yprim",
    "capacitor_yprim",
    "source_yprim",
    "transformer_yprim",
    "voltvar_curve",
    "voltwatt_curve",
]
