"""Hosting capacity of an unbalanced feeder for PV or EV charging, per node-phase.

A streamlined method in the spirit of EPRI's DRIVE: sensitivities from the factorised
network give each node-phase's first-pass limit, then exact batched power flows step to
the limit (``step_kw`` resolution). See docs/hosting.md.

>>> from gridpilot.model import load_grid
>>> from gridpilot.twin.hosting import HostingOptions, Scenario, hosting_capacity
>>> res = hosting_capacity(load_grid("ieee13"), [Scenario("light", 0, 0.4, 1.0)])
>>> res.table()            # bus, phase, hc_kw, limit, scenario, estimate_kw
"""

from gridpilot.twin.hosting.options import (
    HostingOptions,
    Scenario,
    clear_sky_pv,
    critical_scenarios,
)
from gridpilot.twin.hosting.parallel import hosting_capacity_on
from gridpilot.twin.hosting.study import hosting_capacity

__all__ = [
    "HostingOptions",
    "Scenario",
    "clear_sky_pv",
    "critical_scenarios",
    "hosting_capacity",
    "hosting_capacity_on",
]
