"""The balanced view's injections placed on a three-phase feeder: each view load's power shared
by the feeder loads it stands for, and each device of the view (PV, wind, batteries, EV
chargers, water heaters) a single-phase 1 kW load per phase of its bus, phase to ground (per
pair of phases where the feeder has no ground reference:
:func:`~gridpilot.model.threephase.grounding.grounded_buses`), its power spread evenly over
them (used by :class:`~gridpilot.agent.world3p.ThreePhaseWorld` and the guard's node-phase
check, :mod:`gridpilot.agent.phaseguard`)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from gridpilot.model import Grid
from gridpilot.model.threephase import Load, Terminal, ThreePhaseGrid
from gridpilot.model.threephase.balanced import PhaseView
from gridpilot.model.threephase.grounding import grounded_buses

DEVICE_TABLES = ("generator", "storage", "ev_charger", "flex_load")
INJECTION_KEYS = {
    "generator": "gen_p_mw",
    "storage": "storage_p_mw",
    "ev_charger": "ev_p_mw",
    "flex_load": "flex_p_mw",
}


class PhaseInjections:
    """``grid3p`` with one load per device and phase of ``devices`` (the view grid with its
    fleet; same bus ids as ``view``), and the map from view injections to per-load multipliers.

    ``grid`` is the feeder with the device loads appended (the original loads first, in order).
    """

    def __init__(self, grid3p: ThreePhaseGrid, view: PhaseView, devices: Grid) -> None:
        self.view = view
        self.n_feeder = len(grid3p.loads)
        self.grid = dataclasses.replace(grid3p, loads=list(grid3p.loads))
        phases: dict[str, list[int]] = {}
        for b, n in grid3p.nodes():
            if 1 <= n <= 3:
                phases.setdefault(b, []).append(n)
        grounded = grounded_buses(grid3p)
        self.devices: list[tuple[str, int, list[int]]] = []
        for table in DEVICE_TABLES:
            t = devices[table]
            for k in range(len(t)):
                bus = view.bus_name[int(devices.bus.index_of(int(t["bus"][k]))[0])]
                kv = grid3p.bus_kv_ln.get(bus, grid3p.source.kv_ll / math.sqrt(3.0))
                members = []
                for name, term, conn, kv_load in _connections(
                    f"gp_{table}{int(t.ids[k])}", bus, phases.get(bus, [1]), kv, bus in grounded
                ):
                    members.append(len(self.grid.loads))
                    self.grid.loads.append(Load(name, term, 1, conn, kv_load, 1.0, 0.0))
                self.devices.append((table, k, members))

    def multipliers(
        self, view_grid: Grid, inj: dict[str, np.ndarray], noise: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per load of :attr:`grid`, multipliers of its nominal kW and kvar for the view
        injections ``inj`` (MW/Mvar by keyword, view table order); ``noise`` per feeder load."""
        n = len(self.grid.loads)
        mp, mq = np.zeros(n), np.zeros(n)
        f = np.ones(self.n_feeder) if noise is None else noise
        base_p, base_q = view_grid.load["p_mw"], view_grid.load["q_mvar"]
        for k, lid in enumerate(view_grid.load.ids):
            members = self.view.load_members.get(int(lid), [])
            if members:
                m = np.asarray(members)
                mp[m] = (inj["load_p_mw"][k] / base_p[k] if base_p[k] else 0.0) * f[m]
                mq[m] = (inj["load_q_mvar"][k] / base_q[k] if base_q[k] else 0.0) * f[m]
        for table, k, members in self.devices:
            arr = inj.get(INJECTION_KEYS[table])
            kw = float(arr[k]) * 1e3 if arr is not None and k < len(arr) else 0.0
            mp[members] = (-kw if table == "generator" else kw) / len(members)
        return np.nan_to_num(mp), np.nan_to_num(mq)


def _connections(
    name: str, bus: str, phases: list[int], kv_ln: float, grounded: bool
) -> list[tuple[str, Terminal, str, float]]:
    """(name, terminal, connection, kV) of a device's single-phase loads at ``bus``: one per
    phase to ground where the bus is grounded, else one per pair of its phases (a delta,
    line-to-line kV; an ungrounded three-wire feeder has no neutral to connect to). A bus
    with one phase and no ground reference keeps the phase-to-ground connection."""
    if grounded or len(phases) < 2:
        return [(f"{name}_{ph}", Terminal(bus, (ph, 0)), "wye", kv_ln) for ph in phases]
    pairs = (
        [(phases[0], phases[1])]
        if len(phases) == 2
        else [(a, phases[(i + 1) % len(phases)]) for i, a in enumerate(phases)]
    )
    kv_ll = kv_ln * math.sqrt(3.0)
    return [(f"{name}_{a}{b}", Terminal(bus, (a, b)), "delta", kv_ll) for a, b in pairs]


__all__ = ["DEVICE_TABLES", "PhaseInjections"]
