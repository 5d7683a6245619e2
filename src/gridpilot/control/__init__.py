"""gridpilot.control: FLISR, reconfiguration for losses, volt/var and frequency response."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gridpilot._lazy import lazy_exports

# public names by submodule; imported on first use (see gridpilot/_lazy.py)
_EXPORTS: dict[str, tuple[str, ...]] = {
    "flisr": ("FlisrEngine", "FlisrResult", "Limits", "SwitchAction"),
    "frequency": ("compare",),
    "location": ("Indications", "indications_for_fault", "locate"),
    "reconfig": ("ReconfigResult", "reconfigure"),
    "voltvar": (
        "VOLT_VAR_CAT_B",
        "VOLT_WATT_CAT_B",
        "Curve",
        "optimise_q",
        "run_curves",
        "tap_control",
    ),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from gridpilot.control.flisr import FlisrEngine, FlisrResult, Limits, SwitchAction
    from gridpilot.control.frequency import compare
    from gridpilot.control.location import Indications, indications_for_fault, locate
    from gridpilot.control.reconfig import ReconfigResult, reconfigure
    from gridpilot.control.voltvar import (
        VOLT_VAR_CAT_B,
        VOLT_WATT_CAT_B,
        Curve,
        optimise_q,
        run_curves,
        tap_control,
    )
