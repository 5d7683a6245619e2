"""OCPP 2.0.1 / 2.1: gridpilot's CSMS (grid side) and the field's charge points (device side).

>>> csms = Csms(CsmsConfig(port=0), sink)            # ws://127.0.0.1:<port>/ocpp/<station-id>
>>> csms.provision("cs-1", "a-password-of-16+ch")    # security profile 1 (basic auth)
>>> await csms.start(); await csms.set_limit("cs-1", 7400.0)   # SetChargingProfile, W
"""

from gridpilot.protocols.ocpp.adapter import CsmsThread, OcppAdapter
from gridpilot.protocols.ocpp.csms import Csms, CsmsConfig, gather_limits
from gridpilot.protocols.ocpp.messages import charging_profile, meter_readings
from gridpilot.protocols.ocpp.session import StationRecord
from gridpilot.protocols.ocpp.station import (
    RunOptions,
    StationModel,
    StationSpec,
    basic_auth,
    run_station,
)

__all__ = [
    "Csms",
    "CsmsConfig",
    "CsmsThread",
    "OcppAdapter",
    "RunOptions",
    "StationModel",
    "StationRecord",
    "StationSpec",
    "basic_auth",
    "charging_profile",
    "gather_limits",
    "meter_readings",
    "run_station",
]
