"""gridpilot.control: FLISR, reconfiguration for losses, volt/var and frequency response."""

# FLISR, location and reconfiguration (flisr, location, reconfig, sections); volt/var and
# frequency (flexibility engineer: voltvar, frequency)
from gridpilot.control.flisr import FlisrEngine, FlisrResult, Limits, SwitchAction
from gridpilot.control.frequency import (
    FleetResponse,
    FrequencyResult,
    FrequencySystem,
    compare,
    simulate_loss,
)
from gridpilot.control.location import (
    Candidate,
    Indications,
    Location,
    indications_for_fault,
    locate,
)
from gridpilot.control.reconfig import ReconfigResult, reconfigure
from gridpilot.control.sections import Sections
from gridpilot.control.voltvar import (
    VOLT_VAR_CAT_B,
    VOLT_WATT_CAT_B,
    Curve,
    CurveResult,
    InverterSettings,
    optimise_q,
    run_curves,
    tap_control,
)

__all__ = [
    "VOLT_VAR_CAT_B",
    "VOLT_WATT_CAT_B",
    "Candidate",
    "Curve",
    "CurveResult",
    "FleetResponse",
    "FlisrEngine",
    "FlisrResult",
    "FrequencyResult",
    "FrequencySystem",
    "Indications",
    "InverterSettings",
    "Limits",
    "Location",
    "ReconfigResult",
    "Sections",
    "SwitchAction",
    "compare",
    "indications_for_fault",
    "locate",
    "optimise_q",
    "reconfigure",
    "run_curves",
    "simulate_loss",
    "tap_control",
]
