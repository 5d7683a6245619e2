"""The typed grid model: components, validation, file format, importers and built-in grids.

>>> from gridpilot.model import load_grid
>>> grid = load_grid("case33bw")
>>> grid.load["p_mw"].sum()  # column views, numpy
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridpilot._lazy import lazy_exports

# public names by submodule; imported on first use (see gridpilot/_lazy.py)
_EXPORTS: dict[str, tuple[str, ...]] = {
    "builtin": ("list_grids", "load_balanced_grid", "load_grid", "require_balanced"),
    "grid": ("Grid",),
    "importers": ("from_matpower", "from_pandapower"),
    "io": ("read_grid", "write_grid"),
    "limits": ("OperatingLimits",),
    "profile_links": ("grid_series",),
    "profiles": ("Profiles", "default_profiles"),
    "schema": ("ElementType", "FlexKind", "GenKind", "SwitchKind"),
    "table": ("Table",),
    "topology_edges": ("branch_edges", "branch_status"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from gridpilot.model.builtin import list_grids, load_balanced_grid, load_grid, require_balanced
    from gridpilot.model.grid import Grid
    from gridpilot.model.importers import from_matpower, from_pandapower
    from gridpilot.model.io import read_grid, write_grid
    from gridpilot.model.limits import OperatingLimits
    from gridpilot.model.profile_links import grid_series
    from gridpilot.model.profiles import Profiles, default_profiles
    from gridpilot.model.schema import ElementType, FlexKind, GenKind, SwitchKind
    from gridpilot.model.table import Table
    from gridpilot.model.topology_edges import branch_edges, branch_status
