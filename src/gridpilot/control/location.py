"""Kept import path: fault location lives in :mod:`gridpilot.control.flisr.location`."""

from gridpilot.control.flisr.location import (
    MAX_PAIR_CANDIDATES,
    P_INDICATOR_WRONG,
    SECOND_FAULT_COST,
    Candidate,
    Indications,
    Location,
    indications_for_fault,
    locate,
    path_switches,
    protective_device,
)

__all__ = [
    "MAX_PAIR_CANDIDATES",
    "P_INDICATOR_WRONG",
    "SECOND_FAULT_COST",
    "Candidate",
    "Indications",
    "Location",
    "indications_for_fault",
    "locate",
    "path_switches",
    "protective_device",
]
