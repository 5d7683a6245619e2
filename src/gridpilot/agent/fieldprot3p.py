"""The three-phase world's protection: lateral fuses and a head recloser with fuse saving.

:class:`FieldProtection3p` is the field side of
:class:`~gridpilot.agent.world3p.ThreePhaseWorld`: the feeder's protection scheme
(:class:`~gridpilot.field.protection3p.ProtectionScheme`: the feeder's own fuses and reclosers,
else a recloser on the feeder head and a fuse on every lateral), a fault study per fault in
the present switch state (:func:`~gridpilot.twin.unbalanced.faults.fault_study`) and the
devices' time-current curves played against it
(:func:`~gridpilot.field.protection3p.simulate_protection`). A fault on a fused lateral is
first tripped by the recloser's fast shots (fuse saving: a temporary fault is gone at the
reclose), then a permanent one blows the fuse; a fault on the main feeder locks the recloser
out.

What the control room sees of it is telemetry only: the recloser's operations and its
lockout (a SCADA device), the switches' fault-passage indicators and the voltage
measurements; a fuse reports nothing (it is seen as dark buses). The world keeps the truth
(:attr:`FieldProtection3p.log`) for tests and the API.

:func:`feeder_protection` gives the scheme of a feeder (sized once per feeder on its
nominal load, as a protection engineer's settings study does); the control side reads the
same device locations from it (the utility's records), never their state.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from gridpilot.errors import ValidationError
from gridpilot.field.protection3p import ProtectionOutcome, ProtectionScheme, simulate_protection
from gridpilot.model.threephase import ThreePhaseGrid
from gridpilot.twin.unbalanced.faults import Fault, fault_study
from gridpilot.twin.unbalanced.topology import (
    SwitchingSolver,
    normalise_ties,
    solve_switched,
    switch_names,
)

log = logging.getLogger(__name__)
_SCHEMES: dict[tuple[Any, ...], ProtectionScheme] = {}


def _feeder_key(grid3p: ThreePhaseGrid) -> tuple[Any, ...]:
    return (grid3p.name, tuple((b.name, b.enabled, b.closed) for b in grid3p.branches),
            len(grid3p.loads), sum(ld.kw for ld in grid3p.loads))  # fmt: skip


def feeder_protection(grid3p: ThreePhaseGrid) -> ProtectionScheme:
    """The protection scheme of ``grid3p`` (normally-open ties explicit), sized on its
    nominal load with the static controls settled (cached per feeder content)."""
    g = grid3p if "ties" in grid3p.meta else normalise_ties(grid3p)
    key = _feeder_key(g)
    hit = _SCHEMES.get(key)
    if hit is None:
        base = solve_switched(g).result
        pre = SwitchingSolver(g, base.taps, base.cap_states).solve()
        hit = _SCHEMES[key] = ProtectionScheme.for_grid(g, pre)
        while len(_SCHEMES) > 4:
            _SCHEMES.pop(next(iter(_SCHEMES)))
    return hit


def fault_spec(branch: str, params: dict[str, Any]) -> Fault:
    """The :class:`Fault` of an injected fault on feeder line ``branch``: single-phase-to-ground
    when ``params["phases"]`` names one phase (already checked against the line), else on all
    of the line's phases (a fault naming two phases too: the fault study knows three-phase and
    single-phase-to-ground faults only); ``permanent`` (default True)
    and ``r_ohm`` (default 0) checked."""
    r = params.get("r_ohm", 0.0)
    try:
        r_ohm = float(r)
    except (TypeError, ValueError):
        raise ValidationError(f"fault r_ohm: must be a number >= 0, got {r!r}") from None
    if not np.isfinite(r_ohm) or r_ohm < 0:
        raise ValidationError(f"fault r_ohm: must be a number >= 0, got {r!r}")
    perm = params.get("permanent", True)
    if not isinstance(perm, bool | np.bool_):
        raise ValidationError(f"fault permanent: must be true or false, got {perm!r}")
    phases = params.get("phases") or []
    if phases and len(phases) == 1:
        return Fault(branch, "slg", int(phases[0]), r_ohm, bool(perm))
    return Fault(branch, "3ph", None, r_ohm, bool(perm))


class FieldProtection3p:
    """The world's protection devices and their state (see the module notes).

    ``FieldProtection3p(grid3p, taps, caps)``: ``taps``/``caps`` the regulators' and
    capacitors' positions the fault studies use (the world passes the feeder's own: fault
    currents hardly move with them).
    """

    def __init__(
        self,
        grid3p: ThreePhaseGrid,
        taps: dict[str, float] | None = None,
        caps: dict[str, list[int]] | None = None,
    ) -> None:
        self.scheme = feeder_protection(grid3p)
        self.solver = SwitchingSolver(grid3p, taps, caps, switchable=self.scheme.branches())
        self.index = self.solver.net.index
        self.switches = set(switch_names(self.solver.grid))
        #: protective devices open now that are not switches of the view: branch -> device
        self.device_open: dict[str, str] = {}
        #: what protection did, per fault (the truth, not telemetry)
        self.log: list[dict[str, Any]] = []

    def state(self, switch_closed: dict[str, bool]) -> dict[str, bool]:
        """The solver's switch state: the view's switches, the devices open now."""
        st = {k: v for k, v in switch_closed.items() if k in self.solver.normal}
        st.update(dict.fromkeys(self.device_open, False))
        return st

    def live(self, fault: Fault, state: dict[str, bool]) -> bool:
        """Whether the fault's node-phases are energised in ``state``."""
        br = next(b for b in self.solver.grid.branches if b.name.lower() == fault.element.lower())
        phases = [fault.phase] if fault.kind == "slg" else [k for k in br.t2.nodes if 1 <= k <= 3]
        idx = [self.index[(br.t2.bus, int(k or 1))] for k in phases]
        return bool(self.solver.energised(state)[idx].any())

    def operate(self, fault: Fault, state: dict[str, bool]) -> ProtectionOutcome:
        """Study ``fault`` in ``state``, play the devices against it, and keep the devices
        it leaves open that are not view switches (``state``'s keys) as open."""
        study = fault_study(self.solver, fault, closed=state)
        out = simulate_protection(self.scheme, study)
        for br in out.opened:
            if br not in self.switches:  # a switch of the view opens in the world
                self.device_open[br] = next(d.name for d in self.scheme.devices if d.branch == br)
        self.log.append({"fault": fault.describe(), "permanent": fault.permanent,
                         "fault_current_a": study.summary()["i_fault_a"], **out.summary()})  # fmt: skip
        log.info("%s: %s", fault.describe(), out.summary())
        return out

    def replace(self) -> list[str]:
        """The crew's repair: every blown fuse replaced, every device closed again."""
        out = sorted(self.device_open.values())
        self.device_open.clear()
        return out


__all__ = ["FieldProtection3p", "fault_spec", "feeder_protection"]
