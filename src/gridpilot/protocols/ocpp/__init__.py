"""OCPP 2.0.1 / 2.1: gridpilot's CSMS (grid side) and the field's charge points (device side).

>>> csms = Csms(CsmsConfig(port=0), sink)            # ws://127.0.0.1:<port>/ocpp/<station-id>
>>> csms.provision("cs-1", "a-password-of-16+ch")    # security profile 1 (basic auth)
>>> await csms.start(); await csms.set_limit("cs-1", 7400.0)   # SetChargingProfile, W
"""

from gridpilot.protocols.ocpp.adapter import OcppAdapter
from gridpilot.protocols.ocpp.csms import Csms, CsmsConfig
from gridpilot.protocols.ocpp.station import RunOptions, StationModel, StationSpec, run_station

__all__ = [
    "Csms",
    "CsmsConfig",
    "OcppAdapter",
    "RunOptions",
    "StationModel",
    "StationSpec",
    "run_station",
]
