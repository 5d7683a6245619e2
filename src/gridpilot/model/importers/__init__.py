"""Importers into gridpilot's model: pandapower networks (and so SimBench), MATPOWER cases."""

from gridpilot.model.importers.matpower import from_matpower
from gridpilot.model.importers.pandapower import from_pandapower

__all__ = ["from_matpower", "from_pandapower"]
