"""Fixtures of the unbalanced-model tests: shipped feeders and their OpenDSS sessions."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

pytest.importorskip("dss")

from gridpilot.model.importers.opendss import DssSession, grid_from_session
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.model.threephase.builtin import feeder_master
from gridpilot.twin.unbalanced import UnbalancedTwin
from gridpilot.twin.unbalanced.reference import add_shape, reset_taps


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


def is_radial(g: ThreePhaseGrid, state: dict[str, bool]) -> bool:
    """No loop among closed branches, switches in ``state`` (by name, any case) and
    transformers (parallel single-phase units of one bus pair count once): the tests' own
    check, independent of the engine's."""
    closed = {k.lower(): v for k, v in state.items()}
    edges = {frozenset((b.t1.bus, b.t2.bus)) for b in g.branches if b.enabled
             and (closed[b.name.lower()] if b.kind == "switch" else b.closed)}  # fmt: skip
    for t in g.transformers:
        ws = [w.terminal.bus for w in t.windings]
        edges |= {frozenset((ws[0], x)) for x in ws[1:] if x != ws[0]}
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for e in edges:
        a, b = tuple(e)
        ra, rb = root(a), root(b)
        if ra == rb:
            return False
        parent[ra] = rb
    return True


def ieee13_pair(commands: list[str], mult: np.ndarray) -> tuple[DssSession, UnbalancedTwin]:
    """ieee13 edited by DSS ``commands`` with neutral taps and the load shape ``mult`` (15-min
    steps): the OpenDSS session and our twin of the same script."""
    s = DssSession()
    s.compile(feeder_master("ieee13"))
    for cmd in commands:
        s.command(cmd)
    reset_taps(s)
    add_shape(s, "q", mult, 15)
    return s, UnbalancedTwin(grid_from_session(s, "ieee13"))
