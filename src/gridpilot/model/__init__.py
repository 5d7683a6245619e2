"""The typed grid model: components, validation, file format, importers and built-in grids.

>>> from gridpilot.model import load_grid
>>> grid = load_grid("case33bw")
>>> grid.load["p_mw"].sum()  # column views, numpy
"""

from gridpilot.model.builtin import GridInfo, list_grids, load_grid
from gridpilot.model.grid import Grid
from gridpilot.model.importers import from_matpower, from_pandapower, parse_matpower
from gridpilot.model.io import grid_from_dict, grid_to_dict, read_grid, write_grid
from gridpilot.model.limits import OperatingLimits
from gridpilot.model.profiles import Profiles, default_profiles
from gridpilot.model.schema import (
    COMPONENTS,
    SCHEMAS,
    ElementType,
    Field,
    FlexKind,
    GenKind,
    LoadKind,
    SwitchKind,
)
from gridpilot.model.synthetic import synthetic_grid
from gridpilot.model.table import Table
from gridpilot.model.topology_edges import branch_edges, branch_status

__all__ = [
    "COMPONENTS",
    "SCHEMAS",
    "ElementType",
    "Field",
    "FlexKind",
    "GenKind",
    "Grid",
    "GridInfo",
    "LoadKind",
    "OperatingLimits",
    "Profiles",
    "SwitchKind",
    "Table",
    "branch_edges",
    "branch_status",
    "default_profiles",
    "from_matpower",
    "from_pandapower",
    "grid_from_dict",
    "grid_to_dict",
    "list_grids",
    "load_grid",
    "parse_matpower",
    "read_grid",
    "synthetic_grid",
    "write_grid",
]
