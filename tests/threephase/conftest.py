"""Fixtures of the unbalanced-model tests: shipped feeders and their OpenDSS sessions."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

pytest.importorskip("dss")

from gridpilot.model.importers.opendss import DssSession, grid_from_session
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.model.threephase.builtin import feeder_master


@lru_cache(maxsize=8)
def session_and_grid(name: str) -> tuple[DssSession, ThreePhaseGrid]:
    """A compiled OpenDSS session of a shipped feeder and our grid read from it."""
    s = DssSession()
    s.compile(feeder_master(name))
    return s, grid_from_session(s, name)


def yprim_of(s: DssSession, element: str) -> np.ndarray:
    """OpenDSS's primitive Y of ``class.name`` as a complex square matrix (siemens)."""
    c = s.circuit
    c.SetActiveElement(element)
    y = np.asarray(c.ActiveCktElement.Yprim)
    n = round(np.sqrt(len(y) // 2))
    return (y[0::2] + 1j * y[1::2]).reshape(n, n)
