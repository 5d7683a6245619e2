"""The unbalanced (multi-phase) twin: OpenDSS-faithful power flow, controls and QSTS.

>>> from gridpilot.model import load_grid
>>> from gridpilot.twin.unbalanced import UnbalancedTwin
>>> res = UnbalancedTwin(load_grid("ieee13")).powerflow()
>>> res.nodes_df()          # per node-phase v_pu, angle_deg
"""

from gridpilot.twin.unbalanced.results import UnbalancedResult, unbalance_factor
from gridpilot.twin.unbalanced.solver import SolveOptions
from gridpilot.twin.unbalanced.twin import UnbalancedTwin

__all__ = ["SolveOptions", "UnbalancedResult", "UnbalancedTwin", "unbalance_factor"]
