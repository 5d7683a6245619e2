"""gridpilot.control"""

# volt/var and frequency (flexibility engineer); FLISR/reconfiguration exports may be added here
from gridpilot.control.frequency import (
    FleetResponse,
    FrequencyResult,
    FrequencySystem,
    compare,
    simulate_loss,
)
from gridpilot.control.voltvar import (
    VOLT_VAR_CAT_B,
    VOLT_WATT_CAT_B,
    Curve,
    CurveResult,
    optimise_q,
    run_curves,
    tap_control,
)

__all__ = [
    "VOLT_VAR_CAT_B",
    "VOLT_WATT_CAT_B",
    "Curve",
    "CurveResult",
    "FleetResponse",
    "FrequencyResult",
    "FrequencySystem",
    "compare",
    "optimise_q",
    "run_curves",
    "simulate_loss",
    "tap_control",
]
